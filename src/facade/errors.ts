import type { ErrorRequestHandler, RequestHandler } from 'express';
import { randomUUID } from 'node:crypto';
import { isGrpcServiceError } from '@temporalio/client';
import type { Logger } from '../telemetry';

/**
 * The facade's one error family. Every HTTP error leaves as `application/problem+json` with a stable `code`;
 * nothing else (stack traces, file paths, driver messages) reaches the caller.
 */
export class AppError extends Error {
  override readonly name: string = 'AppError';
  constructor(
    readonly status: number,
    readonly code: string,
    readonly title: string,
    readonly detail?: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(detail ?? title);
  }
}

export class ValidationError extends AppError {
  override readonly name = 'ValidationError';
  constructor(detail: string, readonly errors: { path: string; message: string }[]) {
    super(400, 'validation_failed', 'Request validation failed', detail, { errors });
  }
}

export class NotFoundError extends AppError {
  override readonly name = 'NotFoundError';
  constructor(what: string) {
    super(404, 'not_found', 'Not found', `${what} was not found`);
  }
}

export class UnauthorizedError extends AppError {
  override readonly name = 'UnauthorizedError';
  constructor(detail: string) {
    super(401, 'unauthorized', 'Authentication required', detail, {}, { 'WWW-Authenticate': 'Bearer realm="agentry"' });
  }
}

export class ForbiddenError extends AppError {
  override readonly name = 'ForbiddenError';
  constructor(detail: string) {
    super(403, 'forbidden', 'Forbidden', detail);
  }
}

export class ConflictError extends AppError {
  override readonly name = 'ConflictError';
  constructor(code: string, detail: string) {
    super(409, code, 'Conflict', detail);
  }
}

export class ServiceUnavailableError extends AppError {
  override readonly name = 'ServiceUnavailableError';
  constructor(code: string, detail: string, retryAfterS = 5) {
    super(503, code, 'Service unavailable', detail, {}, { 'Retry-After': String(retryAfterS) });
  }
}

export function sendProblem(res: Parameters<RequestHandler>[1], err: AppError, instance?: string): void {
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  res
    .status(err.status)
    .type('application/problem+json')
    .send(
      JSON.stringify({
        type: `urn:agentry:problem:${err.code}`,
        title: err.title,
        status: err.status,
        detail: err.detail,
        code: err.code,
        ...(instance ? { instance } : {}),
        ...err.extra,
      }),
    );
}

/** A caller's header value echoed back in a problem: printable ASCII only, at most 40 characters. */
const echoable = (v: unknown) => String(v).replace(/[^\x20-\x7e]/g, '?').slice(0, 40);

/** Maps body-parser failures (they carry `type` and `status`) onto our codes. */
function fromBodyParser(err: { type?: string; status?: number; limit?: number; encoding?: unknown; charset?: unknown }): AppError | undefined {
  const quoted = (v: unknown) => JSON.stringify(echoable(v));
  switch (err.type) {
    case 'entity.parse.failed':
      return new AppError(400, 'invalid_json', 'Malformed JSON', 'the request body is not valid JSON');
    case 'entity.too.large':
      return new AppError(413, 'payload_too_large', 'Payload too large', `the request body exceeds ${err.limit} bytes`);
    case 'encoding.unsupported':
      return new AppError(
        415,
        'unsupported_media_type',
        'Unsupported media type',
        `Content-Encoding ${quoted(err.encoding)} is not accepted; send the body as identity, gzip, deflate or br`,
      );
    case 'charset.unsupported':
      return new AppError(415, 'unsupported_media_type', 'Unsupported media type', `charset ${quoted(err.charset)} is not accepted; send the body as UTF-8 (charset=utf-8)`);
    case 'request.aborted':
      return new AppError(400, 'request_aborted', 'Request aborted', 'the client aborted the request');
    default:
      return undefined;
  }
}

