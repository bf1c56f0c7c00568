import type { AuditResult } from './audit.bench';
import type { MachineInfo } from './measure';
import type { ParkedResult } from './parked.bench';
import type { StartResult } from './start.bench';
import type { ThroughputResult } from './throughput.bench';

export interface BenchResults {
  startedAt: string;
  durationS: number;
  machine: MachineInfo;
  /** 1, 5 and 15 minute load averages when the last figures were saved (the machine's own load is in `machine`). */
  loadAverageAtEnd?: number[];
  stack?: { temporal: string; redis: string; postgres: string };
  options: Record<string, unknown>;
  throughput?: ThroughputResult;
  start?: StartResult;
  parked?: ParkedResult;
  audit?: AuditResult;
}

const x = (ratio: number) => `${ratio.toFixed(2)}x`;

/** An aligned text table: the first column (names) left, every other column (figures, ratios) right. */
function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows].map((r) => r.map((c) => String(c)));
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

/** The four tables, as rows: each renders as aligned text on the terminal and as Markdown for BENCHMARKS.md. */
function sections(r: BenchResults): { title: string; headers: string[]; rows: (string | number)[][]; note?: string }[] {
  const out: ReturnType<typeof sections> = [];
  if (r.throughput) {
    const t = r.throughput;
    const row = (name: string, s: ThroughputResult['facade']) => [name, s.runs, s.failures, s.runsPerS, s.latencyMs.p50, s.latencyMs.p95, s.latencyMs.p99];
    out.push({
      title: `Throughput and end-to-end latency: ${t.runs} runs per side, concurrency ${t.concurrency}, ${t.rounds} alternating rounds`,
      headers: ['path', 'runs', 'failed', 'runs/s', 'p50 ms', 'p95 ms', 'p99 ms'],
      rows: [row('facade (bench-triage)', t.facade), row('bare workflow', t.bare), ['facade / bare', '', '', x(t.ratio.runsPerS), x(t.ratio.p50), x(t.ratio.p95), x(t.ratio.p99)]],
    });
  }
  if (r.start) {
    const s = r.start;
    const row = (name: string, v: StartResult['facade']) => [name, v.requests, v.failures, v.achievedRatePerS, v.latencyMs.p50, v.latencyMs.p95, v.latencyMs.p99];
    out.push({
      title: `Start latency at ${s.ratePerS} starts/s (open loop), ${s.requests} starts per side${s.rounds ? `, ${s.rounds} alternating rounds` : ''}`,
      headers: ['path', 'starts', 'failed', 'rate/s', 'p50 ms', 'p95 ms', 'p99 ms'],
      rows: [row('POST /v1/pipelines/bench-triage/runs', s.facade), row('client.workflow.start (bare)', s.bare), ['facade / bare', '', '', '', x(s.ratio.p50), x(s.ratio.p95), x(s.ratio.p99)]],
    });
  }
  if (r.parked) {
    const p = r.parked;
    out.push({
      title: `Parked runs: ${p.runs} runs waiting for approval, approved at concurrency ${p.concurrency}`,
      headers: ['process', 'RSS before MiB', 'RSS parked MiB', 'KiB per parked run', 'RSS drained MiB'],
      rows: Object.entries(p.memoryMiB).map(([role, m]) => [role, m.before, m.parked, m.perParkedRunKiB, m.drained]),
      note: [
        `parked in ${p.parkS} s (${p.startFailures} starts failed); approvals p50 ${p.approveLatencyMs.p50} ms, p95 ${p.approveLatencyMs.p95} ms (${p.approveFailures} failed)`,
        `drain: all ${p.runs} approved runs completed ${p.drainS} s after the first approval (${p.drainRunsPerS} runs/s)`,
      ].join('\n'),
    });
  }
  if (r.audit) {
    const a = r.audit;
    out.push({
      title: `Audit trail: ${a.events} appends per row (${a.postgres})`,
      headers: ['writes', 'tenants', 'concurrency', 'events/s', 'vs plain INSERT'],
      rows: [
        ...a.appends.map((row) => [row.mode, row.tenants, row.concurrency, row.eventsPerS, x(row.ratioToPlain)]),
        ...a.verify.map((v) => [`verify${v.ok ? '' : ' (BROKEN)'}`, v.tenants, 1, v.eventsPerS, '']),
      ],
    });
  }
  return out;
}

export function renderText(r: BenchResults): string {
  return sections(r)
    .map((s) => [s.title, '', table(s.headers, s.rows), ...(s.note ? ['', s.note] : [])].join('\n'))
    .join('\n\n');
}

export function renderMarkdown(r: BenchResults): string {
  const md = (cells: (string | number)[]) => `| ${cells.map((c) => String(c)).join(' | ')} |`;
  return sections(r)
    .map((s) =>
      [`### ${s.title}`, '', md(s.headers), md(s.headers.map((_, i) => (i === 0 ? '---' : '---:'))), ...s.rows.map(md), ...(s.note ? ['', ...s.note.split('\n').map((l) => `${l}  `)] : [])].join('\n'),
    )
    .join('\n\n');
}
