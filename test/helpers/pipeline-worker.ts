import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import type { Pool } from 'pg';
import { Registry } from 'prom-client';
import { createActivities, type ActivityDeps } from '../../activities';
import { createAgentRegistry, createBuiltinAgents, type Agent } from '../../src/agents';
import { createAuditStore } from '../../src/audit';
import { PIPELINE_WORKFLOW, SA_PIPELINE, SA_STATUS, SA_TENANT, type PipelineRunInput } from '../../src/contracts';
import { definitionHash } from '../../src/pipelines/definition-hash';
import { agentCatalogOf } from '../../src/pipelines/pipeline-catalog';
import { parsePipelineText } from '../../src/pipelines/pipeline-loader';
import { createInputChecker } from '../../src/security';
import { createClaimStore } from '../../src/storage/claim-store';
import { createLogger, createRunMetrics } from '../../src/telemetry';
import { testDataConverter, testPayloadCodec } from './codec';
import { createTestDatabase, type TestDatabase } from './postgres';
import { startTemporal, workflowBundle } from './temporal';
import { bigmouthAgent, flakyAgent, liarAgent, measureAgent, sleeperAgent } from './test-agents';

const ROOT = resolve(__dirname, '..', '..');
/** Small, so tests can show claim checks without megabytes of data. */
export const INLINE_MAX_BYTES = 64 * 1024;

export interface PipelineWorker {
  agents: Agent[];
  worker: Worker;
  stop(): Promise<void>;
}

/**
 * A worker in the test process hosting the real pipeline workflow and real activities (built-in agents plus
 * the test agents), writing the audit trail to `pool`. `extra` adds or replaces activity dependencies (backups).
 */
export async function startPipelineWorker(
  env: TestWorkflowEnvironment,
  pool: Pool,
  taskQueue: string,
  extra: Partial<ActivityDeps> = {},
): Promise<PipelineWorker> {
  const agents = [
    ...createBuiltinAgents({ trainFile: join(ROOT, 'src/demo/train.csv'), cacheDir: mkdtempSync(join(tmpdir(), 'agentry-models-')) }),
    flakyAgent(2),
    liarAgent,
    sleeperAgent,
    bigmouthAgent,
    measureAgent,
  ];
  const worker = await Worker.create({
    connection: env.nativeConnection,
    namespace: env.namespace ?? 'default',
    taskQueue,
    workflowBundle: await workflowBundle(),
    dataConverter: testDataConverter,
    activities: createActivities({
      agents: createAgentRegistry(agents),
      audit: createAuditStore(pool),
      checker: createInputChecker(),
      metrics: createRunMetrics(new Registry()),
      logger: createLogger({ level: 'silent', name: 'test' }),
      claims: createClaimStore(pool, { codec: testPayloadCodec }),
      inlineMaxBytes: INLINE_MAX_BYTES,
      ...extra,
    }),
  });
  const running = worker.run();
  return {
    agents,
    worker,
    async stop() {
      worker.shutdown();
      await running;
    },
  };
}

/** Starts a pipeline run from definition text, as the facade would (tenant `wf-tests`, subject `alice`). */
export async function startPipelineRun(
  client: Client,
  agents: Agent[],
  taskQueue: string,
  yaml: string,
  input: Record<string, unknown>,
  id: string,
  principal: PipelineRunInput['principal'] = { subject: 'alice', tenant: 'wf-tests', roles: ['operator'] },
) {
  const definition = parsePipelineText(yaml, 'test.yaml', agentCatalogOf(agents));
  const runId = `${definition.name}/${id}`;
  const args: PipelineRunInput = {
    runId,
    definition,
    definitionHash: definitionHash(definition),
    input,
    principal,
    request: { requestId: `req-${id}` },
  };
  const handle = await client.workflow.start(PIPELINE_WORKFLOW, {
    taskQueue,
    workflowId: `wf-tests/${runId}`,
    args: [args],
    typedSearchAttributes: [
      { key: SA_TENANT, value: 'wf-tests' },
      { key: SA_PIPELINE, value: definition.name },
      { key: SA_STATUS, value: 'running' },
    ],
  });
  return { handle, runId };
}

/** The real services one workflow test file runs against: a dev server, a database of its own, a pipeline worker. */
export interface PipelineEnv {
  env: TestWorkflowEnvironment;
  db: TestDatabase;
  pw: PipelineWorker;
}

/**
 * Starts a dev server, a test database and a pipeline worker on `taskQueue` before the file's tests (beforeAll) and
 * stops them after (afterAll). The fields are set once beforeAll has run.
 */
export function usePipelineEnv(taskQueue: string): PipelineEnv {
  const ctx = {} as PipelineEnv;
  beforeAll(async () => {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
    [ctx.env, ctx.db] = await Promise.all([startTemporal(), createTestDatabase()]);
    ctx.pw = await startPipelineWorker(ctx.env, ctx.db.pool, taskQueue);
  });
  afterAll(async () => {
    await ctx.pw?.stop();
    await ctx.db?.drop();
    await ctx.env?.teardown();
  });
  return ctx;
}
