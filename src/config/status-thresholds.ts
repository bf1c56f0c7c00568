/**
 * The levels `GET /v1/system/status` judges against. They live with the configuration (STATUS_THRESHOLDS overrides
 * them) rather than with the facade, so that configuration does not depend on facade code.
 */

/** A warning and a critical level; a value above a level (strictly) raises an issue of that severity. */
export interface Levels {
  warning: number;
  critical: number;
}

export interface StatusThresholds {
  /** CPU the process uses, in cores (1 = one core busy). @format cores */
  cpuCores: Levels;
  /** Resident memory of the process. @format bytes */
  memoryBytes: Levels;
  /** Share of API requests answered with a 5xx over the window. @format ratio 0..1 */
  httpErrorRatio: Levels;
  /** p95 wall time of completed runs of one pipeline, over the last hour. @format seconds */
  runTimeP95Seconds: Levels;
  /** Tasks waiting for a worker, per task queue and task type. @format tasks */
  taskQueueBacklog: Levels;
  /** How long the oldest run of a pipeline has waited for an approval. @format seconds */
  approvalAgeSeconds: Levels;
}

/** Defaults in line with monitoring/alerts.yml: the warning levels match the alerts, critical is well past them. */
export const DEFAULT_STATUS_THRESHOLDS: StatusThresholds = {
  cpuCores: { warning: 0.8, critical: 0.95 },
  memoryBytes: { warning: 768 * 1024 * 1024, critical: 900 * 1024 * 1024 },
  httpErrorRatio: { warning: 0.01, critical: 0.05 },
  runTimeP95Seconds: { warning: 900, critical: 3600 },
  taskQueueBacklog: { warning: 100, critical: 1000 },
  approvalAgeSeconds: { warning: 14_400, critical: 86_400 },
};
