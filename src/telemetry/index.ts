export { createLogger, REDACT_PATHS, type Logger } from './logger';
export { createRegistry, createRunMetrics, createHttpMetrics, type RunMetrics, type HttpMetrics } from './metrics';
export { startMetricsServer } from './metrics-server';
