import type { RequestHandler } from 'express';
import { SignJWT, errors as joseErrors, jwtVerify } from 'jose';
import { z } from 'zod';
import type { Principal } from '../contracts';
import type { HttpMetrics } from '../telemetry';
import { UnauthorizedError } from './errors';

import { ROLES, type Role } from '../pipelines/definition-schema';

export { ROLES, type Role };

const claimsSchema = z.object({
  sub: z.string().min(1).max(256),
  tenant: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'tenant must be a lowercase slug'),
  roles: z.array(z.enum(ROLES)).max(ROLES.length),
});

export interface AuthOptions {
  secret: string;
  issuer: string;
  audience: string;
  clockToleranceS: number;
}

declare module 'express-serve-static-core' {
  interface Request {
    principal?: Principal;
  }
}

/** Verifies HS256 bearer tokens: algorithm pinned, iss, aud, exp and nbf checked with bounded clock tolerance. */
export function createAuthenticator(opts: AuthOptions, metrics?: HttpMetrics) {
  const key = new TextEncoder().encode(opts.secret);
  async function verify(token: string): Promise<Principal> {
    try {
      const { payload } = await jwtVerify(token, key, {
        algorithms: ['HS256'],
        issuer: opts.issuer,
        audience: opts.audience,
        clockTolerance: opts.clockToleranceS,
        requiredClaims: ['exp', 'sub'],
      });
      const claims = claimsSchema.safeParse(payload);
      if (!claims.success) {
        const issue = claims.error.issues[0];
        throw new UnauthorizedError(`token claim "${issue.path.join('.')}" is invalid: ${issue.message}`);
      }
      return { subject: claims.data.sub, tenant: claims.data.tenant, roles: claims.data.roles };
    } catch (err) {
      if (err instanceof UnauthorizedError) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new UnauthorizedError('token has expired');
      if (err instanceof joseErrors.JWTClaimValidationFailed) throw new UnauthorizedError(`token claim "${err.claim}" failed: ${err.reason}`);
      throw new UnauthorizedError('token is invalid');
    }
  }

  const middleware: RequestHandler = async (req, _res, next) => {
    const header = req.headers.authorization;
    const match = header ? /^Bearer ([A-Za-z0-9_\-.]+)$/.exec(header) : null;
    if (!match) {
      metrics?.authFailures.inc({ reason: 'missing' });
      throw new UnauthorizedError('a bearer token is required (Authorization: Bearer <jwt>)');
    }
    try {
      req.principal = await verify(match[1]);
    } catch (err) {
      metrics?.authFailures.inc({ reason: 'invalid' });
      throw err;
    }
    next();
  };
  return { verify, middleware };
}

/** Mints an HS256 token for development and tests. */
export async function mintToken(
  opts: Pick<AuthOptions, 'secret' | 'issuer' | 'audience'> & { subject: string; tenant: string; roles: Role[]; ttlS?: number },
): Promise<string> {
  return new SignJWT({ tenant: opts.tenant, roles: opts.roles })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(opts.subject)
    .setIssuer(opts.issuer)
    .setAudience(opts.audience)
    .setIssuedAt()
    .setExpirationTime(`${opts.ttlS ?? 3600}s`)
    .sign(new TextEncoder().encode(opts.secret));
}
