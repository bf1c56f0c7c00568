/**
 * The bench's bare worker process: hosts `bareTriage` on its own task queue with the project's `runAgent` activity
 * over the same built-in agents as the real worker (the classifier trained from the same file). It writes no audit
 * events and screens nothing. Started and stopped by `npm run bench`.
 */
import { Worker } from '@temporalio/worker';
import { Pool } from 'pg';
import { createActivities } from '../activities';
import { createAgentRegistry, createBuiltinAgents } from '../src/agents';
import { createAuditStore } from '../src/audit';
import { payloadCodecFromConfig } from '../src/codec';
import { loadConfig, requireKeys } from '../src/config';
import { exitWithParent } from '../src/runtime/exit-with-parent';
import { createInputChecker } from '../src/security';
import { createClaimStore } from '../src/storage/claim-store';
import { connectWorker, dataConverterFor } from '../src/temporal/connection';
import { createLogger, createRegistry, createRunMetrics } from '../src/telemetry';
import { BARE_TASK_QUEUE } from './bare.workflow';

async function main(): Promise<void> {
  const config = requireKeys(loadConfig(), ['DATABASE_URL']);
  const logger = createLogger({ level: config.LOG_LEVEL, name: 'agentry-bench-bare-worker' });
  // The same codec as the real worker, so both sides of the comparison pay for payload encryption alike.
  const payloads = payloadCodecFromConfig(config);
  const pool = new Pool({ connectionString: config.DATABASE_URL, max: 2 });
  pool.on('error', (err) => logger.warn({ err: err.message }, 'idle database connection failed'));
  const agents = createAgentRegistry(createBuiltinAgents({ trainFile: config.CLASSIFIER_TRAIN_FILE, cacheDir: config.modelCacheDir }));
  for (const agent of agents.list()) await agent.health?.();
  // Only runAgent is registered; the others exist because the factory builds the whole set. The claim store
  // touches the database only for outputs above the inline limit, which these agents never produce.
  const { runAgent } = createActivities({
    agents,
    audit: createAuditStore(pool),
    checker: createInputChecker(),
    metrics: createRunMetrics(createRegistry('bench-bare-worker')),
    logger,
    claims: createClaimStore(pool, { codec: payloads.codec }),
    inlineMaxBytes: config.STAGE_OUTPUT_INLINE_MAX_BYTES,
  });
  const connection = await connectWorker({ address: config.TEMPORAL_ADDRESS, namespace: config.TEMPORAL_NAMESPACE });
  const worker = await Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: BARE_TASK_QUEUE,
    workflowsPath: require.resolve('./bare.workflow'),
    dataConverter: dataConverterFor(payloads.codec),
    activities: { runAgent },
    shutdownGraceTime: config.WORKER_SHUTDOWN_GRACE_MS,
  });
  const stop = () => worker.shutdown();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  if (config.AGENTRY_EXIT_WITH_PARENT) exitWithParent(stop);
  // The bench waits for this line before it starts measuring.
  process.stdout.write('bare worker ready\n');
  await worker.run();
  await connection.close();
  await pool.end();
}

main().catch((err) => {
  process.stderr.write(`agentry bench bare worker: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
