import { Redis } from 'ioredis';
import { Pool } from 'pg';
import { createBuiltinAgents } from './agents';
import { createAuditStore, migrate } from './audit';
import { loadConfig, requireKeys } from './config';
import { createApp, createAuthenticator, createRequestLimiter } from './facade';
import { loadPipelineCatalog } from './pipelines/pipeline-catalog';
import { createInputChecker } from './security';
import { connectClient } from './temporal/connection';
import { createHttpMetrics, createLogger, createRegistry } from './telemetry';
import { Gauge } from 'prom-client';
import { PIPELINE_WORKFLOW } from './contracts';
import { version } from '../package.json';

/** The facade process: authenticates callers and starts, reads and lists runs. Holds no state of its own. */
async function main(): Promise<void> {
  const config = requireKeys(loadConfig(), ['DATABASE_URL', 'JWT_SECRET']);
  const logger = createLogger({ level: config.LOG_LEVEL, name: 'agentry-facade' });
  const registry = createRegistry('facade');
  const httpMetrics = createHttpMetrics(registry);

  const agents = createBuiltinAgents({ trainFile: config.CLASSIFIER_TRAIN_FILE, cacheDir: config.modelCacheDir });
  const pipelines = await loadPipelineCatalog(config.PIPELINES_DIR, agents);

  const pool = new Pool({ connectionString: config.DATABASE_URL, max: config.DATABASE_POOL_MAX });
  pool.on('error', (err) => logger.warn({ err: err.message }, 'idle database connection failed'));
  await migrate(config.DATABASE_URL);

  const redis = config.REDIS_URL
    ? new Redis(config.REDIS_URL, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false })
    : undefined;
  redis?.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
  const limiter = createRequestLimiter({ redis, requestsPerMinute: config.RATE_LIMIT_PER_MINUTE, metrics: httpMetrics });

  const temporal = await connectClient({ address: config.TEMPORAL_ADDRESS, namespace: config.TEMPORAL_NAMESPACE });

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
      { secret: config.JWT_SECRET, issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE, clockToleranceS: config.JWT_CLOCK_TOLERANCE_S },
      httpMetrics,
    ),
    limiter,
    bodyLimitBytes: config.BODY_LIMIT_BYTES,
    version,
    audit: createAuditStore(pool),
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
    },
  });
  const port = await app.start(config.PORT, config.HOST);
  logger.info({ port, host: config.HOST, pipelines: pipelines.list().map((p) => p.definition.name), limiter: limiter.mode }, 'facade listening');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: draining in-flight requests');
    await app.stop();
    await temporal.connection.close();
    redis?.disconnect();
    await pool.end();
    logger.info('facade stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err) => {
  process.stderr.write(`agentry facade: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
