import { Router, type Response } from 'express';
import { WorkflowNotFoundError, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { approveUpdate, cancelSignal, DEFAULT_MAX_SIGNAL_BYTES, signalUpdate, type ApprovalRecord, type SignalReceipt } from '../contracts';
import { STAGE_NAME_PATTERN } from '../pipelines/definition-schema';
import type { PipelineCatalog } from '../pipelines/pipeline-catalog';
import { AppError, ConflictError, ForbiddenError, ServiceUnavailableError, ValidationError } from './errors';
import { findRun, hasRole, isOpen, type RunRef } from './run-lookup';
import type { RunAction, SecurityAudit } from './security-audit';

export interface RunControlDeps {
  temporal: Client;
  /** How long an approval or signal waits for the run to take it before answering 503. @default 10_000 @format ms */
  updateTimeoutMs?: number;
  pipelines: PipelineCatalog;
  security: SecurityAudit;
}

const approvalBodySchema = z
  .object({
    // A stage name as definitions write them: a refused request is audited with it, so no free text gets in.
    stage: z.string().max(64).regex(STAGE_NAME_PATTERN, 'expected a stage name: lower case letters, digits, "_" or "-", starting with a letter'),
    decision: z.enum(['approve', 'reject']),
    comment: z.string().max(2000).optional(),
  })
  .strict();
const signalBodySchema = z.object({ payload: z.record(z.string(), z.unknown()).optional() }).strict();
const cancelBodySchema = z.object({ reason: z.string().min(1).max(500) }).strict();

/** Message names the workflow reserves for its own handlers; never sendable through the signals route. */
const RESERVED_SIGNALS = new Set([approveUpdate.name, cancelSignal.name]);

/** Failure types the approve update's validator rejects with (set by the workflow). */
const UPDATE_REJECTIONS = {
  unknownStage: 'UnknownStage',
  notPending: 'ApprovalNotPending',
  lacksRole: 'ApproverLacksRole',
  selfApproval: 'SelfApprovalForbidden',
} as const;
/** Failure types the signal update's validator rejects with. */
const SIGNAL_REJECTIONS = { unknown: 'UnknownSignal', limit: 'SignalLimitReached' } as const;
/** Set by the Temporal server when the run closed after accepting the update but before completing it. */
const UPDATE_OUTLIVED_RUN = 'AcceptedUpdateCompletedWorkflow';

function zodProblems(err: z.ZodError) {
  return err.issues.map((i) => ({ path: `/${i.path.join('/')}`, message: i.message }));
}

function runCompleted(run: RunRef): ConflictError {
  return new ConflictError('run_completed', `run "${run.runId}" has already finished`);
}

/** The roles an action needs. A pipeline that is no longer loaded leaves its runs to admins. */
function rolesFor(run: RunRef, action: RunAction) {
  return run.entry?.definition.access[action] ?? ['admin'];
}

/** Signals the run's definition declares (`signals:` in the DSL; absent means none). */
function declaredSignals(run: RunRef): readonly string[] {
  return (run.entry?.definition as { signals?: readonly string[] } | undefined)?.signals ?? [];
}

/**
 * `/v1/runs/:pipeline/:id/{approvals,signals/:name,cancel}`: act on a running run. Every refusal for lack of a
 * role is written to the audit trail as `security.denied`.
 */
export function createRunControlRoutes(deps: RunControlDeps): Router {
  const router = Router();
  const updateTimeoutMs = deps.updateTimeoutMs ?? 10_000;

  /**
   * An update waits for a worker to run the workflow: with none polling, it would hold the request (and the
   * caller's connection) for as long as the workers are away. Past the bound the answer is 503 with Retry-After.
   */
  async function withinDeadline<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await deps.temporal.withDeadline(Date.now() + updateTimeoutMs, fn);
    } catch (err) {
      if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError) {
        throw new ServiceUnavailableError(
          'run_unresponsive',
          `the run did not take the request within ${updateTimeoutMs / 1000} s: no worker is running it now; try again later (the request may still be applied when a worker returns)`,
          30,
        );
      }
      throw err;
    }
  }

  /** 403 with an audit record when the caller lacks the action's pipeline-level role. */
  async function requireActionRole(res: Response, run: RunRef, action: RunAction, extra: { stage?: string; signal?: string } = {}) {
    const allowed = rolesFor(run, action);
    if (hasRole(run.principal, allowed)) return;
    await deps.security.deny(
      res,
      run,
      { action, reason: 'role_required', ...extra },
      new ForbiddenError(`${action} on pipeline "${run.pipelineName}" needs one of the roles: ${allowed.join(', ')}`),
    );
  }

  /**
   * The run may close between describe and the call: Temporal then answers not found (a signal, or an update not
   * yet accepted). Any other error is rethrown unless a fresh describe shows the run closed.
   */
  async function closedMeanwhile(run: RunRef, err: unknown): Promise<never> {
    let closed = err instanceof WorkflowNotFoundError;
    if (!closed) {
      try {
        closed = !isOpen(await run.handle.describe());
      } catch {
        // Keep the original error.
      }
    }
    if (closed) throw runCompleted(run);
    throw err;
  }

  router.post('/v1/runs/:pipeline/:id/approvals', async (req, res) => {
    const run = await findRun(deps, req);
    const body = approvalBodySchema.safeParse(req.body ?? {});
    await requireActionRole(res, run, 'approve', body.success ? { stage: body.data.stage } : {});
    if (!body.success) {
      throw new ValidationError('the body must be {"stage": "...", "decision": "approve"|"reject", "comment"?: "..."}', zodProblems(body.error));
    }
    if (!isOpen(run.desc)) throw runCompleted(run);
    const { stage, decision, comment } = body.data;
    let record: ApprovalRecord;
    try {
      record = await withinDeadline(() =>
        run.handle.executeUpdate(approveUpdate, {
          args: [{ stage, decision, comment, approver: { subject: run.principal.subject, roles: run.principal.roles } }],
        }),
      );
    } catch (err) {
      const failure = err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure ? err.cause : undefined;
      switch (failure?.type) {
        case UPDATE_REJECTIONS.unknownStage:
          throw new AppError(404, 'unknown_stage', 'Not found', `run "${run.runId}" has no approval stage "${stage}"`);
        case UPDATE_REJECTIONS.notPending:
          throw new ConflictError('approval_not_pending', failure.message || `stage "${stage}" is not awaiting a decision`);
        case UPDATE_REJECTIONS.lacksRole:
          return deps.security.deny(
            res,
            run,
            { action: 'approve', reason: 'approver_lacks_role', stage },
            new ForbiddenError(failure.message || `your roles may not decide stage "${stage}"`),
          );
        case UPDATE_REJECTIONS.selfApproval:
          return deps.security.deny(
            res,
            run,
            { action: 'approve', reason: 'self_approval', stage },
            new AppError(403, 'self_approval_forbidden', 'Forbidden', 'the principal that started a run may not decide its approvals'),
          );
        case UPDATE_OUTLIVED_RUN:
          throw runCompleted(run);
        default:
          return closedMeanwhile(run, err);
      }
    }
    res.status(200).json(record);
  });

  router.post('/v1/runs/:pipeline/:id/signals/:name', async (req, res) => {
    const run = await findRun(deps, req);
    const name = String(req.params.name);
    if (RESERVED_SIGNALS.has(name) || !declaredSignals(run).includes(name)) {
      throw new AppError(404, 'unknown_signal', 'Not found', `pipeline "${run.pipelineName}" declares no signal "${name}"`);
    }
    await requireActionRole(res, run, 'signal', { signal: name });
    const body = signalBodySchema.safeParse(req.body ?? {});
    if (!body.success) throw new ValidationError('the body must be {"payload"?: {...}}', zodProblems(body.error));
    const payload = body.data.payload ?? {};
    const maxBytes = run.entry?.definition.limits.maxSignalBytes ?? DEFAULT_MAX_SIGNAL_BYTES;
    const bytes = Buffer.byteLength(JSON.stringify(payload), 'utf8');
    if (bytes > maxBytes) {
      const message = `is ${bytes} bytes of JSON, more than the ${maxBytes} this pipeline takes (limits.maxSignalBytes)`;
      throw new AppError(413, 'payload_too_large', 'Payload too large', `the signal payload ${message}`, { errors: [{ path: '/payload', message }] });
    }
    if (!isOpen(run.desc)) throw runCompleted(run);
    let receipt: SignalReceipt;
    try {
      // An update rather than a signal: the run validates it first, so a refused one never enters its history, and
      // a 202 means the run has recorded it.
      receipt = await withinDeadline(() => run.handle.executeUpdate(signalUpdate, { args: [{ name, actor: run.principal.subject, payload }] }));
    } catch (err) {
      const failure = err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure ? err.cause : undefined;
      if (failure?.type === SIGNAL_REJECTIONS.limit) throw new ConflictError('signal_limit_reached', failure.message);
      if (failure?.type === SIGNAL_REJECTIONS.unknown) {
        throw new AppError(404, 'unknown_signal', 'Not found', `run "${run.runId}" was started with a definition that declares no signal "${name}"`);
      }
      return closedMeanwhile(run, err);
    }
    res.status(202).json({ runId: run.runId, signal: name, status: 'accepted', received: receipt.received, max: receipt.max });
  });

  router.post('/v1/runs/:pipeline/:id/cancel', async (req, res) => {
    const run = await findRun(deps, req);
    await requireActionRole(res, run, 'cancel');
    const body = cancelBodySchema.safeParse(req.body ?? {});
    if (!body.success) throw new ValidationError('the body must be {"reason": "..."} (1 to 500 characters)', zodProblems(body.error));
    if (!isOpen(run.desc)) throw runCompleted(run);
    try {
      // The signal carries who and why (recorded before the cancel request in the history); the cancel request
      // makes Temporal itself show the execution as cancelled.
      await run.handle.signal(cancelSignal, { actor: run.principal.subject, reason: body.data.reason });
      await run.handle.cancel();
    } catch (err) {
      return closedMeanwhile(run, err);
    }
    res.status(202).json({ runId: run.runId, status: 'cancelling' });
  });

  return router;
}
