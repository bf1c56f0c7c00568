import type { Registry } from 'prom-client';
import type { TemporalObserver } from '../telemetry';
import { evaluateStatus, type StatusInputs, type StatusThresholds, type SystemStatus } from './system-status';

/** Routes that are not API traffic: probes and scrapes do not count towards the error ratio. */
const NOT_API = new Set(['/health', '/ready', '/metrics', 'unmatched']);

const MIN_RATE_SPAN_MS = 10_000;

interface Counters {
  at: number;
  cpuSeconds: number;
  requests: number;
  serverErrors: number;
}

export interface SystemStatusSourceOptions {
  registry: Registry;
  observer: TemporalObserver;
  thresholds: StatusThresholds;
  /** Rates (CPU, error ratio) are taken over this window. @default 300 @format seconds */
  windowS?: number;
  now?: () => number;
}

export interface SystemStatusSource {
  /** Measures now and judges; never throws (an unreadable source becomes an issue). */
  read(): Promise<SystemStatus & { checkedAt: string; thresholds: StatusThresholds }>;
  stop(): void;
}

async function metricValues(registry: Registry, name: string) {
  const metric = registry.getSingleMetric(name);
  return metric ? (await metric.get()).values : [];
}

/**
 * Gathers what `GET /v1/system/status` judges: CPU, memory and HTTP errors from this process's own registry
 * (sampled every `windowS / 10`, so rates cover the last window rather than the process's whole life), task queue
 * and approval backlogs and run times from Temporal.
 */
export function createSystemStatusSource(opts: SystemStatusSourceOptions): SystemStatusSource {
  const now = opts.now ?? Date.now;
  const windowMs = (opts.windowS ?? 300) * 1000;
  const samples: Counters[] = [];

  /** Reads the counters; only the timer keeps them (`keep`), so the window's size does not follow the read rate. */
  const sample = async (keep: boolean): Promise<Counters> => {
    const [cpu, requests] = await Promise.all([metricValues(opts.registry, 'process_cpu_seconds_total'), metricValues(opts.registry, 'http_requests_total')]);
    const api = requests.filter((v) => !NOT_API.has(String(v.labels.route)));
    const current = {
      at: now(),
      cpuSeconds: cpu.reduce((s, v) => s + v.value, 0),
      requests: api.reduce((s, v) => s + v.value, 0),
      serverErrors: api.filter((v) => String(v.labels.status).startsWith('5')).reduce((s, v) => s + v.value, 0),
    };
    if (keep) {
      samples.push(current);
      while (samples.length > 1 && current.at - samples[0].at > windowMs) samples.shift();
    }
    return current;
  };
  const timer = setInterval(() => void sample(true).catch(() => undefined), Math.max(1000, windowMs / 10));
  timer.unref();
  void sample(true).catch(() => undefined);

  const measure = async (): Promise<StatusInputs> => {
    const current = await sample(false);
    const oldest = samples[0] ?? current;
    // A rate over a few milliseconds is noise: until the window holds 10 s, rates run from the process's start.
    const base: Counters =
      current.at - oldest.at >= MIN_RATE_SPAN_MS ? oldest : { at: current.at - process.uptime() * 1000, cpuSeconds: 0, requests: 0, serverErrors: 0 };
    const seconds = Math.max(0.001, (current.at - base.at) / 1000);
    const memory = (await metricValues(opts.registry, 'process_resident_memory_bytes'))[0]?.value ?? process.memoryUsage.rss();
    const inputs: StatusInputs = {
      cpuCores: (current.cpuSeconds - base.cpuSeconds) / seconds,
      memoryBytes: memory,
      http: { requests: current.requests - base.requests, serverErrors: current.serverErrors - base.serverErrors, windowSeconds: Math.round(seconds) },
      unavailable: [],
    };
    const [queues, approvals, runTimes] = await Promise.allSettled([opts.observer.taskQueues(), opts.observer.approvals(), opts.observer.runTimes()]);
    if (queues.status === 'fulfilled') inputs.taskQueues = queues.value;
    else inputs.unavailable?.push({ source: 'Temporal task queue', detail: reason(queues.reason) });
    if (approvals.status === 'fulfilled') inputs.approvals = approvals.value;
    if (runTimes.status === 'fulfilled') inputs.runTimes = runTimes.value;
    if (approvals.status === 'rejected' || runTimes.status === 'rejected') {
      const failed = approvals.status === 'rejected' ? approvals.reason : (runTimes as PromiseRejectedResult).reason;
      inputs.unavailable?.push({ source: 'Temporal visibility', detail: reason(failed) });
    }
    return inputs;
  };

  return {
    async read() {
      const status = evaluateStatus(await measure(), opts.thresholds);
      return { ...status, checkedAt: new Date(now()).toISOString(), thresholds: opts.thresholds };
    },
    stop: () => clearInterval(timer),
  };
}

function reason(err: unknown): string {
  // Client errors can be long (gRPC details); the first line says what happened.
  return (err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 200);
}
