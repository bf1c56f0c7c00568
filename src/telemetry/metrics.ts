import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Prometheus metrics of one process. Labels are bounded by construction: route templates, agent names from the
 * registry, pipeline names from loaded definitions and fixed status words. Never a run id, tenant or raw path.
 */
export function createRunMetrics(registry: Registry) {
  return {
    workflowsTotal: new Counter({
      name: 'workflows_total',
      help: 'Pipeline runs that reached an end state, by status and workflow name.',
      labelNames: ['status', 'workflow_name'] as const,
      registers: [registry],
    }),
    workflowDuration: new Histogram({
      name: 'workflow_duration_seconds',
      help: 'Wall time of pipeline runs from start to end state.',
      labelNames: ['status', 'workflow_name'] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
      registers: [registry],
    }),
    agentExecutions: new Counter({
      name: 'agent_executions_total',
      help: 'Agent invocations (each activity attempt), by agent and outcome.',
      labelNames: ['agent_name', 'status'] as const,
      registers: [registry],
    }),
    agentDuration: new Histogram({
      name: 'agent_duration_seconds',
      help: 'Time spent in one agent invocation.',
      labelNames: ['agent_name', 'status'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    auditWriteDuration: new Histogram({
      name: 'audit_write_duration_seconds',
      help: 'Latency of one audit append, by outcome.',
      labelNames: ['outcome'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers: [registry],
    }),
  };
}
export type RunMetrics = ReturnType<typeof createRunMetrics>;

export function createHttpMetrics(registry: Registry) {
  return {
    requests: new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests by method, route template and status code.',
      labelNames: ['method', 'route', 'status'] as const,
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request latency by method and route template.',
      labelNames: ['method', 'route'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'rate_limited_total',
      help: 'Requests refused by a rate or concurrency limit, by limit.',
      labelNames: ['limit'] as const,
      registers: [registry],
    }),
    authFailures: new Counter({
      name: 'auth_failures_total',
      help: 'Requests refused by authentication or authorisation, by reason.',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    limiterFailOpen: new Counter({
      name: 'limiter_fail_open_total',
      help: 'Requests let through without a limit check because Redis was unreachable (RATE_LIMIT_FAIL_OPEN), by check.',
      labelNames: ['check'] as const,
      registers: [registry],
    }),
    blockedRequests: new Counter({
      name: 'intrusion_blocked_requests_total',
      help: 'Requests refused because their subject or client address is blocked by the intrusion detector.',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    blocksStarted: new Counter({
      name: 'intrusion_blocks_total',
      help: 'Blocks started by the intrusion detector (counted by the replica that started each), by identity kind.',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    eventStreams: new Gauge({
      name: 'http_event_streams_open',
      help: 'Run event streams (Server-Sent Events) open on this facade replica; each polls its run through Temporal.',
      registers: [registry],
    }),
    slotsReclaimed: new Counter({
      name: 'run_slots_reclaimed_total',
      help: 'Concurrency slots freed by the facade because their run had closed without releasing them (terminated, or its release failed).',
      registers: [registry],
    }),
    runsStarted: new Counter({
      name: 'runs_started_total',
      help: 'Runs started through the facade, by pipeline.',
      labelNames: ['workflow_name'] as const,
      registers: [registry],
    }),
  };
}
export type HttpMetrics = ReturnType<typeof createHttpMetrics>;

/** A registry with Node's default process metrics (memory, CPU, event loop). */
export function createRegistry(process: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ process });
  collectDefaultMetrics({ register: registry });
  return registry;
}
