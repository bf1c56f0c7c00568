import { WorkflowFailedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { PipelineDefinition } from '../pipelines/definition-schema';
import { RUN_SLOT_LEASE_MARGIN_MS, type RunSlots } from '../security';
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

/** Holders looked at each time a cap is found full; successive looks sweep the whole set. */
const RECLAIM_BATCH = 20;
/** Least time between two looks at one full set, per replica: refused starts must not turn into a describe storm. */
const RECLAIM_INTERVAL_MS = 30_000;

/** The concurrency caps of `POST /v1/pipelines/:name/runs`: refuse over the cap, else hold a slot for the run. */
export function createRunAdmission(deps: RunAdmissionDeps) {
  const release = (tenant: string, pipeline: string, runId: string) =>
    deps.slots.release(tenant, pipeline, runId).catch((err: unknown) => {
      deps.logger.warn({ err: err instanceof Error ? err.message : String(err), runId }, 'could not release a run slot; it expires with its lease');
    });

  /** A run's status from Temporal: its name, `not_found`, or `unknown` when Temporal could not be asked. */
  const statusOf = (workflowId: string): Promise<string> =>
    deps.temporal.workflow
      .getHandle(workflowId)
      .describe()
      .then((d) => d.status.name as string)
      .catch((err: unknown) => (err instanceof WorkflowNotFoundError ? 'not_found' : 'unknown'));

  /**
   * Resolves once the run has closed (or turns out not to exist). A Temporal outage is waited out rather than taken
   * for the end of the run, up to the slot's lease, after which the slot has expired anyway.
   */
  const untilClosed = async (workflowId: string, runTimeoutMs: number): Promise<void> => {
    const giveUpAt = Date.now() + runTimeoutMs + RUN_SLOT_LEASE_MARGIN_MS;
    while (Date.now() < giveUpAt) {
      try {
        await deps.temporal.workflow.getHandle(workflowId).result();
        return;
      } catch (err) {
        if (err instanceof WorkflowFailedError || err instanceof WorkflowNotFoundError) return;
        const status = await statusOf(workflowId);
        if (status !== 'RUNNING' && status !== 'unknown') return;
        await new Promise((r) => setTimeout(r, 5_000));
      }
    }
  };

  const exists = (workflowId: string) =>
    deps.temporal.workflow
      .getHandle(workflowId)
      .describe()
      .then(() => true)
      .catch(() => false);

  /** Per full set: when this replica last looked, and where the next look starts. */
  const looks = new Map<string, { at: number; next: number }>();
  /**
   * A run that closes without releasing its slot (terminated from outside, or its release failed while Redis was
   * down) would hold it until its lease ends. At a full cap, looks at the next batch of holders (in order of lease
   * expiry; a long pipeline's leaked slot may sit behind many short ones, so looks go round the whole set rather
   * than always at its head) and frees the slots of those whose runs have closed. Returns how many were freed.
   * Runs not found are left alone: a slot is taken just before its run starts.
   */
  const reclaim = async (tenant: string, pipeline: string, scope: 'tenant' | 'pipeline'): Promise<number> => {
    const key = `${tenant}\u0000${scope === 'tenant' ? '' : pipeline}`;
    const now = Date.now();
    const last = looks.get(key);
    if (last && now - last.at < RECLAIM_INTERVAL_MS) return 0;
    if (looks.size > 10_000) for (const [k, l] of looks) if (now - l.at >= RECLAIM_INTERVAL_MS) looks.delete(k);
    let start = last?.next ?? 0;
    let holders = await deps.slots.holders(tenant, pipeline, scope, start, RECLAIM_BATCH);
    if (holders.length === 0 && start > 0) holders = await deps.slots.holders(tenant, pipeline, scope, (start = 0), RECLAIM_BATCH);
    looks.set(key, { at: now, next: holders.length < RECLAIM_BATCH ? 0 : start + holders.length });
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
        void untilClosed(workflowId, definition.limits.runTimeoutMs).then(() => release(tenant, definition.name, runId));
      };
      return {
        keep,
        async settle() {
          if (!acquired) return;
          const status = await statusOf(workflowId);
          // Released only when Temporal says the run is closed or was never started; unreachable, it keeps the slot.
          if (status === 'RUNNING' || status === 'unknown') keep();
          else await release(tenant, definition.name, runId);
        },
      };
    },
  };
}
export type RunAdmission = ReturnType<typeof createRunAdmission>;
