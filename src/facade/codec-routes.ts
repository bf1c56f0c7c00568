import express, { Router, type RequestHandler } from 'express';
import type { PayloadCodec } from '@temporalio/common';
import { PayloadDecryptionError, payloadsFromJson, payloadsToJson } from '../codec';
import { ROLES, type Role } from './auth';
import { assertUtf8Json, rejectInvalidUtf8 } from './body-guard';
import { AppError, ForbiddenError, ValidationError } from './errors';

/**
 * Roles that may use the codec endpoints. Every role may read runs (the default `access.read`), so any of them may
 * read payloads; a token without roles may not. The keys are the deployment's, not a tenant's: whoever may call
 * /codec/decode can read any payload they can fetch from Temporal.
 */
export const CODEC_ROLES: readonly Role[] = ROLES;

export interface CodecRouteOptions {
  /** The same codec the facade's client and the workers use. */
  codec: PayloadCodec;
  /** Browser origins (the Temporal Web UI) allowed to call these endpoints: CODEC_CORS_ORIGINS. */
  corsOrigins: readonly string[];
  /** Largest request body. @default 4194304 @format bytes (Temporal's default payload limit is 2 MiB, base64 adds a third) */
  bodyLimitBytes?: number;
}

export interface CodecRouteDeps extends CodecRouteOptions {
  auth: { middleware: RequestHandler };
  /** The API's request limits (per subject and tenant): codec calls count like any other. */
  limiter?: { middleware: RequestHandler };
}

/**
 * Payloads one request may carry. The Web UI sends a history's payloads a page at a time; a body of hundreds of
 * thousands of empty payloads would hold the event loop for seconds.
 */
export const MAX_CODEC_PAYLOADS = 1000;

/**
 * The codec server the Temporal Web UI and CLI call to show payloads decrypted: `POST /codec/decode` and
 * `POST /codec/encode`, body and answer `{ payloads: [{ metadata: { key: base64 }, data: base64 }] }`. Needs a
 * bearer token with a role in CODEC_ROLES. CORS is answered for the configured origins only, with credentials,
 * so a browser on the Web UI can send `Authorization`. `X-Namespace` is accepted and not used: the keys belong
 * to the deployment.
 */
export function createCodecRoutes(deps: CodecRouteDeps): Router {
  const origins = new Set(deps.corsOrigins);
  const router = Router();

  // CORS first: a preflight carries no Authorization, and a browser must be able to read the 401 it gets.
  const cors: RequestHandler = (req, res, next) => {
    const origin = req.headers.origin;
    if (origin !== undefined) {
      res.vary('Origin');
      if (!origins.has(origin)) {
        throw new AppError(403, 'origin_not_allowed', 'Forbidden', 'this origin may not call the codec endpoints (see CODEC_CORS_ORIGINS)');
      }
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
    }
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Methods', 'POST, GET, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'X-Namespace, Content-Type, Authorization');
      res.setHeader('Access-Control-Max-Age', '600');
      res.status(204).end();
      return;
    }
    next();
  };

  const jsonBody: RequestHandler = (req, _res, next) => {
    assertUtf8Json(req);
    next();
  };

  const codecRole: RequestHandler = (req, _res, next) => {
    if (!req.principal?.roles.some((r) => CODEC_ROLES.includes(r))) {
      throw new ForbiddenError(`reading payloads needs one of the roles: ${CODEC_ROLES.join(', ')}`);
    }
    next();
  };

  const convert =
    (op: 'encode' | 'decode'): RequestHandler =>
    async (req, res) => {
      const count = Array.isArray((req.body as { payloads?: unknown })?.payloads) ? (req.body as { payloads: unknown[] }).payloads.length : 0;
      if (count > MAX_CODEC_PAYLOADS) {
        throw new ValidationError(`at most ${MAX_CODEC_PAYLOADS} payloads per request`, [
          { path: '/payloads', message: `has ${count} items; send at most ${MAX_CODEC_PAYLOADS} per request` },
        ]);
      }
      const parsed = payloadsFromJson(req.body);
      if ('errors' in parsed) {
        throw new ValidationError('the body must be { "payloads": [{ "metadata": { "key": base64 }, "data": base64 }] }', parsed.errors);
      }
      try {
        res.json(payloadsToJson(await deps.codec[op](parsed.payloads)));
      } catch (err) {
        if (!(err instanceof PayloadDecryptionError)) throw err;
        throw new AppError(422, 'payload_undecodable', 'Payload cannot be decoded', err.message, { reason: err.reason, keyId: err.keyId });
      }
    };

  const body = express.json({ limit: deps.bodyLimitBytes ?? 4 * 1024 * 1024, strict: true, verify: rejectInvalidUtf8 });
  router.use(cors);
  for (const op of ['encode', 'decode'] as const) {
    router.post(`/${op}`, deps.auth.middleware, ...(deps.limiter ? [deps.limiter.middleware] : []), codecRole, jsonBody, body, convert(op));
  }
  return router;
}
