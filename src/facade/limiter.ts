import type { RequestHandler } from 'express';
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { HttpMetrics } from '../telemetry';
import { AppError, ServiceUnavailableError } from './errors';

export interface LimiterOptions {
  /** Shared counters for every facade replica; without it limits hold per process only. */
  redis?: Redis;
  requestsPerMinute: number;
  metrics?: HttpMetrics;
}

export interface RequestLimiter {
  /** 'redis' when shared across replicas, 'in-process' when it only holds for this process. */
  mode: 'redis' | 'in-process';
  middleware: RequestHandler;
}

/** Per-subject request rate limit (fixed one-minute window) with `RateLimit-*` and `Retry-After` headers. */
export function createRequestLimiter(opts: LimiterOptions): RequestLimiter {
  const common = { points: opts.requestsPerMinute, duration: 60, keyPrefix: 'agentry:rl:subject' };
  const limiter: RateLimiterAbstract = opts.redis
    ? new RateLimiterRedis({ ...common, storeClient: opts.redis, rejectIfRedisNotReady: true })
    : new RateLimiterMemory(common);

  const middleware: RequestHandler = async (req, res, next) => {
    const principal = req.principal;
    if (!principal) return next();
    const key = `${principal.tenant}:${principal.subject}`;
    try {
      const r = await limiter.consume(key);
      setHeaders(res, opts.requestsPerMinute, r);
      next();
    } catch (err) {
      if (err instanceof RateLimiterRes) {
        setHeaders(res, opts.requestsPerMinute, err);
        opts.metrics?.rateLimited.inc({ limit: 'subject' });
        const retryAfter = Math.max(1, Math.ceil(err.msBeforeNext / 1000));
        throw new AppError(429, 'rate_limited', 'Too many requests', `limit of ${opts.requestsPerMinute} requests per minute reached`, {}, {
          'Retry-After': String(retryAfter),
        });
      }
      // Redis unreachable: refuse rather than serve without limits.
      throw new ServiceUnavailableError('limiter_unavailable', 'the rate limiter is unavailable; try again shortly');
    }
  };
  return { mode: opts.redis ? 'redis' : 'in-process', middleware };
}

function setHeaders(res: Parameters<RequestHandler>[1], limit: number, r: RateLimiterRes): void {
  res.setHeader('RateLimit-Limit', String(limit));
  res.setHeader('RateLimit-Remaining', String(Math.max(0, r.remainingPoints)));
  res.setHeader('RateLimit-Reset', String(Math.ceil(r.msBeforeNext / 1000)));
}
