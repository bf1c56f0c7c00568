import { ApplicationFailure } from '@temporalio/common';
import type { AuditStore } from '../src/audit';
import { FailureType, type AuditEventInput } from '../src/contracts';
import type { Logger, RunMetrics } from '../src/telemetry';

const TERMINAL: Record<string, string> = {
  'run.completed': 'completed',
  'run.failed': 'failed',
  'run.cancelled': 'cancelled',
};

/**
 * Appends one event to the audit trail. The id is deterministic, so a retry after a lost acknowledgement is a
 * no-op; failures are retryable (the workflow retries without limit) so no run ends with a missing event.
 */
export function createRecordAuditActivity(deps: { audit: AuditStore; metrics: RunMetrics; logger: Logger }) {
  return async function recordAudit(event: AuditEventInput): Promise<{ inserted: boolean; chainIndex: number }> {
    const started = performance.now();
    try {
      const res = await deps.audit.append(event);
      deps.metrics.auditWriteDuration.observe({ outcome: 'ok' }, (performance.now() - started) / 1000);
      const status = TERMINAL[event.type];
      // Count a run once, when its terminal event is first stored, however often the write is retried.
      if (status && res.inserted) {
        deps.metrics.workflowsTotal.inc({ status, workflow_name: event.pipeline });
        const durationMs = Number(event.data.durationMs);
        if (Number.isFinite(durationMs)) {
          deps.metrics.workflowDuration.observe({ status, workflow_name: event.pipeline }, durationMs / 1000);
        }
      }
      return { inserted: res.inserted, chainIndex: res.chainIndex };
    } catch (err) {
      deps.metrics.auditWriteDuration.observe({ outcome: 'error' }, (performance.now() - started) / 1000);
      const message = err instanceof Error ? err.message : String(err);
      deps.logger.error({ eventId: event.id, runId: event.runId, stage: event.stage, err: message }, 'audit write failed; will retry');
      throw ApplicationFailure.create({ type: FailureType.AuditUnavailable, message: `audit write failed: ${message}` });
    }
  };
}
