export { createLogger, traceFields, REDACT_PATHS, type Logger } from './logger';
export { createRegistry, createRunMetrics, createHttpMetrics, type RunMetrics, type HttpMetrics } from './metrics';
export { startMetricsServer } from './metrics-server';
export {
  clientTracingInterceptors,
  routeSpanNames,
  startTracing,
  workerTracingOptions,
  WORKFLOW_TRACING_INTERCEPTORS,
  type Tracing,
  type TracingOptions,
} from './tracing';
export { startAgentHealthChecks, type AgentHealthChecker, type HealthCheckedAgent } from './agent-health';
export { installSdkMetrics } from './sdk-metrics';
export { createTemporalObserver, registerTemporalGauges, workersPollCheck, type TemporalObserver, type TaskQueueState } from './temporal-gauges';
