import { readFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Runtime, Worker, DefaultLogger } from '@temporalio/worker';
import { ApplicationFailure } from '@temporalio/common';
import { Registry } from 'prom-client';
import { z } from 'zod';
import { createActivities } from '../../activities';
import { createAgentRegistry, createBuiltinAgents, type Agent } from '../../src/agents';
import { createAuditStore } from '../../src/audit';
import { PIPELINE_WORKFLOW, SA_PIPELINE, SA_STATUS, SA_TENANT, progressQuery, type PipelineRunInput, type PipelineRunResult } from '../../src/contracts';
import { definitionHash } from '../../src/pipelines/definition-hash';
import { agentCatalogOf } from '../../src/pipelines/pipeline-catalog';
import { parsePipelineText } from '../../src/pipelines/pipeline-loader';
import { createInputChecker } from '../../src/security';
import { createLogger, createRunMetrics } from '../../src/telemetry';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres';
import { startTemporal, workflowBundle } from '../helpers/temporal';

const ROOT = resolve(__dirname, '..', '..');

/** Fails the first `failures` attempts of each stage with a transient error, then echoes. */
function flakyAgent(failures: number): Agent {
  return {
    name: 'flaky',
    version: '1',
    description: 'fails transiently before succeeding',
    input: z.object({ text: z.string() }),
    output: z.object({ echoed: z.string(), attempt: z.number() }),
    async run(input, ctx) {
      if (ctx.attempt <= failures) throw new Error(`transient failure ${ctx.attempt}`);
      return { echoed: input.text, attempt: ctx.attempt };
    },
  };
}

/** Breaks its own output contract: a non-retryable failure. */
const liarAgent: Agent = {
  name: 'liar',
  version: '1',
  description: 'returns output that does not match its schema',
  input: z.object({ text: z.string() }),
  output: z.object({ count: z.number() }),
  async run() {
    return { count: 'many' } as unknown as { count: number };
  },
};

let env: TestWorkflowEnvironment;
let db: TestDatabase;
let worker: Worker;
let running: Promise<void>;
let agents: Agent[];
const taskQueue = 'wf-test-pipeline';
const metricsRegistry = new Registry();

beforeAll(async () => {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  [env, db] = await Promise.all([startTemporal(), createTestDatabase()]);
  agents = [
    ...createBuiltinAgents({ trainFile: join(ROOT, 'src/demo/train.csv'), cacheDir: mkdtempSync(join(tmpdir(), 'agentry-models-')) }),
    flakyAgent(2),
    liarAgent,
  ];
  const registry = createAgentRegistry(agents);
  worker = await Worker.create({
    connection: env.nativeConnection,
    namespace: env.namespace ?? 'default',
    taskQueue,
    workflowBundle: await workflowBundle(),
    activities: createActivities({
      agents: registry,
      audit: createAuditStore(db.pool),
      checker: createInputChecker(),
      metrics: createRunMetrics(metricsRegistry),
      logger: createLogger({ level: 'silent', name: 'test' }),
    }),
  });
  running = worker.run();
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await db?.drop();
  await env?.teardown();
});

