// First: tracing instruments http and pg as they load, so it must start before anything imports them.
import { tracing } from './telemetry/worker-tracing';
import { Worker } from '@temporalio/worker';
import { Pool } from 'pg';
import { exitWithParent } from './runtime/exit-with-parent';
import { createActivities } from '../activities';
import { createAgentRegistry, createBuiltinAgents, createLlmMetrics, createPgUsageStore, llmAgentOptionsFromConfig } from './agents';
import { createAuditStore, migrate, sealKeysFromConfig } from './audit';
import { createBackupService, ensureBackupSchedule } from './backup';
import { payloadCodecFromConfig } from './codec';
import { loadConfig, requireKeys, requirePayloadKeys } from './config';
import { createInputChecker, createRunSlots } from './security';
import { createLimitsRedis } from './security/redis-client';
import { createClaimStore } from './storage/claim-store';
import { connectClient, connectWorker, dataConverterFor } from './temporal/connection';
import { createLogger, createRegistry, createRunMetrics, startMetricsServer, workerTracingOptions, installSdkMetrics, startAgentHealthChecks } from './telemetry';

/**
 * The worker process: hosts the pipeline and backup workflows and the agent, security, audit and backup activities
 * on one task queue, and registers the backup Schedule. Stateless; run as many as the backlog needs.
 */
