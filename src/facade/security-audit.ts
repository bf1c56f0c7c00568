import { randomUUID } from 'node:crypto';
import type { Response } from 'express';
import type { AuditStore } from '../audit';
import type { Logger } from '../telemetry';
import type { AppError } from './errors';
import type { RunRef } from './run-lookup';

/** What the caller tried to do to a run. */
export type RunAction = 'approve' | 'signal' | 'cancel';

export interface Denial {
  action: RunAction;
  /** Stable machine-readable reason, e.g. `role_required`, `approver_lacks_role`, `self_approval`. */
  reason: string;
  stage?: string;
  signal?: string;
}

/**
 * Writes `security.denied` events to the tenant's audit trail for refused run-control requests. The write must
 * never change the answer: when PostgreSQL is unavailable the denial is logged and the caller still gets its 403.
 */
export function createSecurityAudit(deps: { audit: Pick<AuditStore, 'append'>; logger: Logger }) {
  async function record(res: Response, run: RunRef, denial: Denial): Promise<void> {
    const requestId = String(res.getHeader('X-Request-Id') ?? randomUUID());
    const event = {
      id: `facade:${requestId}`,
      tenant: run.principal.tenant,
      runId: run.runId,
      type: 'security.denied' as const,
      actor: run.principal.subject,
      pipeline: run.pipelineName,
      pipelineVersion: run.entry?.definition.version ?? 0,
      definitionHash: run.entry?.hash ?? 'unknown',
      ...(denial.stage ? { stage: denial.stage } : {}),
      // The address and user agent are sealed by the audit store (AUDIT_SEAL_KEYS), like `reason`.
      data: { ...denial, roles: run.principal.roles, requestId, ip: res.req.ip, userAgent: res.req.get('user-agent') },
      occurredAt: Date.now(),
    };
    try {
      const first = await deps.audit.append(event);
      // Callers choose X-Request-Id; one reused on purpose must not fold a second denial into the first record.
      if (!first.inserted) await deps.audit.append({ ...event, id: `facade:${requestId}:${randomUUID()}` });
    } catch (err) {
      deps.logger.error(
        { err: err instanceof Error ? err.message : String(err), runId: run.runId, tenant: run.principal.tenant, denial, requestId },
        'could not write security.denied to the audit trail',
      );
    }
  }

  return {
    /** Records the denial, then throws `error` (the 403 the caller gets either way). */
    async deny(res: Response, run: RunRef, denial: Denial, error: AppError): Promise<never> {
      await record(res, run, denial);
      throw error;
    },
  };
}
export type SecurityAudit = ReturnType<typeof createSecurityAudit>;

/** The audit tenant of events about a client address, which belongs to no tenant (defined with the contracts). */
export { SYSTEM_TENANT } from '../contracts';

/** A security event about a caller rather than a run: its `runId` and `pipeline` are `-`. */
export interface CallerSecurityEvent {
  type: 'security.blocked' | 'security.rate_limited';
  /** The caller's tenant, or `SYSTEM_TENANT` for an address. */
  tenant: string;
  /** The subject, or `anonymous` when no verified subject is known (an address goes in `data.ip`, which is sealed). */
  actor: string;
  data: Record<string, unknown>;
}

/**
 * Writes caller-level security events (`security.blocked`, `security.rate_limited`) to the audit trail. Callers
 * decide that an event happens once (an atomic Redis decision); the write itself must never change the answer, so
 * a failed write is logged and swallowed.
 */
export function createSecurityEvents(deps: { audit: Pick<AuditStore, 'append'>; logger: Logger }) {
  return {
    async record(event: CallerSecurityEvent): Promise<void> {
      try {
        await deps.audit.append({
          id: `facade:${event.type}:${randomUUID()}`,
          tenant: event.tenant,
          runId: '-',
          type: event.type,
          actor: event.actor,
          pipeline: '-',
          pipelineVersion: 0,
          definitionHash: 'none',
          data: event.data,
          occurredAt: Date.now(),
        });
      } catch (err) {
        deps.logger.error(
          { err: err instanceof Error ? err.message : String(err), type: event.type, tenant: event.tenant, actor: event.actor },
          `could not write ${event.type} to the audit trail`,
        );
      }
    },
  };
}
export type SecurityEvents = ReturnType<typeof createSecurityEvents>;
