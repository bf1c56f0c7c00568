// First: tracing instruments http and pg as they load, so it must start before anything imports them.
import { tracing } from './telemetry/facade-tracing';
import { hkdfSync } from 'node:crypto';
import { Pool } from 'pg';
import { exitWithParent } from './runtime/exit-with-parent';
import { assertSearchAttributes } from './temporal/search-attributes';
import { createBuiltinAgents } from './agents';
import { createAuditStore, migrate, sealKeysFromConfig } from './audit';
import { payloadCodecFromConfig } from './codec';
import { loadConfig, requireKeys, requirePayloadKeys } from './config';
import {
  advisory,
  createApp,
  createAuthenticator,
  createIntrusionGuard,
  createLimitFailurePolicy,
  createRequestLimiter,
  createRunAdmission,
  createSecurityEvents,
  createSystemStatusSource,
  loadVerificationKey,
} from './facade';
import { loadPipelineCatalog } from './pipelines/pipeline-catalog';
import { createInputChecker, createIntrusionDetector, createLimitsRedis, createMemoryRunSlots, createRunSlots } from './security';
import { connectClient, dataConverterFor } from './temporal/connection';
import { clientTracingInterceptors, createHttpMetrics, createLogger, createRegistry, createTemporalObserver, registerTemporalGauges, workersPollCheck } from './telemetry';
import { Gauge } from 'prom-client';
import { PIPELINE_WORKFLOW } from './contracts';
import { version } from '../package.json';