let counter = 0;
async function start(yaml: string, input: Record<string, unknown>) {
  const definition = parsePipelineText(yaml, 'test.yaml', agentCatalogOf(agents));
  const runId = `${definition.name}/run-${++counter}`;
  const args: PipelineRunInput = {
    runId,
    definition,
    definitionHash: definitionHash(definition),
    input,
    principal: { subject: 'alice', tenant: 'wf-tests', roles: ['operator'] },
    request: { requestId: `req-${counter}` },
  };
  const handle = await env.client.workflow.start(PIPELINE_WORKFLOW, {
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

const auditTypes = async (runId: string) =>
  (await createAuditStore(db.pool).listByRun('wf-tests', runId)).map((e) => `${e.type}${e.stage ? `:${e.stage}` : ''}`);

test('support-triage redacts, classifies, routes and replies, auditing every step', async () => {
  const yaml = readFileSync(join(ROOT, 'src/pipelines/definitions/support-triage.yaml'), 'utf8');
  const { handle, runId } = await start(yaml, {
    text: 'My card payment was declined, please call me on +1 415 555 0100 or mail jo@example.com',
    ticketId: 'T-1',
  });
  const result = (await handle.result()) as PipelineRunResult;
  expect(result.status).toBe('completed');
  expect(result.stages.map((s) => [s.name, s.status])).toEqual([
    ['redact', 'completed'],
    ['classify', 'completed'],
    ['route', 'completed'],
    ['reply', 'completed'],
  ]);
  const redacted = result.outputs.redact as { text: string; counts: Record<string, number> };
  expect(redacted.text).not.toContain('jo@example.com');
  expect(redacted.counts.EMAIL_ADDRESS).toBe(1);
  expect(typeof (result.outputs.classify as { label: string }).label).toBe('string');
  expect((result.outputs.reply as { reply: string }).reply.length).toBeGreaterThan(0);

  expect(await auditTypes(runId)).toEqual([
    'run.started',
    'stage.completed:redact',
    'stage.completed:classify',
    'stage.completed:route',
    'stage.completed:reply',
    'run.completed',
  ]);
  const desc = await handle.describe();
  expect(desc.typedSearchAttributes.get(SA_STATUS)).toBe('completed');
  expect(await handle.query(progressQuery)).toMatchObject({ status: 'completed' });
});

const flakyYaml = `
name: flaky-pipeline
version: 1
description: retries a transient failure
input: { type: object, required: [text], properties: { text: { type: string } } }
stages:
  - name: echo
    agent: flaky
    with: { text: "\${input.text}" }
    retry: { maximumAttempts: 3, initialInterval: 100ms }
`;

test('a transient agent failure is retried and the attempts are recorded', async () => {
  const { handle, runId } = await start(flakyYaml, { text: 'hello' });
  const result = (await handle.result()) as PipelineRunResult;
  expect(result.outputs.echo).toEqual({ echoed: 'hello', attempt: 3 });
  expect(result.stages[0].attempts).toBe(3);
  const events = await createAuditStore(db.pool).listByRun('wf-tests', runId);
  expect(events.find((e) => e.type === 'stage.completed')?.data).toMatchObject({ attempts: 3 });
});

test('a stage that fails after its retries fails the run with its failure type', async () => {
  const { handle, runId } = await start(flakyYaml.replace('maximumAttempts: 3', 'maximumAttempts: 2'), { text: 'hello' });
  const err = await handle.result().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
  expect(cause.type).toBe('AgentFailed');
  expect(cause.message).toMatch(/stage "echo" failed/);
  expect(await auditTypes(runId)).toEqual(['run.started', 'stage.failed:echo', 'run.failed']);
  expect((await handle.describe()).typedSearchAttributes.get(SA_STATUS)).toBe('failed');
});

test('an output that breaks the agent contract fails at once, without retries', async () => {
  const { handle } = await start(
    `
name: liar-pipeline
version: 1
description: contract violation
input: { type: object, properties: { text: { type: string } } }
stages:
  - name: lie
    agent: liar
    with: { text: "\${input.text}" }
    retry: { maximumAttempts: 5, initialInterval: 1s }
`,
    { text: 'x' },
  );
  const err = (await handle.result().catch((e: unknown) => e)) as WorkflowFailedError;
  const cause = err.cause as ApplicationFailure;
  expect(cause.type).toBe('AgentOutputInvalid');
  const details = cause.details?.[0] as PipelineRunResult;
  expect(details.stages[0]).toMatchObject({ status: 'failed', attempts: 1 });
});

test('stages whose when-condition is false are skipped and audited as skipped', async () => {
  const { handle, runId } = await start(
    `
name: conditional
version: 1
description: skip on condition
input: { type: object, required: [text], properties: { text: { type: string }, urgent: { type: boolean } } }
stages:
  - name: first
    agent: flaky
    with: { text: "\${input.text}" }
    retry: { maximumAttempts: 3, initialInterval: 100ms }
  - name: urgent-only
    agent: pii-redact
    when: { ref: input.urgent, eq: true }
    with: { text: "\${input.text}" }
`,
    { text: 'hi', urgent: false },
  );
  const result = (await handle.result()) as PipelineRunResult;
  expect(result.stages.map((s) => s.status)).toEqual(['completed', 'skipped']);
  expect(result.outputs['urgent-only']).toBeUndefined();
  expect(await auditTypes(runId)).toContain('stage.skipped:urgent-only');
});

test('input that breaks the definition schema is rejected by the security stage', async () => {
  const { handle, runId } = await start(flakyYaml, { text: 42 });
  const err = (await handle.result().catch((e: unknown) => e)) as WorkflowFailedError;
  expect((err.cause as ApplicationFailure).type).toBe('InputRejected');
  expect((err.cause as ApplicationFailure).message).toMatch(/\/text/);
  expect(await auditTypes(runId)).toEqual(['run.started', 'run.failed']);
});
