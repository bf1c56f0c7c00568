import { randomUUID } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import express, { type RequestHandler } from 'express';
import helmet from 'helmet';
import type { Registry } from 'prom-client';
import type { Client } from '@temporalio/client';
import type { AuditStore } from '../audit';
import type { TrustProxy } from '../config';
import type { PipelineCatalog } from '../pipelines/pipeline-catalog';
import type { InputChecker } from '../security';
import { routeSpanNames, type HttpMetrics, type Logger } from '../telemetry';
import type { createAuthenticator } from './auth';
import { assertUtf8Json, bodyGuard, rejectInvalidUtf8 } from './body-guard';
import { createCodecRoutes, type CodecRouteOptions } from './codec-routes';
import { clientErrorHandler, connectMethodHandler, connectionsCheckingIntervalMs, DEFAULT_SERVER_TIMEOUTS, type ServerTimeouts } from './client-error';
import { createAuditRoutes, type AuditReader } from './audit-routes';
import { AppError, errorHandler, notFoundHandler } from './errors';
import { createHealthRoutes, type ReadinessCheck } from './health-routes';
import type { IntrusionGuard } from './intrusion-guard';
import type { RequestLimiter } from './limiter';
import type { RunAdmission } from './run-admission';
import { buildOpenApi, methodNotAllowed } from './openapi';
import { createRunControlRoutes } from './run-control-routes';
import { createRunEventsRoutes, type RunEventsOptions } from './run-events-routes';
import { createRunRoutes } from './run-routes';
import { createSecurityAudit } from './security-audit';
import { createPipelineRoutes } from './pipeline-routes';
import { createSystemStatusRoutes } from './system-status-routes';
import type { SystemStatusSource } from './system-status-source';

export interface AppDeps {
  logger: Logger;
  registry: Registry;
  httpMetrics: HttpMetrics;
  temporal: Client;
  taskQueue: string;
  uiUrl: string;
  pipelines: PipelineCatalog;
  checker: InputChecker;
  auth: ReturnType<typeof createAuthenticator>;
  limiter: RequestLimiter;
  bodyLimitBytes: number;
  readiness: Record<string, ReadinessCheck>;
  version: string;
  /** The tenant audit trail; the facade appends `security.denied` for refused run-control requests. */
  audit: Pick<AuditStore, 'append'>;
  /** Reads the audit trail for `GET /v1/audit` and `GET /v1/runs/:pipeline/:id/audit`; those routes are not mounted when absent. */
  auditReader?: AuditReader;
  /** Timings of `GET /v1/runs/:pipeline/:id/events`; the defaults suit production. */
  runEvents?: RunEventsOptions;
  /** How long an approval or signal waits for the run to take it before answering 503. @default 10_000 @format ms */
  updateTimeoutMs?: number;
  /** Header, request and keep-alive time limits of the HTTP server. @default DEFAULT_SERVER_TIMEOUTS */
  serverTimeouts?: Partial<ServerTimeouts>;
  /** Blocks callers that keep failing authentication or authorisation; off when absent. */
  intrusion?: IntrusionGuard;
  /** Concurrency caps on active runs (tenant, pipeline); starts are not capped when absent. */
  admission?: RunAdmission;
  /** Keys of the run-list cursors' MAC, the same on every replica; the first signs. @default random (one process only) */
  cursorKeys?: Buffer[];
  /** The codec server for the Web UI (`POST /codec/decode`, `/codec/encode`); not mounted when absent. */
  codec?: CodecRouteOptions;
  /** Proxies whose `X-Forwarded-For` gives the client address (TRUST_PROXY). @default false: the connection's peer */
  trustProxy?: TrustProxy;
  /** Measures and judges `GET /v1/system/status` (operators and admins); not mounted when absent. */
  systemStatus?: SystemStatusSource;
}

