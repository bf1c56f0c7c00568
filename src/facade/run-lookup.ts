import type { Request } from 'express';
import {
  WorkflowFailedError,
  WorkflowNotFoundError,
  type Client,
  type WorkflowExecutionDescription,
  type WorkflowHandle,
} from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { z } from 'zod';
import { progressQuery, type PipelineRunResult, type Principal, type RunProgress } from '../contracts';
import type { CatalogEntry, PipelineCatalog } from '../pipelines/pipeline-catalog';
import { AppError, ForbiddenError, NotFoundError } from './errors';

export const slug = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const idSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);

export function principalOf(req: Request): Principal {
  if (!req.principal) throw new AppError(500, 'internal_error', 'Internal error', 'route mounted without authentication');
  return req.principal;
}

export function hasRole(principal: Principal, allowed: readonly string[]): boolean {
  return principal.roles.some((r) => allowed.includes(r));
}

export function requireRole(principal: Principal, allowed: readonly string[], action: string, pipeline: string): void {
  if (!hasRole(principal, allowed)) {
    throw new ForbiddenError(`${action} on pipeline "${pipeline}" needs one of the roles: ${allowed.join(', ')}`);
  }
}

/** Temporal execution status → the run status the API reports. */
export const TEMPORAL_STATUS: Record<string, string> = {
  RUNNING: 'running',
  COMPLETED: 'completed',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
  TERMINATED: 'cancelled',
  TIMED_OUT: 'failed',
  CONTINUED_AS_NEW: 'running',
};

const FINAL_STATUSES = new Set(['completed', 'failed', 'cancelled']);

/** A run the caller's tenant owns, found and described. */
export interface RunRef {
  principal: Principal;
  pipelineName: string;
  /** The public run id, `{pipeline}/{id}`. */
  runId: string;
  /** `{tenant}/{pipeline}/{id}`: built from the verified tenant, so another tenant's run is never addressed. */
  workflowId: string;
  /** The loaded definition, or undefined when the pipeline is no longer loaded (its runs stay addressable). */
  entry?: CatalogEntry;
  handle: WorkflowHandle;
  desc: WorkflowExecutionDescription;
}

export interface RunLookupDeps {
  temporal: Client;
  pipelines: PipelineCatalog;
}

/**
 * Resolves `:pipeline/:id` to the caller's tenant's run. Malformed ids and runs of other tenants are simply not
 * found (404 `not_found`), so a response never reveals that another tenant's run exists.
 */
export async function findRun(deps: RunLookupDeps, req: Request): Promise<RunRef> {
  const principal = principalOf(req);
  const pipelineName = String(req.params.pipeline);
  const id = idSchema.safeParse(req.params.id);
  if (!id.success || !slug.test(pipelineName)) throw new NotFoundError('run');
  const runId = `${pipelineName}/${id.data}`;
  const workflowId = `${principal.tenant}/${runId}`;
  const handle = deps.temporal.workflow.getHandle(workflowId);
  let desc: WorkflowExecutionDescription;
  try {
    desc = await handle.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new NotFoundError('run');
    throw err;
  }
  return { principal, pipelineName, runId, workflowId, entry: deps.pipelines.get(pipelineName), handle, desc };
}

export function isOpen(desc: WorkflowExecutionDescription): boolean {
  return desc.status.name === 'RUNNING';
}

/**
 * The final state of a closed run: its result, or for a failed or cancelled run the state the workflow attached
 * as failure details. Older or terminated runs may carry none; then only the error is known.
 */
export async function closedRunState(handle: WorkflowHandle): Promise<Partial<PipelineRunResult>> {
  try {
    return (await handle.result()) as PipelineRunResult;
  } catch (err) {
    const cause = err instanceof WorkflowFailedError ? err.cause : undefined;
    let details =
      cause instanceof ApplicationFailure || cause instanceof CancelledFailure
        ? (cause.details?.[0] as PipelineRunResult | undefined)
        : undefined;
    if (!details && cause instanceof CancelledFailure) {
      // A run cancelled through Temporal ends without a result; its final state is still answered by the query
      // (a worker replays the closed history to answer it).
      details = (await handle.query(progressQuery).catch(() => undefined)) as PipelineRunResult | undefined;
      if (details) return details;
    }
    return { ...(details ?? {}), error: details?.error ?? { type: cause?.name ?? 'Error', message: cause?.message ?? String(err) } };
  }
}

/** The API status of a run: Temporal's word on whether it is open, the workflow's on how a closed run ended. */
export function runStatusOf(desc: WorkflowExecutionDescription, state?: Partial<RunProgress>): string {
  const mapped = TEMPORAL_STATUS[desc.status.name] ?? 'unknown';
  const own = state?.status;
  // An open run is never reported finished, even once the workflow has set its final status: its result (outputs)
  // exists only when the execution has closed.
  if (isOpen(desc)) return own && !FINAL_STATUSES.has(own) ? own : mapped;
  return own && FINAL_STATUSES.has(own) ? own : mapped;
}

/** The run's details, as the caller may see them (the workflow's own view of stages, never the raw history). */
export async function describeRun(temporal: Client, uiUrl: string, run: Pick<RunRef, 'handle' | 'desc' | 'workflowId'>) {
  const { handle, desc, workflowId } = run;
  const base = {
    startedAt: desc.startTime.toISOString(),
    closedAt: desc.closeTime?.toISOString(),
    temporalStatus: desc.status.name,
    links: { ui: `${uiUrl}/namespaces/${encodeURIComponent(temporal.options.namespace)}/workflows/${encodeURIComponent(workflowId)}` },
  };
  if (isOpen(desc)) {
    const progress = await handle.query(progressQuery);
    return { ...progress, status: runStatusOf(desc, progress), ...base };
  }
  const state = await closedRunState(handle);
  return { ...state, status: runStatusOf(desc, state), ...base };
}
