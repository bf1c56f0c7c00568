import { randomUUID } from 'node:crypto';
import type { RequestHandler, Response } from 'express';
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { HttpMetrics } from '../telemetry';
import { AppError } from './errors';
import { createLimitFailurePolicy, type LimitFailurePolicy } from './limit-failure';
import type { SecurityEvents } from './security-audit';

export interface LimiterOptions {
  /** Shared counters for every facade replica; without it limits hold per process only. */
  redis?: Redis;
  /** Requests per subject (of one tenant) per minute. */
  requestsPerMinute: number;
  /** Requests per tenant per minute, every subject of the tenant together. @default unlimited */
  tenantRequestsPerMinute?: number;
  metrics?: HttpMetrics;
  /** What a request gets when Redis is unreachable. @default fail closed: 503 `limiter_unavailable` */
  failure?: LimitFailurePolicy;
  /** Audit trail for `security.rate_limited`, written once per limit window: by the first refused request. */
  securityEvents?: SecurityEvents;
}

export interface RequestLimiter {
  /** 'redis' when shared across replicas, 'in-process' when it only holds for this process. */
  mode: 'redis' | 'in-process';
  middleware: RequestHandler;
}

/** The request rate limits; also the `limit` label of `rate_limited_total` and the `limit` field of a 429. */
export type RateLimitName = 'subject' | 'tenant';

interface Check {
  limit: RateLimitName;
  points: number;
  limiter: RateLimiterAbstract;
}

const WINDOW_S = 60;

/**
 * Request rate limits per subject and per tenant (fixed one-minute windows, counted in Redis so every replica
 * shares them), with `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (IETF draft names, for the limit
 * closest to running out) and, on a 429, `Retry-After`.
 *
 * The subject's limit is consumed first and the tenant's only if the subject's allows: a subject beyond its own
 * limit cannot use up the budget its tenant shares with other subjects.
 */
export function createRequestLimiter(opts: LimiterOptions): RequestLimiter {
  const failure = opts.failure ?? createLimitFailurePolicy();
  const make = (points: number, name: RateLimitName): RateLimiterAbstract => {
    const common = { points, duration: WINDOW_S, keyPrefix: `agentry:rl:${name}` };
    return opts.redis
      ? new RateLimiterRedis({ ...common, storeClient: opts.redis, rejectIfRedisNotReady: true })
      : new RateLimiterMemory(common);
  };
  const checks: Check[] = [{ limit: 'subject', points: opts.requestsPerMinute, limiter: make(opts.requestsPerMinute, 'subject') }];
  if (opts.tenantRequestsPerMinute !== undefined) {
    checks.push({ limit: 'tenant', points: opts.tenantRequestsPerMinute, limiter: make(opts.tenantRequestsPerMinute, 'tenant') });
  }

  const middleware: RequestHandler = async (req, res, next) => {
    const principal = req.principal;
    if (!principal) return next();
    let closest: { points: number; r: RateLimiterRes } | undefined;
    for (const check of checks) {
      const key = check.limit === 'subject' ? `${principal.tenant}:${principal.subject}` : principal.tenant;
      let r: RateLimiterRes;
      try {
        r = await check.limiter.consume(key);
      } catch (err) {
        if (!(err instanceof RateLimiterRes)) {
          // Throws 503 unless failing open; then the request goes on unchecked (counted once, not once per limit).
          failure.unavailable('rate', err);
          return next();
        }
        setHeaders(res, check.points, err);
        opts.metrics?.rateLimited.inc({ limit: check.limit });
        // The counter is atomic: exactly one request, on one replica, is the first refused in its window.
        if (err.consumedPoints === check.points + 1 && opts.securityEvents) {
          void opts.securityEvents.record({
            type: 'security.rate_limited',
            tenant: principal.tenant,
            actor: principal.subject,
            data: { limit: check.limit, max: check.points, windowS: WINDOW_S, requestId: String(res.getHeader('X-Request-Id') ?? randomUUID()) },
          });
        }
        const retryAfter = Math.max(1, Math.ceil(err.msBeforeNext / 1000));
        throw new AppError(
          429,
          'rate_limited',
          'Too many requests',
          `the ${check.limit} limit of ${check.points} requests per minute is reached`,
          { limit: check.limit },
          { 'Retry-After': String(retryAfter) },
        );
      }
      if (!closest || r.remainingPoints < closest.r.remainingPoints) closest = { points: check.points, r };
    }
    if (closest) setHeaders(res, closest.points, closest.r);
    next();
  };
  return { mode: opts.redis ? 'redis' : 'in-process', middleware };
}

function setHeaders(res: Response, limit: number, r: RateLimiterRes): void {
  res.setHeader('RateLimit-Limit', String(limit));
  res.setHeader('RateLimit-Remaining', String(Math.max(0, r.remainingPoints)));
  res.setHeader('RateLimit-Reset', String(Math.max(0, Math.ceil(r.msBeforeNext / 1000))));
}
