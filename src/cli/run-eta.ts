import { formatDuration } from './format';

/**
 * The time left of a batch of runs, as the demo's progress bar shows it. The pace is the wall time per finished run
 * so far (it already reflects the concurrency); the estimate counts down from the last finish, so it moves while
 * nothing finishes. Runs parked at a review the demo will approve at a known time set a floor: the batch cannot end
 * before that review is decided.
 */
export class RunEta {
  private done = 0;
  private lastFinishAt: number;
  /** Run id → when the demo decides its waiting review (epoch ms). */
  private readonly reviews = new Map<string, number>();

  constructor(
    private readonly total: number,
    private readonly startedAt: number,
  ) {
    this.lastFinishAt = startedAt;
  }

  /** A run ended (completed or failed) at `now`. */
  finished(now: number, runId?: string): void {
    this.done++;
    this.lastFinishAt = now;
    if (runId !== undefined) this.reviews.delete(runId);
  }

  /** A run waits for a review that the demo itself decides at `decideAt` unless a person does so first. */
  reviewWaiting(runId: string, decideAt: number): void {
    this.reviews.set(runId, decideAt);
  }

  /** The review of this run is decided; the run goes on with its remaining stages. */
  reviewDecided(runId: string): void {
    this.reviews.delete(runId);
  }

  /** `estimating…` until the first run ends, then e.g. `23m05s left`. */
  text(now: number): string {
    const remaining = this.total - this.done;
    if (remaining <= 0) return 'done';
    const projected = this.done > 0 ? this.lastFinishAt + ((this.lastFinishAt - this.startedAt) / this.done) * remaining : undefined;
    const reviewAt = this.reviews.size > 0 ? Math.max(...this.reviews.values()) : undefined;
    if (reviewAt !== undefined && reviewAt > now && (projected === undefined || reviewAt >= projected)) {
      return `over ${formatDuration(reviewAt - now)} left (a review is waiting)`;
    }
    if (projected === undefined) return 'estimating…';
    if (projected > now) return `${formatDuration(projected - now)} left`;
    return `taking ${formatDuration(now - projected)} longer than estimated`;
  }
}
