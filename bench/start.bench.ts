import { drainAll, latencyRatios, openLoop, progress, summarise, type LatencySummary } from './measure';
import type { BenchStack } from './bench-stack';
import { loadTickets, triageRuns, type Side } from './workloads';

export interface StartSide {
  requests: number;
  failures: number;
  firstError?: string;
  /** The lowest rate the client achieved in any round (below the target when the client fell behind). */
  achievedRatePerS: number;
  latencyMs: LatencySummary;
}

export interface StartResult {
  ratePerS: number;
  requests: number;
  rounds?: number;
  facade: StartSide;
  bare: StartSide;
  ratio: { p50: number; p95: number; p99: number };
}

/**
 * Start latency at a fixed request rate: `POST /v1/pipelines/bench-triage/runs` (authentication, limits, input
 * check and definition snapshot, then `workflow.start`) against a raw `client.workflow.start` of the bare workflow.
 * The started runs execute meanwhile, as they would in service; each side's runs are drained before the next.
 */
export async function startBench(bench: BenchStack, opts: { ratePerS: number; requests: number; rounds: number }): Promise<StartResult> {
  const runs = triageRuns(bench, loadTickets());
  const acc: Record<Side, { latencies: number[]; failures: number; rates: number[]; firstError?: string }> = {
    facade: { latencies: [], failures: 0, rates: [] },
    bare: { latencies: [], failures: 0, rates: [] },
  };
  // A few starts on each side first, so connection set-up and JIT warm-up are not measured.
  for (const side of ['bare', 'facade'] as const) await openLoop(10, opts.ratePerS, async (i) => void (await runs.start(side, i)));
  await drainAll(bench.client);
  const perRound = Math.ceil(opts.requests / opts.rounds);
  for (let round = 0; round < opts.rounds; round++) {
    const n = Math.min(perRound, opts.requests - round * perRound);
    if (n <= 0) break;
    // Sides alternate, and so does which one goes first, as in the throughput benchmark.
    for (const side of (round % 2 === 0 ? ['bare', 'facade'] : ['facade', 'bare']) as Side[]) {
      const bar = progress(`start latency ${side} @ ${opts.ratePerS}/s (${round + 1}/${opts.rounds})`, n);
      const r = await openLoop(n, opts.ratePerS, async (i) => void (await runs.start(side, i)), bar);
      bar.stop();
      await drainAll(bench.client);
      const a = acc[side];
      a.latencies.push(...r.latenciesMs);
      a.failures += r.failures;
      a.rates.push(r.achievedRate);
      a.firstError ??= r.firstError;
    }
  }
  const measured = (side: Side): StartSide => {
    const a = acc[side];
    return {
      requests: a.latencies.length + a.failures,
      failures: a.failures,
      ...(a.firstError ? { firstError: a.firstError } : {}),
      achievedRatePerS: Math.round(Math.min(...a.rates) * 10) / 10,
      latencyMs: summarise(a.latencies),
    };
  };
  const facade = measured('facade');
  const bare = measured('bare');
  return {
    ratePerS: opts.ratePerS,
    requests: opts.requests,
    rounds: opts.rounds,
    facade,
    bare,
    ratio: latencyRatios(facade.latencyMs, bare.latencyMs),
  };
}
