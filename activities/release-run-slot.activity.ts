/** The run-slot store as the worker sees it: releasing is all a finished run does. */
export interface RunSlotReleaser {
  release(tenant: string, pipeline: string, runId: string): Promise<void>;
}

/**
 * Frees the run's place in the per-tenant and per-pipeline concurrency caps when it ends. Without Redis (single
 * process development) there is nothing to release.
 */
export function createReleaseRunSlotActivity(deps: { slots?: RunSlotReleaser }) {
  return async function releaseRunSlot(args: { tenant: string; pipeline: string; runId: string }): Promise<void> {
    await deps.slots?.release(args.tenant, args.pipeline, args.runId);
  };
}
