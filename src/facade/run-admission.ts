import type { Client } from '@temporalio/client';
import type { PipelineDefinition } from '../pipelines/definition-schema';
import type { RunSlots } from '../security';
import type { HttpMetrics, Logger } from '../telemetry';
import { AppError } from './errors';
import type { LimitFailurePolicy } from './limit-failure';

export interface RunAdmissionDeps {
  slots: RunSlots;
  /** Reads a run's state when a request that took a slot did not start it. */
  temporal: Client;
  /** Most active runs per tenant, over all pipelines (`TENANT_MAX_ACTIVE_RUNS`). */
  tenantMaxActiveRuns: number;
  failure: LimitFailurePolicy;
  logger: Logger;
  metrics?: HttpMetrics;
}

/** A run's slot, taken before its start; the route reports how the start went. */
export interface RunSlotTicket {
  /** This request created the run: the slot stays until the run ends. */
  keep(): void;
  /**
   * Anything else (the start failed, the Idempotency-Key was reused, the run already existed): frees the slot this
   * request took unless the run it names is running. A slot the run id already held is never touched.
   */
  settle(): Promise<void>;
}

/** Holders looked at when a cap is full; the oldest are the likeliest to have closed without releasing. */
const RECLAIM_BATCH = 10;
/** Least time between two looks at one full set, per replica: refused starts must not turn into a describe storm. */
const RECLAIM_INTERVAL_MS = 30_000;

/** The concurrency caps of `POST /v1/pipelines/:name/runs`: refuse over the cap, else hold a slot for the run. */
export function createRunAdmission(deps: RunAdmissionDeps) {
  const release = (tenant: string, pipeline: string, runId: string) =>
    deps.slots.release(tenant, pipeline, runId).catch((err: unknown) => {
      deps.logger.warn({ err: err instanceof Error ? err.message : String(err), runId }, 'could not release a run slot; it expires with its lease');
    });

  const exists = (workflowId: string) =>
    deps.temporal.workflow
      .getHandle(workflowId)
      .describe()
      .then(() => true)
      .catch(() => false);

  const lastLook = new Map<string, number>();
  /**
   * A run that closes without releasing its slot (terminated from outside, or its release failed while Redis was
   * down) would hold it until its lease ends. At a full cap, frees the slots of the oldest holders that have closed.
   * Returns how many were freed. Runs not found are left alone: a slot is taken just before its run starts.
   */
  const reclaim = async (tenant: string, pipeline: string, scope: 'tenant' | 'pipeline'): Promise<number> => {
    const key = `${tenant}\u0000${scope === 'tenant' ? '' : pipeline}`;
    const now = Date.now();
    if (now - (lastLook.get(key) ?? 0) < RECLAIM_INTERVAL_MS) return 0;
    if (lastLook.size > 10_000) for (const [k, at] of lastLook) if (now - at >= RECLAIM_INTERVAL_MS) lastLook.delete(k);
    lastLook.set(key, now);
    const holders = await deps.slots.oldest(tenant, pipeline, scope, RECLAIM_BATCH);
    const closed = await Promise.all(
      holders.map(async (runId) => {
        const status = await deps.temporal.workflow
          .getHandle(`${tenant}/${runId}`)
          .describe()
          .then((d) => d.status.name)
          .catch(() => undefined);
        if (status === undefined || status === 'RUNNING') return false;
        // The run id is `{pipeline}/{id}`: its pipeline set is named by its first part.
        await deps.slots.release(tenant, runId.split('/')[0] ?? pipeline, runId);
        return true;
      }),
    );
    const freed = closed.filter(Boolean).length;
    if (freed > 0) {
      deps.metrics?.slotsReclaimed.inc(freed);
      deps.logger.info({ tenant, scope, pipeline, freed }, 'freed the run slots of closed runs');
    }
    return freed;
  };

  return {
    /**
     * Takes a slot for the run in the tenant's and the pipeline's caps. Throws 429 `concurrency_limited` over a
     * cap, or 503 `limiter_unavailable` when Redis is unreachable (unless failing open).
     */
    async admit(run: {
      tenant: string;
      definition: PipelineDefinition;
      runId: string;
      workflowId: string;
      /** The start carries an Idempotency-Key: at the cap, a retry of a run that exists is still answered. */
      keyed?: boolean;
    }): Promise<RunSlotTicket> {
      const { tenant, definition, runId, workflowId } = run;
      let acquired = false;
      try {
        const request = {
          tenant,
          pipeline: definition.name,
          runId,
          tenantMax: deps.tenantMaxActiveRuns,
          pipelineMax: definition.limits.maxConcurrentRuns,
          runTimeoutMs: definition.limits.runTimeoutMs,
        };
        let decision = await deps.slots.acquire(request);
        if (!decision.ok && (await reclaim(tenant, definition.name, decision.limit)) > 0) decision = await deps.slots.acquire(request);
        // A retry of a run that already ended (and released its slot) starts nothing: it is answered, not capped.
        if (!decision.ok && run.keyed && (await exists(workflowId))) return { keep: () => undefined, settle: async () => undefined };
        if (!decision.ok) {
          const limit = decision.limit === 'tenant' ? 'tenant_active_runs' : 'pipeline_active_runs';
          deps.metrics?.rateLimited.inc({ limit });
          throw new AppError(
            429,
            'concurrency_limited',
            'Too many active runs',
            decision.limit === 'tenant'
              ? `your tenant has ${decision.active} active runs, the most it may have at once`
              : `your tenant has ${decision.active} active runs of "${definition.name}", the most it may have at once`,
            { limit, max: decision.max },
            { 'Retry-After': String(decision.retryAfterS) },
          );
        }
        acquired = decision.acquired;
      } catch (err) {
        if (err instanceof AppError) throw err;
        deps.failure.unavailable('concurrency', err); // throws 503 unless failing open
      }

      const keep = () => {
        // Without Redis the worker cannot reach this process's slots: free the slot when the run closes.
        if (!acquired || deps.slots.mode !== 'in-process') return;
        void deps.temporal.workflow
          .getHandle(workflowId)
          .result()
          .catch(() => undefined)
          .finally(() => release(tenant, definition.name, runId));
      };
      return {
        keep,
        async settle() {
          if (!acquired) return;
          const status = await deps.temporal.workflow
            .getHandle(workflowId)
            .describe()
            .then((d) => d.status.name)
            .catch(() => undefined);
          if (status === 'RUNNING') keep();
          else await release(tenant, definition.name, runId);
        },
      };
    },
  };
}
export type RunAdmission = ReturnType<typeof createRunAdmission>;
