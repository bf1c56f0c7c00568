import type { HttpMetrics, Logger } from '../telemetry';
import { ServiceUnavailableError } from './errors';

/** The checks that consult the limits store (Redis). Bounded: used as a metric label. */
export type LimitCheck = 'rate' | 'concurrency' | 'intrusion';

export interface LimitFailureOptions {
  /** Let requests through when Redis is unreachable instead of answering 503. @default false */
  failOpen?: boolean;
  metrics?: HttpMetrics;
  logger?: Logger;
  /** At most one log line per this interval while the store stays unreachable. @default 10000 @format ms */
  logEveryMs?: number;
}

export interface LimitFailurePolicy {
  readonly failOpen: boolean;
  /**
   * Decides what a request gets when a limit check could not reach Redis: fail closed (the default) throws
   * 503 `limiter_unavailable` with `Retry-After`; fail open returns, so the request goes on unchecked, and counts
   * it in `limiter_fail_open_total{check}`.
   */
  unavailable(check: LimitCheck, err: unknown): void;
}

/** One policy for every limit check, so an outage of Redis is handled (and logged) the same way everywhere. */
export function createLimitFailurePolicy(opts: LimitFailureOptions = {}): LimitFailurePolicy {
  const failOpen = opts.failOpen ?? false;
  const every = opts.logEveryMs ?? 10_000;
  let lastLog = 0;
  let since = 0;
  return {
    failOpen,
    unavailable(check, err) {
      since += 1;
      const now = Date.now();
      if (now - lastLog >= every) {
        opts.logger?.warn(
          { err: err instanceof Error ? err.message : String(err), check, failOpen, requestsSinceLastLog: since },
          failOpen ? 'limits store unreachable: letting requests through unchecked' : 'limits store unreachable: refusing requests',
        );
        lastLog = now;
        since = 0;
      }
      if (!failOpen) throw new ServiceUnavailableError('limiter_unavailable', 'the limits store is unavailable; try again shortly', 2);
      opts.metrics?.limiterFailOpen.inc({ check });
    },
  };
}
