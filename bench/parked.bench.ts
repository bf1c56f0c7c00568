import { childMemory, closedLoop, countWorkflows, drainAll, pollUntil, progress, summarise, type LatencySummary } from './measure';
import { PARKED_PIPELINE, type BenchStack } from './bench-stack';
import { approve, startRun } from './facade-client';
import { loadTickets } from './workloads';

export interface ParkedResult {
  runs: number;
  concurrency: number;
  /** From the first start request until every run waits at its review stage. */
  parkS: number;
  startFailures: number;
  /** Resident memory (MiB) of each process: before the runs were started, with all of them parked, after the drain. */
  memoryMiB: Record<string, { before: number; parked: number; drained: number; perParkedRunKiB: number }>;
  approveLatencyMs: LatencySummary;
  approveFailures: number;
  firstError?: string;
  /** From the first approval until every run has completed. */
  drainS: number;
  drainRunsPerS: number;
}

/**
 * Starts `runs` runs that all wait for an approver, measures the memory of the worker, the facade and Temporal with
 * them parked, then approves all of them through the API (`POST /v1/runs/{runId}/approvals`) at concurrency C and
 * times the drain until Temporal lists every one as completed.
 */
export async function parkedBench(bench: BenchStack, opts: { runs: number; concurrency: number }): Promise<ParkedResult> {
  const tickets = loadTickets();
  const base = `AgentryTenant="${bench.tenant}" AND AgentryPipeline="${PARKED_PIPELINE}"`;
  await drainAll(bench.client);
  const before = childMemory();

  const runIds: string[] = [];
  const t0 = performance.now();
  let bar = progress(`parking ${opts.runs} runs`, opts.runs);
  const started = await closedLoop(
    opts.runs,
    opts.concurrency,
    async (i) => {
      const t = tickets[i % tickets.length];
      runIds.push((await startRun(bench, PARKED_PIPELINE, { text: t.text, ticketId: t.ticketId.slice(0, 128) })).runId);
    },
    bar,
  );
  bar.stop();
  // Generous bound: a 2-core machine parks a few dozen runs a second.
  await pollUntil(
    'every run to wait for approval',
    async () => (await countWorkflows(bench.client, `${base} AND AgentryStatus="awaiting-approval"`)) >= runIds.length,
    600_000 + opts.runs * 500,
    1000,
  );
  const parkS = (performance.now() - t0) / 1000;
  // Let the processes settle (garbage collection of the start burst) before reading their memory.
  await new Promise((r) => setTimeout(r, 5000));
  const parked = childMemory();

  bar = progress(`approving ${runIds.length} runs`, runIds.length);
  const t1 = performance.now();
  const approved = await closedLoop(runIds.length, opts.concurrency, (i) => approve(bench, runIds[i], 'review'), bar);
  bar.stop();
  await pollUntil(
    'every approved run to complete',
    async () => (await countWorkflows(bench.client, `${base} AND ExecutionStatus="Completed"`)) >= runIds.length,
    600_000 + opts.runs * 500,
    250,
  );
  const drainS = (performance.now() - t1) / 1000;
  await new Promise((r) => setTimeout(r, 5000));
  const drained = childMemory();

  const mib = (b: number | undefined) => Math.round(((b ?? NaN) / 2 ** 20) * 10) / 10;
  const memoryMiB: ParkedResult['memoryMiB'] = {};
  // The bare worker idles through this benchmark: only the processes that hold the parked runs are reported.
  for (const role of ['temporal', 'worker', 'facade'].filter((r) => r in parked)) {
    memoryMiB[role] = {
      before: mib(before[role]),
      parked: mib(parked[role]),
      drained: mib(drained[role]),
      perParkedRunKiB: Math.round((((parked[role] ?? NaN) - (before[role] ?? NaN)) / 1024 / Math.max(1, runIds.length)) * 10) / 10,
    };
  }
  return {
    runs: opts.runs,
    concurrency: opts.concurrency,
    parkS: Math.round(parkS * 10) / 10,
    startFailures: started.failures,
    memoryMiB,
    approveLatencyMs: summarise(approved.latenciesMs),
    approveFailures: approved.failures,
    ...((started.firstError ?? approved.firstError) ? { firstError: started.firstError ?? approved.firstError } : {}),
    drainS: Math.round(drainS * 10) / 10,
    drainRunsPerS: Math.round((runIds.length / drainS) * 10) / 10,
  };
}
