import { closedLoop, drainAll, latencyRatios, progress, ratio, summarise, type LatencySummary } from './measure';
import type { BenchStack } from './bench-stack';
import { loadTickets, triageRuns, type Side } from './workloads';

export interface ThroughputSide {
  runs: number;
  failures: number;
  firstError?: string;
  wallS: number;
  runsPerS: number;
  latencyMs: LatencySummary;
}

export interface ThroughputResult {
  runs: number;
  concurrency: number;
  rounds: number;
  warmup: number;
  facade: ThroughputSide;
  bare: ThroughputSide;
  /** facade / bare: below 1 for throughput and above 1 for latency means the facade path costs that much. */
  ratio: { runsPerS: number; p50: number; p95: number; p99: number };
}

export interface ThroughputOptions {
  runs: number;
  concurrency: number;
  /** The runs of each side are split into this many rounds, alternating sides, so drifting load hits both. */
  rounds: number;
}

/**
 * N triage runs per side at concurrency C, closed loop: a run's latency is from its start request until Temporal
 * reports its result. Sides alternate in rounds, each preceded by a short warm-up that is not counted.
 */
export async function throughputBench(bench: BenchStack, opts: ThroughputOptions): Promise<ThroughputResult> {
  const runs = triageRuns(bench, loadTickets());
  const warmup = Math.min(opts.concurrency * 2, Math.max(4, Math.floor(opts.runs / 10)));
  const perRound = Math.ceil(opts.runs / opts.rounds);
  const acc: Record<Side, { latencies: number[]; failures: number; wallMs: number; runs: number; firstError?: string }> = {
    facade: { latencies: [], failures: 0, wallMs: 0, runs: 0 },
    bare: { latencies: [], failures: 0, wallMs: 0, runs: 0 },
  };
  for (let round = 0; round < opts.rounds; round++) {
    const n = Math.min(perRound, opts.runs - round * perRound);
    if (n <= 0) break;
    // Which side goes first alternates too, so neither always follows the other's leftovers.
    const order: Side[] = round % 2 === 0 ? ['bare', 'facade'] : ['facade', 'bare'];
    for (const side of order) {
      await closedLoop(warmup, opts.concurrency, (i) => runs.complete(side, i));
      await drainAll(bench.client);
      const bar = progress(`throughput ${side} (round ${round + 1}/${opts.rounds})`, n);
      const r = await closedLoop(n, opts.concurrency, (i) => runs.complete(side, i), bar);
      bar.stop();
      const a = acc[side];
      a.latencies.push(...r.latenciesMs);
      a.failures += r.failures;
      a.wallMs += r.wallMs;
      a.runs += n;
      a.firstError ??= r.firstError;
      await drainAll(bench.client);
    }
  }
  const side = (s: Side): ThroughputSide => {
    const a = acc[s];
    return {
      runs: a.runs,
      failures: a.failures,
      ...(a.firstError ? { firstError: a.firstError } : {}),
      wallS: Math.round(a.wallMs) / 1000,
      runsPerS: Math.round(((a.runs - a.failures) / (a.wallMs / 1000)) * 100) / 100,
      latencyMs: summarise(a.latencies),
    };
  };
  const facade = side('facade');
  const bare = side('bare');
  return {
    runs: opts.runs,
    concurrency: opts.concurrency,
    rounds: opts.rounds,
    warmup,
    facade,
    bare,
    ratio: {
      runsPerS: ratio(facade.runsPerS, bare.runsPerS),
      ...latencyRatios(facade.latencyMs, bare.latencyMs),
    },
  };
}