const requestId: RequestHandler = (req, res, next) => {
  const incoming = req.header('x-request-id');
  res.setHeader('X-Request-Id', incoming && /^[\w.-]{1,128}$/.test(incoming) ? incoming : randomUUID());
  next();
};

/** HTTP metrics labelled by the matched route template, never the raw path. */
function httpMetrics(metrics: HttpMetrics): RequestHandler {
  return (req, res, next) => {
    const start = performance.now();
    res.on('finish', () => {
      const route = req.route?.path ? `${req.baseUrl}${String(req.route.path)}` : 'unmatched';
      metrics.requests.inc({ method: req.method, route, status: String(res.statusCode) });
      metrics.duration.observe({ method: req.method, route }, (performance.now() - start) / 1000);
    });
    next();
  };
}

const jsonOnly: RequestHandler = (req, _res, next) => {
  const hasBody = req.headers['content-length'] !== '0' && (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined);
  if (['POST', 'PUT', 'PATCH'].includes(req.method) && hasBody) assertUtf8Json(req);
  next();
};

export function createApp(deps: AppDeps) {
  let draining = false;
  // Set by leaveRotation(): /ready answers 503 while requests are still served, so load balancers stop sending first.
  let leaving = false;
  // Aborted by stop(): long-lived responses (event streams) end instead of holding the shutdown.
  const shutdown = new AbortController();
  const app = express();
  const routeDeps = { ...deps, metrics: deps.httpMetrics };
  app.disable('x-powered-by');
  // The client address (audit, limits, intrusion detector) comes from X-Forwarded-For only via configured proxies.
  app.set('trust proxy', deps.trustProxy ?? false);
  app.set('query parser', 'simple');
  app.use(requestId, httpMetrics(deps.httpMetrics), routeSpanNames(), helmet());
  app.use((req, _res, next) => {
    // HTTP/1.1 requires Host (RFC 9112 §3.2); HTTP/1.0 clients may leave it out.
    if (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1 && !req.headers.host) {
      next(new AppError(400, 'missing_host', 'Bad request', 'an HTTP/1.1 request must carry a Host header'));
      return;
    }
    next();
  });
  app.use(createHealthRoutes({ checks: deps.readiness, registry: deps.registry, isDraining: () => draining || leaving }));
  const openapi = buildOpenApi({ version: deps.version, pipelines: deps.pipelines.list().map((p) => p.definition.name) });
  app.get('/openapi.json', (_req, res) => {
    res.json(openapi);
  });
  // A method the description does not list on a path it describes is 405, not 404.
  app.use(methodNotAllowed(openapi));
  // Blocked client addresses are refused before anything else runs; probes and the description stay open.
  if (deps.intrusion) app.use(deps.intrusion.screenAddress);
  if (deps.codec) app.use('/codec', createCodecRoutes({ ...deps.codec, auth: deps.auth, limiter: deps.limiter }));
  app.use('/v1', jsonOnly, express.json({ limit: deps.bodyLimitBytes, strict: true, verify: rejectInvalidUtf8 }), bodyGuard(), deps.auth.middleware, deps.limiter.middleware);
  if (deps.intrusion) app.use('/v1', deps.intrusion.screenSubject);
  app.use(createPipelineRoutes({ pipelines: deps.pipelines }));
  app.use(createRunRoutes(routeDeps));
  app.use(
    createRunControlRoutes({
      temporal: deps.temporal,
      pipelines: deps.pipelines,
      security: createSecurityAudit({ audit: deps.audit, logger: deps.logger }),
      updateTimeoutMs: deps.updateTimeoutMs,
    }),
  );
  app.use(
    createRunEventsRoutes({
      temporal: deps.temporal,
      pipelines: deps.pipelines,
      logger: deps.logger,
      metrics: deps.httpMetrics,
      shutdown: shutdown.signal,
      ...deps.runEvents,
    }),
  );
  if (deps.auditReader) app.use(createAuditRoutes({ audit: deps.auditReader, pipelines: deps.pipelines }));
  if (deps.systemStatus) app.use(createSystemStatusRoutes({ status: deps.systemStatus }));
  app.use(notFoundHandler());
  if (deps.intrusion) app.use(deps.intrusion.observe);
  app.use(errorHandler(deps.logger));

  let server: Server | undefined;
  /** Responses not yet sent in full: the drain waits for them, then closes their connections. */
  const inFlight = new Set<ServerResponse>();
  /** Open connections, each with the number of its responses still in flight. */
  const connections = new Map<Socket, number>();
  /**
   * During the drain, ends every connection with no response in flight. Node's closeIdleConnections() is not
   * enough: a connection whose client walked away from a streamed response can stay open, idle, with its parser
   * still counting a request, and would hold the close until the request timeout (a minute) cuts it.
   */
  const endIdleConnections = () => {
    for (const [socket, active] of connections) {
      if (active === 0 && !socket.writableEnded) socket.end(() => socket.destroy());
    }
  };
  return {
    app,
    /** Listens on `port` (0 picks a free one) and resolves with the bound port. */
    start(port: number, host: string): Promise<number> {
      const timeouts: ServerTimeouts = { ...DEFAULT_SERVER_TIMEOUTS, ...deps.serverTimeouts };
      return new Promise((resolve, reject) => {
        // The header and request timeouts bound receiving a request only (slow senders); responses that stream,
        // such as run event streams, are not cut by them.
        const http = createServer(
          {
            headersTimeout: timeouts.headersTimeoutMs,
            requestTimeout: timeouts.requestTimeoutMs,
            connectionsCheckingInterval: connectionsCheckingIntervalMs(timeouts),
            // Node would answer a request without Host with a bare 400; the app answers it as a problem instead.
            requireHostHeader: false,
          },
          app,
        );
        http.keepAliveTimeout = timeouts.keepAliveTimeoutMs;
        // Requests Node's parser refuses never reach Express: answer them as problem+json too.
        http.on('clientError', clientErrorHandler(deps.logger));
        http.on('connect', connectMethodHandler());
        http.on('connection', (socket: Socket) => {
          connections.set(socket, 0);
          socket.once('close', () => connections.delete(socket));
        });
        http.on('request', (req: IncomingMessage, res: ServerResponse) => {
          const socket = req.socket;
          inFlight.add(res);
          if (connections.has(socket)) connections.set(socket, (connections.get(socket) ?? 0) + 1);
          res.once('close', () => {
            inFlight.delete(res);
            if (connections.has(socket)) connections.set(socket, Math.max(0, (connections.get(socket) ?? 1) - 1));
            if (draining) setImmediate(endIdleConnections);
          });
          // A request that arrives on a kept-alive connection during the drain is answered, then its connection closed.
          if (draining) res.setHeader('Connection', 'close');
        });
        http.once('error', reject);
        server = http.listen(port, host, () => {
          http.off('error', reject);
          resolve((http.address() as AddressInfo).port);
        });
      });
    },
    /** /ready answers 503 `draining` from now on; everything else is still served, until stop(). */
    leaveRotation(): void {
      leaving = true;
    },
    /** Stops taking connections, ends open event streams (clients resume elsewhere) and lets in-flight requests finish. */
    stop(): Promise<void> {
      draining = true;
      shutdown.abort();
      return new Promise((resolve) => {
        if (!server) return resolve();
        const http = server;
        http.close(() => resolve());
        http.closeIdleConnections();
        endIdleConnections();
        // A kept-alive connection would otherwise outlive its last answer and hold the close until the keep-alive
        // timeout: answer with `Connection: close`, or (headers already sent) end it once it falls idle, which
        // the 'close' listener above does for every response that finishes during the drain.
        for (const res of inFlight) {
          if (!res.headersSent) res.setHeader('Connection', 'close');
        }
      });
    },
  };
}
export type App = ReturnType<typeof createApp>;
