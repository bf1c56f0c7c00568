import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import type { Client } from '@temporalio/client';
import { SingleBar } from 'cli-progress';
import { percentile } from '../src/cli/stats';
import { resolveTemporalCli } from '../src/temporal/temporal-cli';

/** Latency summary of one sample, in ms. */
export interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function summarise(ms: readonly number[]): LatencySummary {
  const round = (v: number) => Math.round(v * 10) / 10;
  return {
    count: ms.length,
    p50: round(percentile(ms, 50)),
    p95: round(percentile(ms, 95)),
    p99: round(percentile(ms, 99)),
    max: round(ms.length ? Math.max(...ms) : NaN),
  };
}

/** `a / b` to two decimals: how the tables report the platform against its baseline. */
export function ratio(a: number, b: number): number {
  return Math.round((a / b) * 100) / 100;
}

/** The facade's latency percentiles over the baseline's. */
export function latencyRatios(facade: LatencySummary, bare: LatencySummary): { p50: number; p95: number; p99: number } {
  return { p50: ratio(facade.p50, bare.p50), p95: ratio(facade.p95, bare.p95), p99: ratio(facade.p99, bare.p99) };
}

/** A progress bar on stderr, one per phase (prints a line every few seconds when stderr is not a terminal). */
export function progress(label: string, total: number): SingleBar {
  const bar = new SingleBar({
    // Until a first item finishes there is no rate to estimate from: say so, rather than "0s left".
    format: (options, params) => {
      const width = options.barsize ?? 40;
      const filled = Math.round((params.total > 0 ? params.value / params.total : 0) * width);
      const eta = Math.max(0, Math.round(params.eta));
      const left = params.value === 0 ? 'estimating…' : `${eta >= 60 ? `${Math.floor(eta / 60)}m${eta % 60}s` : `${eta}s`} left`;
      return `${label.padEnd(34)} [${'='.repeat(filled)}${'-'.repeat(width - filled)}] ${params.value}/${params.total} | ${left}`;
    },
    hideCursor: true,
    noTTYOutput: true,
    notTTYSchedule: 10_000,
    stream: process.stderr,
  });
  bar.start(total, 0);
  return bar;
}

export interface LoopResult {
  wallMs: number;
  latenciesMs: number[];
  failures: number;
  firstError?: string;
}

/** Runs `task(i)` for i in [0, n) with at most `concurrency` in flight; each latency is one task's duration. */
export async function closedLoop(n: number, concurrency: number, task: (i: number) => Promise<void>, bar?: SingleBar): Promise<LoopResult> {
  const latenciesMs: number[] = [];
  let failures = 0;
  let firstError: string | undefined;
  let next = 0;
  const t0 = performance.now();
  const lane = async () => {
    while (next < n) {
      const i = next++;
      const start = performance.now();
      try {
        await task(i);
        latenciesMs.push(performance.now() - start);
      } catch (err) {
        failures++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
      bar?.increment();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, lane));
  return { wallMs: performance.now() - t0, latenciesMs, failures, firstError };
}

/**
 * Sends `n` requests at a fixed rate (open loop: a slow answer does not delay the next request). Each latency is
 * measured from the moment its request was due, so a client that falls behind shows up in the figures rather than
 * hiding in a lower rate.
 */
export async function openLoop(n: number, ratePerS: number, task: (i: number) => Promise<void>, bar?: SingleBar): Promise<LoopResult & { achievedRate: number }> {
  const latenciesMs: number[] = [];
  let failures = 0;
  let firstError: string | undefined;
  const pending: Promise<void>[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const due = t0 + (i * 1000) / ratePerS;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    pending.push(
      task(i).then(
        () => {
          latenciesMs.push(performance.now() - due);
          bar?.increment();
        },
        (err: unknown) => {
          failures++;
          firstError ??= err instanceof Error ? err.message : String(err);
          bar?.increment();
        },
      ),
    );
  }
  const sentMs = performance.now() - t0;
  await Promise.all(pending);
  return { wallMs: performance.now() - t0, latenciesMs, failures, firstError, achievedRate: n > 1 ? (n - 1) / (sentMs / 1000) : ratePerS };
}

/** Polls `check` until it answers true, failing after `timeoutMs` with `what` in the message. */
export async function pollUntil(what: string, check: () => Promise<boolean>, timeoutMs: number, everyMs = 250): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
}

/** Number of workflows matching a visibility query. */
export async function countWorkflows(client: Client, query: string): Promise<number> {
  return (await client.workflow.count(query)).count;
}

/** Waits until no workflow of this Temporal namespace is running any more (between phases). */
export async function drainAll(client: Client, timeoutMs = 600_000): Promise<void> {
  await pollUntil('all runs to finish', async () => (await countWorkflows(client, 'ExecutionStatus="Running"')) === 0, timeoutMs, 500);
}

/** Resident memory (VmRSS, bytes) of this process's direct children, by role. */
export function childMemory(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      if (Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]) !== process.pid) continue;
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      const role = cmd.includes('src/worker.ts')
        ? 'worker'
        : cmd.includes('src/server.ts')
          ? 'facade'
          : cmd.includes('bare-worker.ts')
            ? 'bare worker'
            : cmd.includes('start-dev')
              ? 'temporal'
              : undefined;
      const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]);
      if (role && Number.isFinite(kb)) out[role] = kb * 1024;
    } catch {
      // The process ended while we looked: nothing to count.
    }
  }
  return out;
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  loadAverage: number[];
  node: string;
  os: string;
  temporalCli: string;
}

export function machineInfo(): MachineInfo {
  let temporalCli = 'unknown';
  try {
    temporalCli = execFileSync(resolveTemporalCli({ install: false, log: () => undefined }), ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    // Reported as unknown; the benchmarks that need Temporal fail on their own with a clearer message.
  }
  const info = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    loadAverage: info,
    node: process.version,
    os: `${process.platform} ${readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()}`,
    temporalCli,
  };
}
