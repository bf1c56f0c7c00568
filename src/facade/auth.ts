import type { RequestHandler } from 'express';
import { SignJWT, errors as joseErrors, jwtVerify } from 'jose';
import { z } from 'zod';
import type { Principal } from '../contracts';
import type { HttpMetrics, Logger } from '../telemetry';
import { AppError, ServiceUnavailableError, UnauthorizedError } from './errors';
import { KeySetUnavailableError, secretKey, type VerificationKey } from './verification-key';

import { ROLES, type Role } from '../pipelines/definition-schema';
import { hasLoneSurrogate } from '../security/unicode';

export { ROLES, type Role };

const claimsSchema = z.object({
  // Printable characters only: the subject is written to logs and the audit trail as the actor.
  sub: z
    .string()
    .min(1, 'must not be empty')
    .max(256, 'must be at most 256 characters')
    .regex(/^[^\p{Cc}]+$/u, 'must not contain control characters')
    // Invisible format characters (bidi overrides, zero-width joiners) would let two actors look alike in the audit trail.
    .regex(/^[^\p{Cf}\p{Zl}\p{Zp}]+$/u, 'must not contain invisible format characters (bidi controls, zero-width characters)')
    .regex(/^\S(.*\S)?$/su, 'must not be blank or start or end with white space')
    // A lone UTF-16 surrogate is not text: it cannot be stored or audited as it is.
    .refine((v) => !hasLoneSurrogate(v), 'must be well-formed Unicode (no lone surrogates)'),
  tenant: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'tenant must be a lowercase slug (a-z, 0-9, "_" and "-", at most 63, starting with a letter or digit)'),
  roles: z.array(z.enum(ROLES)).max(ROLES.length),
});

export interface AuthOptions {
  /** The key and pinned algorithms that verify tokens, from `loadVerificationKey`. Takes precedence over `secret`. */
  key?: VerificationKey;
  /** Shorthand for an HS256 secret (development and in-process tests). */
  secret?: string;
  issuer: string;
  audience: string;
  /** Clock skew allowed for `exp`, `nbf` and `iat`. @format seconds */
  clockToleranceS: number;
  /**
   * Longest lifetime (`exp - iat`) a token may declare; tokens without `exp` or `iat` are refused too, so a leaked
   * token cannot stay valid for ever. @default 86400 @format seconds
   */
  maxTokenLifetimeS?: number;
  /** Refused tokens are logged at debug with their reason and request id; never the token itself. */
  logger?: Logger;
  /** The time `exp` and `nbf` are checked against; tests pin it. @default () => new Date() */
  clock?: () => Date;
}

/** Why a request was refused; bounded, it labels `auth_failures_total`. */
export type AuthFailureReason =
  | 'missing'
  | 'malformed'
  | 'algorithm'
  | 'signature'
  | 'expired'
  | 'not_yet_valid'
  | 'claims'
  | 'lifetime'
  | 'unknown_key'
  | 'key_unavailable';

/** A refused token: the 401 (or 503) the caller gets, with the bounded reason for metrics and logs. */
class AuthFailure extends Error {
  override readonly name = 'AuthFailure';
  constructor(
    readonly reason: AuthFailureReason,
    readonly error: AppError,
    cause?: unknown,
  ) {
    super(error.message, { cause });
  }
}

const unauthorized = (reason: AuthFailureReason, detail: string) => new AuthFailure(reason, new UnauthorizedError(detail));

/** Default of `maxTokenLifetimeS`: one day. @format seconds */
export const DEFAULT_MAX_TOKEN_LIFETIME_S = 86_400;

/** A 401 whose `code` names the broken rule: tokens must carry `exp` and `iat`, at most the configured lifetime apart. */
const lifetimeRefused = (detail: string) =>
  new AuthFailure(
    'lifetime',
    new AppError(401, 'token_lifetime', 'Authentication required', detail, {}, { 'WWW-Authenticate': 'Bearer realm="agentry", error="invalid_token"' }),
  );

/** Maps what jose (or the key source) threw onto a bounded reason and a detail that names no key material. */
function classify(err: unknown): AuthFailure {
  if (err instanceof AuthFailure) return err;
  if (err instanceof KeySetUnavailableError) {
    return new AuthFailure(
      'key_unavailable',
      new ServiceUnavailableError('identity_unavailable', 'the token signing keys cannot be fetched right now; try again shortly'),
      err,
    );
  }
  if (err instanceof joseErrors.JWTExpired) return unauthorized('expired', 'token has expired');
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf' && err.reason === 'check_failed') return unauthorized('not_yet_valid', 'token is not valid yet (nbf)');
    if (err.reason === 'missing' && (err.claim === 'exp' || err.claim === 'iat')) return lifetimeRefused(`token claim "${err.claim}" is missing`);
    if (err.reason === 'missing') return unauthorized('claims', `token claim "${err.claim}" is missing`);
    return unauthorized('claims', `token claim "${err.claim}" failed: ${err.reason}`);
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return unauthorized('algorithm', 'token algorithm is not accepted');
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return unauthorized('signature', 'token signature is invalid');
  if (err instanceof joseErrors.JWKSNoMatchingKey) return unauthorized('unknown_key', 'no signing key matches the token');
  if (err instanceof joseErrors.JWKSMultipleMatchingKeys) return unauthorized('unknown_key', 'several signing keys match the token; it must name one with "kid"');
  return unauthorized('malformed', 'token is invalid');
}

declare module 'express-serve-static-core' {
  interface Request {
    principal?: Principal;
  }
}