/** The facade process: authenticates callers and starts, reads and lists runs. Holds no state of its own. */
async function main(): Promise<void> {
  const config = requirePayloadKeys(requireKeys(loadConfig(), ['DATABASE_URL']));
  // Refuses to start, naming the key, without exactly one of JWT_SECRET, JWT_PUBLIC_KEY, JWT_JWKS_URL or with
  // JWT_ALGORITHMS that do not fit it.
  const identity = await loadVerificationKey(config);
  const logger = createLogger({ level: config.LOG_LEVEL, name: 'agentry-facade' });
  logger.info({ source: identity.source, keyType: identity.keyType, algorithms: identity.algorithms }, 'bearer tokens are verified');
  identity.warmUp().catch((err: Error) => logger.warn({ err: err.message, source: identity.source }, 'token signing keys not reachable yet'));
  const registry = createRegistry('facade');
  const httpMetrics = createHttpMetrics(registry);

  const agents = createBuiltinAgents({ trainFile: config.CLASSIFIER_TRAIN_FILE, cacheDir: config.modelCacheDir });
  const pipelines = await loadPipelineCatalog(config.PIPELINES_DIR, agents);
  if (pipelines.list().length === 0) {
    throw new Error(`PIPELINES_DIR ${config.PIPELINES_DIR} holds no pipeline definitions (.yaml, .yml or .json files): the facade would have nothing to run`);
  }

  const pool = new Pool({ connectionString: config.DATABASE_URL, max: config.DATABASE_POOL_MAX });
  pool.on('error', (err) => logger.warn({ err: err.message }, 'idle database connection failed'));
  await migrate(config.DATABASE_URL);

  // Limits: rate limits, run slots and the intrusion detector share one Redis (or live in memory without it).
  const redis = config.REDIS_URL ? createLimitsRedis(config.REDIS_URL) : undefined;
  let redisUp = true;
  // ioredis reports every failed reconnection attempt: log the outage once, and its end.
  redis?.on('error', (err) => {
    if (redisUp) logger.warn({ err: err.message }, 'redis connection lost; reconnecting');
    redisUp = false;
  });
  redis?.on('ready', () => {
    if (!redisUp) logger.info('redis connection restored');
    redisUp = true;
  });
  // Addresses, user agents, comments and reasons in audit events are sealed with AUDIT_SEAL_KEYS (or the dev key file).
  const seal = sealKeysFromConfig(config);
  logger.info({ keySource: seal.source, keyFile: seal.keyFile, activeKeyId: seal.keys.activeKeyId }, 'audit fields are sealed');
  const audit = createAuditStore(pool, { sealKeys: seal.keys });
  const securityEvents = createSecurityEvents({ audit, logger });
  const limitFailure = createLimitFailurePolicy({ failOpen: config.RATE_LIMIT_FAIL_OPEN, metrics: httpMetrics, logger });
  const limiter = createRequestLimiter({
    redis,
    requestsPerMinute: config.RATE_LIMIT_PER_MINUTE,
    tenantRequestsPerMinute: config.TENANT_RATE_LIMIT_PER_MINUTE,
    metrics: httpMetrics,
    failure: limitFailure,
    securityEvents,
  });
  const idsSettings = { windowS: config.IDS_WINDOW_S, maxFailures: config.IDS_MAX_FAILURES, blockS: config.IDS_BLOCK_S };
  const intrusion = createIntrusionGuard({
    detector: createIntrusionDetector({ ...idsSettings, redis }),
    failure: limitFailure,
    logger,
    metrics: httpMetrics,
    securityEvents,
    settings: idsSettings,
    exemptLoopback: config.IDS_EXEMPT_LOOPBACK,
  });

  // The facade reads run state (queries, results, memos) and the Web UI asks it to decode: same codec as the workers.
  const payloads = payloadCodecFromConfig(config);
  if (payloads.codec.encrypts) logger.info({ keySource: payloads.keySource, keyFile: payloads.keyFile, activeKeyId: payloads.codec.activeKeyId }, 'payloads are encrypted');
  else logger.warn({ keySource: payloads.keySource }, 'PAYLOAD_ENCRYPTION is off: new payloads are stored in plaintext');
  const temporal = await connectClient({
    address: config.TEMPORAL_ADDRESS,
    namespace: config.TEMPORAL_NAMESPACE,
    dataConverter: dataConverterFor(payloads.codec),
    rpcAttempts: config.TEMPORAL_RPC_ATTEMPTS,
    // Each run starts inside the request's trace: the workflow and its activities continue it.
    interceptors: clientTracingInterceptors(),
  });
  await assertSearchAttributes(temporal, config.TEMPORAL_NAMESPACE);

  const admission = createRunAdmission({
    slots: redis ? createRunSlots(redis) : createMemoryRunSlots(),
    temporal,
    tenantMaxActiveRuns: config.TENANT_MAX_ACTIVE_RUNS,
    failure: limitFailure,
    logger,
    metrics: httpMetrics,
  });

  // Open runs, counted by Temporal visibility at scrape time: right across facade restarts and replicas.
  new Gauge({
    name: 'active_workflows',
    help: 'Pipeline runs currently open, from Temporal visibility.',
    registers: [registry],
    async collect() {
      try {
        const { count } = await temporal.workflow.count(`WorkflowType = '${PIPELINE_WORKFLOW}' AND ExecutionStatus = 'Running'`);
        this.set(count);
      } catch {
        // Leave the last value; /ready reports Temporal being unreachable.
      }
    },
  });

  // Task-queue backlog and pollers, approval backlog and run times, from Temporal: for /metrics (computed at scrape
  // time), the `workers` readiness check and GET /v1/system/status.
  const observer = createTemporalObserver({
    temporal,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    pipelines: () => pipelines.list().map((p) => p.definition.name),
    pollerMaxAgeS: config.READY_WORKER_POLL_MAX_AGE_S,
  });
  registerTemporalGauges(registry, observer);
  const systemStatus = createSystemStatusSource({ registry, observer, thresholds: config.STATUS_THRESHOLDS });

  const app = createApp({
    logger,
    registry,
    httpMetrics,
    temporal,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    uiUrl: config.TEMPORAL_UI_URL,
    pipelines,
    checker: createInputChecker(),
    auth: createAuthenticator(
      {
        key: identity,
        issuer: config.JWT_ISSUER,
        audience: config.JWT_AUDIENCE,
        clockToleranceS: config.JWT_CLOCK_TOLERANCE_S,
        maxTokenLifetimeS: config.JWT_MAX_TOKEN_LIFETIME_S,
        logger,
      },
      httpMetrics,
    ),
    limiter,
    intrusion,
    admission,
    bodyLimitBytes: config.BODY_LIMIT_BYTES,
    // Every replica has AUDIT_SEAL_KEYS, so each can continue a listing another one started, across a rotation too.
    cursorKeys: seal.keys.keyIds.map((id) => Buffer.from(hkdfSync('sha256', seal.keys.key(id)!, Buffer.alloc(0), 'agentry run-list cursor', 32))),
    runEvents: { maxStreamsPerSubject: config.EVENT_STREAMS_PER_SUBJECT, maxStreamsPerTenant: config.EVENT_STREAMS_PER_TENANT, maxStreams: config.EVENT_STREAMS_MAX },
    trustProxy: config.TRUST_PROXY,
    serverTimeouts: {
      headersTimeoutMs: config.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    },
    codec: { codec: payloads.codec, corsOrigins: config.CODEC_CORS_ORIGINS },
    version,
    audit,
    auditReader: audit,
    systemStatus,
    readiness: {
      temporal: async () => {
        await temporal.workflowService.getSystemInfo({});
        return { ok: true };
      },
      postgres: async () => {
        await pool.query('SELECT 1');
        return { ok: true };
      },
      limiter: async () => {
        if (!redis) return { ok: true, mode: 'in-process', detail: 'REDIS_URL unset: limits hold for this process only (single-process mode)' };
        await redis.ping();
        return { ok: true, mode: 'redis' };
      },
      // Runs only make progress while a worker polls the task queue: not ready without one, unless configured to
      // report it only (READY_REQUIRE_WORKERS=false).
      workers: config.READY_REQUIRE_WORKERS
        ? workersPollCheck(observer, config.READY_WORKER_POLL_MAX_AGE_S)
        : advisory(workersPollCheck(observer, config.READY_WORKER_POLL_MAX_AGE_S)),
    },
  });
  const port = await app.start(config.PORT, config.HOST).catch((err: Error) => {
    throw new Error(`cannot listen on HOST=${config.HOST} PORT=${config.PORT}: ${err.message}`);
  });
  logger.info({ port, host: config.HOST, pipelines: pipelines.list().map((p) => p.definition.name), limiter: limiter.mode }, 'facade listening');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    // In-flight requests get a bounded drain; a connection that never finishes must not keep the process alive.
    setTimeout(() => {
      logger.warn('drain did not finish in time; exiting');
      process.exit(1);
    }, config.SHUTDOWN_READY_DELAY_MS + 20_000).unref();
    if (config.SHUTDOWN_READY_DELAY_MS > 0) {
      // Load balancers and Kubernetes endpoints learn from /ready that this replica is leaving while it still serves.
      logger.info({ signal, delayMs: config.SHUTDOWN_READY_DELAY_MS }, 'shutting down: /ready reports draining, still serving');
      app.leaveRotation();
      await new Promise((resolve) => setTimeout(resolve, config.SHUTDOWN_READY_DELAY_MS));
    }
    logger.info({ signal }, 'shutting down: draining in-flight requests');
    await app.stop();
    systemStatus.stop();
    await temporal.connection.close();
    redis?.disconnect();
    await pool.end();
    await tracing.shutdown();
    logger.info('facade stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  if (config.AGENTRY_EXIT_WITH_PARENT) exitWithParent(() => void stop('parent exited'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err) => {
  process.stderr.write(`agentry facade: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
