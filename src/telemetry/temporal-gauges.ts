import type { Client } from '@temporalio/client';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { temporal as proto } from '@temporalio/proto';
import { Gauge, type Registry } from 'prom-client';
import { PIPELINE_WORKFLOW, SA_PIPELINE } from '../contracts';

export type TaskType = 'workflow' | 'activity';

export interface TaskQueueState {
  taskQueue: string;
  taskType: TaskType;
  /** Tasks waiting for a worker (Temporal's approximation). */
  backlog: number;
  /** Age of the oldest waiting task. @format seconds */
  backlogAgeSeconds: number;
  /** Workers whose last poll is within the configured recency. */
  pollers: number;
  /** When the most recent poll arrived, if any worker polled at all. @format epoch ms */
  lastPollAt?: number;
}

export interface ApprovalBacklog {
  pipeline: string;
  waiting: number;
  /** How long the oldest waiting run has existed (visibility does not say when it began waiting). @format seconds */
  oldestSeconds: number;
}

export interface RunTimes {
  pipeline: string;
  /** Wall times of completed runs. @format seconds */
  durations: number[];
}

export interface TemporalObserverOptions {
  temporal: Client;
  namespace: string;
  /** The one task queue watched: label values stay bounded. */
  taskQueue: string;
  /** Pipeline names that may appear as label values (the loaded definitions). */
  pipelines: () => readonly string[];
  /** A poll older than this does not count as a live worker. @format seconds */
  pollerMaxAgeS: number;
  /** How long a describeTaskQueue answer is reused. @default 2000 @format ms */
  taskQueueCacheMs?: number;
  /** How long a visibility answer is reused. @default 10000 @format ms */
  visibilityCacheMs?: number;
  now?: () => number;
}

/** Most runs read per visibility scan: a scrape must stay cheap even with a huge backlog. */
const MAX_SCANNED = 5000;
const TASK_TYPES: Record<TaskType, proto.api.enums.v1.TaskQueueType> = {
  workflow: proto.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
  activity: proto.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
};

/** Remembers a promise for `ttlMs`; a rejected one is forgotten at once, so the next call retries. */
function cached<T>(ttlMs: number, now: () => number, load: () => Promise<T>): () => Promise<T> {
  let entry: { at: number; value: Promise<T> } | undefined;
  // One load at a time: while Temporal is slow, scrapes and probes share the call in flight instead of piling up.
  let inFlight: Promise<T> | undefined;
  return () => {
    if (inFlight) return inFlight;
    if (entry && now() - entry.at < ttlMs) return entry.value;
    const value = load();
    inFlight = value;
    value
      .then(
        () => {
          // The answer is fresh from when it arrived, not from when it was asked for.
          entry = { at: now(), value };
        },
        () => {
          entry = undefined;
        },
      )
      .finally(() => {
        if (inFlight === value) inFlight = undefined;
      });
    return value;
  };
}

/**
 * What the facade reads from Temporal about the system as a whole: the task queue's backlog and pollers
 * (`describeTaskQueue` with `reportStats`) and, from visibility, the runs waiting for an approval and the run times
 * of the last hour. Answers are cached briefly, so /metrics, /ready and /v1/system/status can share them.
 */