/**
 * Verifies bearer tokens: algorithms pinned by configuration (the header's `alg` picks nothing outside them, so
 * `none` and HS/RS confusion fail), signature, then `iss`, `aud`, `exp` and `nbf` with bounded clock tolerance, and
 * the declared lifetime: `exp` and `iat` present, `iat` not in the future, `exp - iat` within `maxTokenLifetimeS`.
 */
export function createAuthenticator(opts: AuthOptions, metrics?: HttpMetrics) {
  const verification = opts.key ?? (opts.secret !== undefined ? secretKey(opts.secret) : undefined);
  if (!verification) throw new Error('createAuthenticator needs a verification key or a secret');
  const { key, algorithms } = verification;
  const maxLifetimeS = opts.maxTokenLifetimeS ?? DEFAULT_MAX_TOKEN_LIFETIME_S;
  // An unreachable key set is the operator's problem: warn, but once per interval rather than once per request.
  let lastKeyWarning = 0;

  /** Throws `AuthFailure` (reason and the error the caller gets). */
  async function verifyToken(token: string): Promise<Principal> {
    try {
      const { payload } = await jwtVerify(token, key as Parameters<typeof jwtVerify>[1], {
        algorithms,
        issuer: opts.issuer,
        audience: opts.audience,
        clockTolerance: opts.clockToleranceS,
        requiredClaims: ['exp', 'iat', 'sub'],
        currentDate: opts.clock?.(),
      });
      // jose has checked both are numbers. An `iat` in the future would let `exp` run past the bound from now.
      const iat = payload.iat!;
      const exp = payload.exp!;
      const nowS = Math.floor((opts.clock?.() ?? new Date()).getTime() / 1000);
      if (iat > nowS + opts.clockToleranceS) throw lifetimeRefused('token claim "iat" is in the future');
      if (exp - iat > maxLifetimeS) {
        throw lifetimeRefused(`token lifetime (exp - iat) is ${exp - iat} s; at most ${maxLifetimeS} s is accepted`);
      }
      const claims = claimsSchema.safeParse(payload);
      if (!claims.success) {
        const issue = claims.error.issues[0];
        throw unauthorized('claims', `token claim "${issue.path.join('.')}" is invalid: ${issue.message}`);
      }
      return { subject: claims.data.sub, tenant: claims.data.tenant, roles: claims.data.roles };
    } catch (err) {
      throw classify(err);
    }
  }

  /** Verifies one token; throws the 401 (or 503 when the key set is unreachable) the caller should get. */
  async function verify(token: string): Promise<Principal> {
    try {
      return await verifyToken(token);
    } catch (err) {
      throw classify(err).error;
    }
  }

  const middleware: RequestHandler = async (req, res, next) => {
    const header = req.headers.authorization;
    // The scheme name is case-insensitive (RFC 9110, section 11.1).
    const match = header ? /^Bearer +([A-Za-z0-9_\-.]+)$/i.exec(header) : null;
    try {
      if (!match) throw unauthorized('missing', 'a bearer token is required (Authorization: Bearer <jwt>)');
      req.principal = await verifyToken(match[1]);
    } catch (err) {
      const failure = classify(err);
      metrics?.authFailures.inc({ reason: failure.reason });
      if (failure.cause instanceof KeySetUnavailableError && Date.now() - lastKeyWarning > 10_000) {
        lastKeyWarning = Date.now();
        opts.logger?.warn({ source: verification.source, err: failure.cause.reason }, 'token signing keys cannot be fetched: answering 503');
      }
      opts.logger?.debug({ requestId: res.getHeader('X-Request-Id'), reason: failure.reason, detail: failure.error.detail }, 'bearer token refused');
      throw failure.error;
    }
    opts.logger?.debug({ requestId: res.getHeader('X-Request-Id'), subject: req.principal.subject, tenant: req.principal.tenant }, 'bearer token accepted');
    next();
  };
  return { verify, middleware, algorithms, source: verification.source };
}

/**
 * Mints an HS256 token with a shared secret, for development and tests only (never production keys). `ttlS`
 * (default 3600 s) must not exceed `maxLifetimeS` (default 86400 s, the facade's default bound): a longer token
 * would only be refused.
 */
export async function mintToken(opts: {
  secret: string;
  issuer: string;
  audience: string;
  subject: string;
  tenant: string;
  roles: Role[];
  ttlS?: number;
  maxLifetimeS?: number;
}): Promise<string> {
  const ttlS = opts.ttlS ?? 3600;
  const maxLifetimeS = opts.maxLifetimeS ?? DEFAULT_MAX_TOKEN_LIFETIME_S;
  // The facade checks these claims on every request: a token it would refuse is not minted.
  const claims = claimsSchema.safeParse({ sub: opts.subject, tenant: opts.tenant, roles: opts.roles });
  if (!claims.success) {
    const issue = claims.error.issues[0];
    const field = { sub: 'subject', tenant: 'tenant', roles: 'roles' }[String(issue.path[0])] ?? String(issue.path[0]);
    throw new RangeError(`the token's ${field} ${issue.message.replace(/^tenant /, '')}; the facade would refuse it`);
  }
  if (ttlS > maxLifetimeS) {
    throw new RangeError(`a token lifetime of ${ttlS} s exceeds JWT_MAX_TOKEN_LIFETIME_S (${maxLifetimeS} s); the facade would refuse it`);
  }
  // One clock reading for both claims, so `exp - iat` is exactly the lifetime asked for.
  const issuedAt = Math.floor(Date.now() / 1000);
  return new SignJWT({ tenant: opts.tenant, roles: opts.roles })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(opts.subject)
    .setIssuer(opts.issuer)
    .setAudience(opts.audience)
    .setIssuedAt(issuedAt)
    .setExpirationTime(issuedAt + ttlS)
    .sign(new TextEncoder().encode(opts.secret));
}
