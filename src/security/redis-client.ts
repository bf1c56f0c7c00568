import { Redis } from 'ioredis';

export interface LimitsRedisOptions {
  /** Give up on one connection attempt after this long, then retry. @default 2000 @format ms */
  connectTimeoutMs?: number;
  /**
   * A connection that sends no data this long after a command (Redis paused, a network black hole) is dropped: its
   * commands fail and the client reconnects. @default 2000 @format ms
   */
  socketTimeoutMs?: number;
  /** Longest pause between reconnection attempts; attempts never stop. @default 1000 @format ms */
  maxReconnectDelayMs?: number;
}

/**
 * A Redis client for the limits (rate limits, run slots, intrusion detector), shared by the facade and the worker.
 *
 * Its options make an outage fail fast and heal by itself: with the offline queue off, a command sent while
 * Redis is down fails at once (the caller answers 503 or fails open) instead of waiting in a queue and being
 * replayed later; a command gets one retry at most; and the client reconnects forever, so Redis coming back
 * restores service without restarting the process. Attach an `error` listener: ioredis emits one per failed
 * reconnection attempt.
 */
export function createLimitsRedis(url: string, opts: LimitsRedisOptions = {}): Redis {
  const maxDelay = opts.maxReconnectDelayMs ?? 1000;
  return new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: opts.connectTimeoutMs ?? 2000,
    socketTimeout: opts.socketTimeoutMs ?? 2000,
    retryStrategy: (times) => Math.min(times * 100, maxDelay),
    // Nothing is replayed after a reconnect: a limit decision made late is worse than a failed one.
    autoResendUnfulfilledCommands: false,
    lazyConnect: false,
  });
}
