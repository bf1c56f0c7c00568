import type { Levels, StatusThresholds } from '../config/status-thresholds';
import { percentile as nearestRank } from '../telemetry/percentile';
/**
 * The judgement behind `GET /v1/system/status`: measured values in, current issues out. Pure (no I/O, no clock), so
 * every threshold can be tested with plain numbers; `system-status-source.ts` gathers the values.
 */

export const SEVERITIES = ['info', 'warning', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

export { DEFAULT_STATUS_THRESHOLDS, type Levels, type StatusThresholds } from '../config/status-thresholds';

/** Below this many API requests in the window an error ratio says too little to raise an issue. */
export const MIN_REQUESTS_FOR_ERROR_RATIO = 20;
/** Below this many completed runs of a pipeline its p95 run time is not judged. */
export const MIN_RUNS_FOR_P95 = 5;

export interface StatusInputs {
  /** Process CPU over the window; absent when not measured. @format cores */
  cpuCores?: number;
  /** @format bytes */
  memoryBytes?: number;
  /** API requests (probes and /metrics excluded) over the window, and how many of them were answered 5xx. */
  http?: { requests: number; serverErrors: number; windowSeconds: number };
  /** Wall times of completed runs, by pipeline. @format seconds */
  runTimes?: { pipeline: string; durations: number[] }[];
  /** The configured task queue, per task type: waiting tasks and workers that polled recently. */
  taskQueues?: { taskQueue: string; taskType: 'workflow' | 'activity'; backlog: number; pollers: number }[];
  /** Runs waiting for an approval, by pipeline. @format seconds */
  approvals?: { pipeline: string; waiting: number; oldestSeconds: number }[];
  /** Sources that could not be read (e.g. Temporal visibility); each becomes an issue of its own. */
  unavailable?: { source: string; detail: string }[];
}

export interface StatusIssue {
  /** Stable per condition (and per pipeline or task queue): `memory`, `approval-backlog:support-triage`. */
  id: string;
  severity: Severity;
  summary: string;
  /** The measured value, in the unit of the threshold; null when it could not be measured. */
  value: number | null;
  /** The level it crossed; null when there is none (an unreachable source). */
  threshold: number | null;
  recommendation: string;
}

export interface SystemStatus {
  /** The worst severity among the issues; `ok` when there are none. */
  status: 'ok' | Severity;
  issues: StatusIssue[];
}

/** The q-quantile (0..1) by the nearest-rank method; undefined for no values. */
export function percentile(values: readonly number[], q: number): number | undefined {
  return values.length === 0 ? undefined : nearestRank(values, q * 100);
}

function level(value: number, levels: Levels): { severity: Severity; threshold: number } | undefined {
  if (value > levels.critical) return { severity: 'critical', threshold: levels.critical };
  if (value > levels.warning) return { severity: 'warning', threshold: levels.warning };
  return undefined;
}

const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits;
const mib = (bytes: number) => `${Math.round(bytes / (1024 * 1024))} MiB`;
const duration = (s: number) => (s >= 3600 ? `${round(s / 3600, 1)} h` : s >= 60 ? `${round(s / 60, 1)} min` : `${round(s, 1)} s`);
const rank: Record<'ok' | Severity, number> = { ok: 0, info: 1, warning: 2, critical: 3 };

/** The current issues, worst first, and the overall status. */
export function evaluateStatus(inputs: StatusInputs, thresholds: StatusThresholds): SystemStatus {
  const issues: StatusIssue[] = [];
  const judge = (value: number, levels: Levels, make: (crossed: number) => Omit<StatusIssue, 'severity' | 'value' | 'threshold'>) => {
    const hit = level(value, levels);
    if (hit) issues.push({ ...make(hit.threshold), severity: hit.severity, value: round(value), threshold: hit.threshold });
  };

  for (const u of inputs.unavailable ?? []) {
    issues.push({
      id: `source-unavailable:${u.source}`,
      severity: 'critical',
      summary: `${u.source} could not be read: ${u.detail}`,
      value: null,
      threshold: null,
      recommendation: `Check that ${u.source} is reachable from the facade (GET /ready names the failing dependency); the checks that need it are skipped until then.`,
    });
  }

  if (inputs.cpuCores !== undefined) {
    judge(inputs.cpuCores, thresholds.cpuCores, (t) => ({
      id: 'cpu',
      summary: `The facade uses ${round(inputs.cpuCores as number, 2)} CPU cores (threshold ${t})`,
      recommendation: 'Add facade replicas or raise their CPU limit; look for a client sending far more requests than usual (rate_limited_total, http_requests_total by route).',
    }));
  }

  if (inputs.memoryBytes !== undefined) {
    judge(inputs.memoryBytes, thresholds.memoryBytes, (t) => ({
      id: 'memory',
      summary: `The facade holds ${mib(inputs.memoryBytes as number)} of resident memory (threshold ${mib(t)})`,
      recommendation: 'Raise the container memory limit or restart the replica; if it keeps growing, take a heap snapshot before it is killed.',
    }));
  }

  if (inputs.http && inputs.http.requests >= MIN_REQUESTS_FOR_ERROR_RATIO) {
    const { requests, serverErrors, windowSeconds } = inputs.http;
    judge(serverErrors / requests, thresholds.httpErrorRatio, (t) => ({
      id: 'http-error-rate',
      summary: `${serverErrors} of ${requests} API requests in the last ${duration(windowSeconds)} were answered with a 5xx (threshold ${round(t * 100, 2)}%)`,
      recommendation: 'Read the facade log for the correlation ids of the 500s and GET /ready for a failing dependency (Temporal, PostgreSQL, Redis).',
    }));
  }

  for (const r of inputs.runTimes ?? []) {
    if (r.durations.length < MIN_RUNS_FOR_P95) continue;
    const p95 = percentile(r.durations, 0.95) as number;
    judge(p95, thresholds.runTimeP95Seconds, (t) => ({
      id: `run-time-p95:${r.pipeline}`,
      summary: `p95 run time of ${r.pipeline} is ${duration(p95)} over ${r.durations.length} completed runs (threshold ${duration(t)})`,
      recommendation: 'Compare the stage latencies (agent_duration_seconds) to find the slow stage; add workers if tasks wait in the task queue, or raise the limits of a slow model provider.',
    }));
  }

  for (const q of inputs.taskQueues ?? []) {
    if (q.pollers === 0) {
      issues.push({
        id: `workers:${q.taskQueue}:${q.taskType}`,
        severity: 'critical',
        summary: `No worker has polled ${q.taskType} tasks of task queue ${q.taskQueue} recently`,
        value: 0,
        threshold: 1,
        recommendation: 'Start a worker (or check why the workers cannot reach Temporal): runs make no progress until one polls.',
      });
    }
    judge(q.backlog, thresholds.taskQueueBacklog, (t) => ({
      id: `task-queue-backlog:${q.taskQueue}:${q.taskType}`,
      summary: `${q.backlog} ${q.taskType} tasks wait for a worker on task queue ${q.taskQueue} (threshold ${t})`,
      recommendation: 'Add workers (or let the autoscaler do it); if workers are up, check their task slots and activity errors.',
    }));
  }

  for (const a of inputs.approvals ?? []) {
    if (a.waiting === 0) continue;
    judge(a.oldestSeconds, thresholds.approvalAgeSeconds, (t) => ({
      id: `approval-backlog:${a.pipeline}`,
      summary: `${a.waiting} run(s) of ${a.pipeline} wait for an approval, the oldest for ${duration(a.oldestSeconds)} (threshold ${duration(t)})`,
      recommendation: `Ask the approvers of ${a.pipeline} to decide (list them with AgentryStatus = "awaiting-approval"), or review the stage's timeout and escalation settings.`,
    }));
  }

  issues.sort((x, y) => rank[y.severity] - rank[x.severity] || x.id.localeCompare(y.id));
  const status = issues.reduce<'ok' | Severity>((worst, i) => (rank[i.severity] > rank[worst] ? i.severity : worst), 'ok');
  return { status, issues };
}