export function createTemporalObserver(opts: TemporalObserverOptions) {
  const now = opts.now ?? Date.now;
  const known = (name: string | undefined): name is string => name !== undefined && opts.pipelines().includes(name);

  const describe = async (taskType: TaskType): Promise<TaskQueueState> => {
    const res = await opts.temporal.workflowService.describeTaskQueue({
      namespace: opts.namespace,
      taskQueue: { name: opts.taskQueue, kind: proto.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      taskQueueType: TASK_TYPES[taskType],
      reportStats: true,
    });
    const polls = (res.pollers ?? []).map((p) => optionalTsToMs(p.lastAccessTime) ?? 0);
    const recent = polls.filter((at) => now() - at <= opts.pollerMaxAgeS * 1000);
    return {
      taskQueue: opts.taskQueue,
      taskType,
      backlog: Number(res.stats?.approximateBacklogCount ?? 0),
      backlogAgeSeconds: (optionalTsToMs(res.stats?.approximateBacklogAge) ?? 0) / 1000,
      pollers: recent.length,
      lastPollAt: polls.length ? Math.max(...polls) : undefined,
    };
  };

  const taskQueues = cached(opts.taskQueueCacheMs ?? 2000, now, (): Promise<TaskQueueState[]> => Promise.all([describe('workflow'), describe('activity')]));

  const approvals = cached(opts.visibilityCacheMs ?? 10_000, now, async (): Promise<ApprovalBacklog[]> => {
    const byPipeline = new Map<string, ApprovalBacklog>(opts.pipelines().map((p) => [p, { pipeline: p, waiting: 0, oldestSeconds: 0 }]));
    let scanned = 0;
    const query = `WorkflowType = '${PIPELINE_WORKFLOW}' AND ExecutionStatus = 'Running' AND AgentryStatus = 'awaiting-approval'`;
    for await (const run of opts.temporal.workflow.list({ query, pageSize: 1000 })) {
      if (++scanned > MAX_SCANNED) break;
      const pipeline = run.typedSearchAttributes.get(SA_PIPELINE);
      if (!known(pipeline)) continue;
      const entry = byPipeline.get(pipeline) as ApprovalBacklog;
      entry.waiting += 1;
      entry.oldestSeconds = Math.max(entry.oldestSeconds, (now() - run.startTime.getTime()) / 1000);
    }
    return [...byPipeline.values()];
  });

  const runTimes = cached(opts.visibilityCacheMs ?? 10_000, now, async (): Promise<RunTimes[]> => {
    const since = new Date(now() - 3600_000).toISOString();
    const byPipeline = new Map<string, number[]>();
    let scanned = 0;
    const query = `WorkflowType = '${PIPELINE_WORKFLOW}' AND ExecutionStatus = 'Completed' AND CloseTime > '${since}'`;
    for await (const run of opts.temporal.workflow.list({ query, pageSize: 1000 })) {
      if (++scanned > MAX_SCANNED) break;
      const pipeline = run.typedSearchAttributes.get(SA_PIPELINE);
      if (!known(pipeline) || !run.closeTime) continue;
      const list = byPipeline.get(pipeline) ?? [];
      list.push((run.closeTime.getTime() - run.startTime.getTime()) / 1000);
      byPipeline.set(pipeline, list);
    }
    return [...byPipeline].map(([pipeline, durations]) => ({ pipeline, durations }));
  });

  return { taskQueue: opts.taskQueue, taskQueues, approvals, runTimes };
}
export type TemporalObserver = ReturnType<typeof createTemporalObserver>;

/**
 * Gauges computed at scrape time from the observer, like `active_workflows`: every facade reports the same values,
 * so rules take `max`. When Temporal does not answer, the last values stay (/ready reports the outage).
 */
export function registerTemporalGauges(registry: Registry, observer: TemporalObserver): void {
  new Gauge({
    name: 'approval_backlog_oldest_seconds',
    help: 'How long the oldest run of a pipeline waiting for an approval has existed (0 when none waits), from Temporal visibility.',
    labelNames: ['workflow_name'] as const,
    registers: [registry],
    async collect() {
      const backlog = await observer.approvals().catch(() => undefined);
      for (const b of backlog ?? []) this.set({ workflow_name: b.pipeline }, Math.round(b.oldestSeconds));
    },
  });
  new Gauge({
    name: 'approval_backlog_runs',
    help: 'Runs of a pipeline waiting for an approval, from Temporal visibility.',
    labelNames: ['workflow_name'] as const,
    registers: [registry],
    async collect() {
      const backlog = await observer.approvals().catch(() => undefined);
      for (const b of backlog ?? []) this.set({ workflow_name: b.pipeline }, b.waiting);
    },
  });
  new Gauge({
    name: 'temporal_task_queue_backlog',
    help: 'Tasks waiting for a worker on the configured task queue (approximate, from describeTaskQueue), by task type.',
    labelNames: ['task_queue', 'task_type'] as const,
    registers: [registry],
    async collect() {
      const queues = await observer.taskQueues().catch(() => undefined);
      for (const q of queues ?? []) this.set({ task_queue: q.taskQueue, task_type: q.taskType }, q.backlog);
    },
  });
  new Gauge({
    name: 'temporal_task_queue_backlog_age_seconds',
    help: 'Age of the oldest task waiting on the configured task queue (approximate), by task type.',
    labelNames: ['task_queue', 'task_type'] as const,
    registers: [registry],
    async collect() {
      const queues = await observer.taskQueues().catch(() => undefined);
      for (const q of queues ?? []) this.set({ task_queue: q.taskQueue, task_type: q.taskType }, q.backlogAgeSeconds);
    },
  });
  new Gauge({
    name: 'temporal_task_queue_pollers',
    help: 'Workers that polled the configured task queue recently (READY_WORKER_POLL_MAX_AGE_S), by task type.',
    labelNames: ['task_queue', 'task_type'] as const,
    registers: [registry],
    async collect() {
      const queues = await observer.taskQueues().catch(() => undefined);
      for (const q of queues ?? []) this.set({ task_queue: q.taskQueue, task_type: q.taskType }, q.pollers);
    },
  });
}

/** The /ready check that workers take work: a recent poll for both workflow and activity tasks. */
export function workersPollCheck(observer: TemporalObserver, pollerMaxAgeS: number) {
  return async (): Promise<{ ok: boolean; detail: string }> => {
    const queues = await observer.taskQueues();
    const idle = queues.filter((q) => q.pollers === 0);
    const said = (q: TaskQueueState) => `${q.taskType} tasks: ${q.pollers} poller(s)`;
    if (idle.length === 0) return { ok: true, detail: `task queue ${observer.taskQueue}: ${queues.map(said).join(', ')}` };
    return {
      ok: false,
      detail: `no worker polled ${idle.map((q) => q.taskType).join(' and ')} tasks of task queue ${observer.taskQueue} in the last ${pollerMaxAgeS} s`,
    };
  };
}