async function main(): Promise<void> {
  const config = requirePayloadKeys(requireKeys(loadConfig(), ['DATABASE_URL']));
  const logger = createLogger({ level: config.LOG_LEVEL, name: 'agentry-worker' });
  // Decrypts workflow and activity inputs, encrypts what the worker hands back to Temporal (results, commands).
  const payloads = payloadCodecFromConfig(config);
  if (payloads.codec.encrypts) logger.info({ keySource: payloads.keySource, keyFile: payloads.keyFile, activeKeyId: payloads.codec.activeKeyId }, 'payloads are encrypted');
  else logger.warn({ keySource: payloads.keySource }, 'PAYLOAD_ENCRYPTION is off: new payloads are stored in plaintext');
  const registry = createRegistry('worker');
  const metrics = createRunMetrics(registry);

  const pool = new Pool({ connectionString: config.DATABASE_URL, max: config.DATABASE_POOL_MAX });
  pool.on('error', (err) => logger.warn({ err: err.message }, 'idle database connection failed'));
  const applied = await migrate(config.DATABASE_URL);
  if (applied.length) logger.info({ applied }, 'migrations applied');

  // Addresses, user agents, comments and reasons in audit events are sealed with AUDIT_SEAL_KEYS (or the dev key file).
  const seal = sealKeysFromConfig(config);
  logger.info({ keySource: seal.source, keyFile: seal.keyFile, activeKeyId: seal.keys.activeKeyId }, 'audit fields are sealed');
  const audit = createAuditStore(pool, { sealKeys: seal.keys });
  const backups = createBackupService({
    pool,
    databaseUrl: config.DATABASE_URL,
    audit,
    dir: config.backupDir,
    keep: config.BACKUP_KEEP,
    pipelinesDir: config.PIPELINES_DIR,
    config,
    warn: (line) => logger.warn(line),
  });

  // The llm agent's budgets are kept in PostgreSQL, so they hold across every worker; without LLM_BASE_URL it runs
  // the embedded local model, started on first use.
  const llm = llmAgentOptionsFromConfig(config, { usage: createPgUsageStore(pool), metrics: createLlmMetrics(registry) });
  const agents = createAgentRegistry(createBuiltinAgents({ trainFile: config.CLASSIFIER_TRAIN_FILE, cacheDir: config.modelCacheDir, llm }));
  // Train or load models before taking work, so the first run does not pay for it inside an activity timeout.
  for (const agent of agents.list()) await agent.health?.();
  // From here on each agent's health() runs every AGENT_HEALTH_INTERVAL_MS, exported as agent_health{agent_name}.
  const agentHealth = startAgentHealthChecks({
    agents: agents.list(),
    registry,
    intervalMs: config.AGENT_HEALTH_INTERVAL_MS,
    timeoutMs: config.AGENT_HEALTH_TIMEOUT_MS,
    onChange: (agent, healthy, detail) => (healthy ? logger.info({ agent }, 'agent healthy') : logger.warn({ agent, err: detail }, 'agent health check failed')),
  });
  void agentHealth.checkNow();

  const metricsServer = await startMetricsServer(registry, config.WORKER_METRICS_HOST, config.WORKER_METRICS_PORT);
  // Before the first connection to Temporal: the SDK Runtime takes its telemetry settings once, when it is created.
  const sdkMetrics = installSdkMetrics(config.WORKER_METRICS_HOST, config.WORKER_SDK_METRICS_PORT);
  const connection = await connectWorker({ address: config.TEMPORAL_ADDRESS, namespace: config.TEMPORAL_NAMESPACE });
  // Runs free their concurrency slot (taken by the facade) when they end; without Redis the facade does it itself.
  const redis = config.REDIS_URL ? createLimitsRedis(config.REDIS_URL) : undefined;
  redis?.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
  const worker = await Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    workflowsPath: require.resolve('../workflows'),
    dataConverter: dataConverterFor(payloads.codec),
    activities: createActivities({
      agents,
      audit,
      backups,
      checker: createInputChecker(),
      metrics,
      logger,
      claims: createClaimStore(pool, { codec: payloads.codec }),
      inlineMaxBytes: config.STAGE_OUTPUT_INLINE_MAX_BYTES,
      slots: redis ? createRunSlots(redis) : undefined,
    }),
    shutdownGraceTime: config.WORKER_SHUTDOWN_GRACE_MS,
    maxCachedWorkflows: config.WORKER_MAX_CACHED_WORKFLOWS,
    // Tracing interceptors and the workflow span sink, installed whether or not spans are exported (determinism).
    ...workerTracingOptions(tracing),
  });

  // The backup Schedule: registered (or brought in line with BACKUP_SCHEDULE) by every worker at start, idempotently.
  if (config.BACKUP_SCHEDULE !== 'off') {
    const client = await connectClient({ address: config.TEMPORAL_ADDRESS, namespace: config.TEMPORAL_NAMESPACE, dataConverter: dataConverterFor(payloads.codec) });
    try {
      const schedule = await ensureBackupSchedule(client, { cron: config.BACKUP_SCHEDULE, taskQueue: config.TEMPORAL_TASK_QUEUE });
      logger.info({ ...schedule, cron: config.BACKUP_SCHEDULE, dir: config.backupDir, format: backups.databaseFormat }, 'backup schedule registered');
    } catch (err) {
      // Temporal refuses a cron it cannot parse: name the key. Anything else must not stop the worker taking runs.
      const message = err instanceof Error ? err.message : String(err);
      if (/invalid|cron|parse/i.test(message)) throw new Error(`BACKUP_SCHEDULE "${config.BACKUP_SCHEDULE}" was refused by Temporal: ${message}`);
      logger.warn({ err: message }, 'could not register the backup schedule; backups will not run until a worker does');
    } finally {
      await client.connection.close();
    }
  }

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing in-flight activities');
    agentHealth.stop();
    worker.shutdown();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  if (config.AGENTRY_EXIT_WITH_PARENT) exitWithParent(() => stop('parent exited'));
  process.on('SIGINT', () => stop('SIGINT'));

  logger.info(
    { taskQueue: config.TEMPORAL_TASK_QUEUE, temporal: config.TEMPORAL_ADDRESS, metricsPort: metricsServer.port, sdkMetrics: sdkMetrics ?? 'off', agents: agents.list().map((a) => a.name) },
    'worker ready',
  );
  await worker.run();
  await connection.close();
  redis?.disconnect();
  await pool.end();
  await metricsServer.close();
  await tracing.shutdown();
  logger.info('worker stopped');
}

main().catch((err) => {
  // Start-up failures (bad config, unreachable services) are reported plainly, without a stack trace.
  process.stderr.write(`agentry worker: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
