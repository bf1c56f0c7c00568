import { Worker } from '@temporalio/worker';
import { Pool } from 'pg';
import { createActivities } from '../activities';
import { createAgentRegistry, createBuiltinAgents } from './agents';
import { createAuditStore, migrate } from './audit';
import { loadConfig, requireKeys } from './config';
import { createInputChecker } from './security';
import { createClaimStore } from './storage/claim-store';
import { connectWorker } from './temporal/connection';
import { createLogger, createRegistry, createRunMetrics, startMetricsServer } from './telemetry';

/**
 * The worker process: hosts the pipeline workflow and the agent, security and audit activities on one task
 * queue. Stateless; run as many as the backlog needs.
 */
async function main(): Promise<void> {
  const config = requireKeys(loadConfig(), ['DATABASE_URL']);
  const logger = createLogger({ level: config.LOG_LEVEL, name: 'agentry-worker' });
  const registry = createRegistry('worker');
  const metrics = createRunMetrics(registry);

  const pool = new Pool({ connectionString: config.DATABASE_URL, max: config.DATABASE_POOL_MAX });
  pool.on('error', (err) => logger.warn({ err: err.message }, 'idle database connection failed'));
  const applied = await migrate(config.DATABASE_URL);
  if (applied.length) logger.info({ applied }, 'migrations applied');

  const agents = createAgentRegistry(createBuiltinAgents({ trainFile: config.CLASSIFIER_TRAIN_FILE, cacheDir: config.modelCacheDir }));
  // Train or load models before taking work, so the first run does not pay for it inside an activity timeout.
  for (const agent of agents.list()) await agent.health?.();

  const metricsServer = await startMetricsServer(registry, config.WORKER_METRICS_HOST, config.WORKER_METRICS_PORT);
  const connection = await connectWorker({ address: config.TEMPORAL_ADDRESS, namespace: config.TEMPORAL_NAMESPACE });
  const worker = await Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    workflowsPath: require.resolve('../workflows'),
    activities: createActivities({
      agents,
      audit: createAuditStore(pool),
      checker: createInputChecker(),
      metrics,
      logger,
      claims: createClaimStore(pool),
      inlineMaxBytes: config.STAGE_OUTPUT_INLINE_MAX_BYTES,
    }),
    shutdownGraceTime: config.WORKER_SHUTDOWN_GRACE_MS,
  });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing in-flight activities');
    worker.shutdown();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  logger.info(
    { taskQueue: config.TEMPORAL_TASK_QUEUE, temporal: config.TEMPORAL_ADDRESS, metricsPort: metricsServer.port, agents: agents.list().map((a) => a.name) },
    'worker ready',
  );
  await worker.run();
  await connection.close();
  await pool.end();
  await metricsServer.close();
  logger.info('worker stopped');
}

main().catch((err) => {
  // Start-up failures (bad config, unreachable services) are reported plainly, without a stack trace.
  process.stderr.write(`agentry worker: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