/**
 * Errors Express itself raises for a bad request, such as a route parameter that is not valid percent-encoding
 * (a URIError carrying status 400): the caller's fault, so a 4xx, never a logged 500.
 */
function fromClientError(err: { status?: unknown }): AppError | undefined {
  if (err?.status !== 400) return undefined;
  return new AppError(400, 'bad_request', 'Bad request', 'the request could not be understood');
}

/** gRPC status UNAVAILABLE: the Temporal frontend cannot be reached (down, restarting, refusing connections). */
const GRPC_UNAVAILABLE = 14;
/** gRPC status FAILED_PRECONDITION: Temporal answers a query this way while the run's workflow task is failing. */
const GRPC_FAILED_PRECONDITION = 9;
/** Socket errors of a dependency that is down or went away mid-request. */
const CONNECTION_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE']);
/** SQLSTATE class 08 (connection exception), and 57P01-57P03: the server shuts down, crashed, or is starting up. */
const PG_UNAVAILABLE = /^(08...|57P0[123])$/;
/** What node-postgres says when its connection drops or no connection can be had in time; these carry no code. */
const PG_CONNECTION_MESSAGE = /^(Connection terminated|timeout exceeded when trying to connect)/;

/**
 * An outage of Temporal or PostgreSQL is not the caller's fault nor a bug: 503 with Retry-After, so clients wait it
 * out, instead of a 500 logged as an unexpected error. The Temporal client wraps gRPC errors, so causes are followed.
 */
function fromUnavailableDependency(err: unknown): AppError | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (isGrpcServiceError(e) && e.code === GRPC_UNAVAILABLE) {
      return new ServiceUnavailableError('temporal_unavailable', 'Temporal is unavailable; try again shortly');
    }
    if (isGrpcServiceError(e) && e.code === GRPC_FAILED_PRECONDITION && /workflow task in failed state/i.test(e.message)) {
      // The run's workflow task keeps failing (a worker error or a nondeterministic change): it cannot answer until
      // an operator fixes the cause (docs/runbook.md, "A run's workflow task is failing").
      return new ServiceUnavailableError('run_task_failing', "the run's workflow task is failing, so it cannot answer; operators have been told by the WorkflowTaskFailing alert", 60);
    }
    const code = (e as { code?: unknown }).code;
    if ((typeof code === 'string' && (CONNECTION_ERRORS.has(code) || PG_UNAVAILABLE.test(code))) || PG_CONNECTION_MESSAGE.test(e.message)) {
      return new ServiceUnavailableError('database_unavailable', 'the database is unavailable; try again shortly');
    }
  }
  return undefined;
}

export function notFoundHandler(): RequestHandler {
  return (req, _res, next) => next(new NotFoundError(`route ${req.method} ${req.path}`));
}

/** zlib refusing a body that says it is compressed (`Content-Encoding: gzip`) but is not: the caller's fault. */
function fromDecompression(err: { code?: unknown }, req: Parameters<RequestHandler>[0]): AppError | undefined {
  if (typeof err?.code !== 'string' || !err.code.startsWith('Z_')) return undefined;
  const encoding = echoable(req.headers['content-encoding'] ?? '');
  return new AppError(400, 'invalid_content_encoding', 'Malformed compressed body', `the body is not valid ${encoding || 'compressed'} data (Content-Encoding)`);
}

export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const appErr =
      err instanceof AppError
        ? err
        : (fromBodyParser(err as { type?: string; status?: number; limit?: number }) ??
          fromDecompression(err ?? {}, req) ??
          fromClientError(err ?? {}) ??
          fromUnavailableDependency(err));
    if (appErr) {
      sendProblem(res, appErr);
      return;
    }
    const correlationId = randomUUID();
    logger.error({ correlationId, err, route: req.route?.path, method: req.method }, 'unhandled error');
    sendProblem(
      res,
      new AppError(500, 'internal_error', 'Internal error', `an unexpected error occurred; correlation id ${correlationId}`, {
        correlationId,
      }),
    );
  };
}
