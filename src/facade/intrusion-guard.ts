import { randomUUID } from 'node:crypto';
import type { ErrorRequestHandler, Request, RequestHandler, Response } from 'express';
import { describeIdentity, type Identity, type IntrusionDetector } from '../security';
import type { HttpMetrics, Logger } from '../telemetry';
import { AppError } from './errors';
import type { LimitFailurePolicy } from './limit-failure';
import { SYSTEM_TENANT, type SecurityEvents } from './security-audit';

export interface IntrusionGuardDeps {
  detector: IntrusionDetector;
  /** What a request gets when the detector cannot reach Redis (the limits' policy). */
  failure: LimitFailurePolicy;
  logger: Logger;
  metrics?: HttpMetrics;
  /** Where `security.blocked` is recorded, once per block. */
  securityEvents?: SecurityEvents;
  /** The detector's settings, recorded with each block. */
  settings: { windowS: number; maxFailures: number; blockS: number };
  /**
   * Never block loopback addresses. Behind a proxy that does not forward client addresses every caller looks like
   * loopback, and one bad caller would block them all; subjects are still blocked. @default true
   */
  exemptLoopback?: boolean;
}

export interface IntrusionGuard {
  /** Before authentication: refuses requests from a blocked client address. Mount first under `/v1`. */
  screenAddress: RequestHandler;
  /** After authentication: refuses requests of a blocked subject. */
  screenSubject: RequestHandler;
  /**
   * Error middleware, mounted before the error handler: counts each 401 against the client address and each 403
   * against the address and the subject, and starts a block at the threshold. A 401 is never counted against the
   * subject its token names: that subject is not verified, and counting it would let anyone block anyone.
   */
  observe: ErrorRequestHandler;
}

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

function blockedError(identity: Identity, ms: number): AppError {
  return new AppError(
    403,
    'temporarily_blocked',
    'Temporarily blocked',
    `too many failed or refused requests from this ${identity.kind === 'subject' ? 'subject' : 'client address'}; try again later`,
    {},
    { 'Retry-After': String(Math.max(1, Math.ceil(ms / 1000))) },
  );
}

/** The facade side of the intrusion detector: screening requests and feeding it the refusals. */
export function createIntrusionGuard(deps: IntrusionGuardDeps): IntrusionGuard {
  const exemptLoopback = deps.exemptLoopback ?? true;
  const addressOf = (req: Request): Identity | undefined =>
    req.ip && !(exemptLoopback && LOOPBACK.test(req.ip)) ? { kind: 'address', address: req.ip } : undefined;

  async function screen(identity: Identity | undefined): Promise<void> {
    if (!identity) return;
    let ms: number;
    try {
      ms = await deps.detector.blockedFor(identity);
    } catch (err) {
      deps.failure.unavailable('intrusion', err); // throws 503 unless failing open
      return;
    }
    if (ms > 0) {
      deps.metrics?.blockedRequests.inc({ kind: identity.kind });
      throw blockedError(identity, ms);
    }
  }

  async function blockStarted(identity: Identity, req: Request, res: Response, cause: AppError): Promise<void> {
    deps.metrics?.blocksStarted.inc({ kind: identity.kind });
    deps.logger.warn({ identity: describeIdentity(identity), blockS: deps.settings.blockS, trigger: cause.code }, 'intrusion detector: blocking');
    // The address goes in `ip`, a field the audit store seals; never in `actor`, which stays plain.
    await deps.securityEvents?.record({
      type: 'security.blocked',
      tenant: identity.kind === 'subject' ? identity.tenant : SYSTEM_TENANT,
      actor: identity.kind === 'subject' ? identity.subject : req.principal?.subject ?? 'anonymous',
      data: {
        kind: identity.kind,
        ip: identity.kind === 'address' ? identity.address : req.ip,
        ...deps.settings,
        trigger: { status: cause.status, code: cause.code },
        requestId: String(res.getHeader('X-Request-Id') ?? randomUUID()),
      },
    });
  }

  const observe: ErrorRequestHandler = async (err, req, res, next) => {
    if (!(err instanceof AppError) || (err.status !== 401 && err.status !== 403) || err.code === 'temporarily_blocked') {
      next(err);
      return;
    }
    const identities: Identity[] = [];
    const address = addressOf(req);
    if (address) identities.push(address);
    if (err.status === 403 && req.principal) {
      identities.push({ kind: 'subject', tenant: req.principal.tenant, subject: req.principal.subject });
    }
    for (const identity of identities) {
      try {
        if (await deps.detector.recordFailure(identity)) await blockStarted(identity, req, res, err);
      } catch (e) {
        // The caller gets its 401/403 either way; an unreachable Redis is reported by /ready and the screens.
        deps.logger.debug({ err: e instanceof Error ? e.message : String(e) }, 'intrusion detector: could not count a failure');
      }
    }
    next(err);
  };

  return {
    screenAddress: async (req, _res, next) => {
      await screen(addressOf(req));
      next();
    },
    screenSubject: async (req, _res, next) => {
      const p = req.principal;
      await screen(p ? { kind: 'subject', tenant: p.tenant, subject: p.subject } : undefined);
      next();
    },
    observe,
  };
}
