import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client, WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { ENCODING_ENCRYPTED } from '../../src/codec';
import { createAuditStore } from '../../src/audit';
import { SA_STATUS, progressQuery, type PipelineRunResult } from '../../src/contracts';
import { startPipelineRun, usePipelineEnv } from '../helpers/pipeline-worker';
import { TEST_PIPELINES } from '../helpers/test-agents';

const ROOT = resolve(__dirname, '..', '..');

const taskQueue = 'wf-test-pipeline';
const ctx = usePipelineEnv(taskQueue);

let counter = 0;
const start = (yaml: string, input: Record<string, unknown>) =>
  startPipelineRun(ctx.env.client, ctx.pw.agents, taskQueue, yaml, input, `run-${++counter}`);

const auditTypes = async (runId: string) =>
  (await createAuditStore(ctx.db.pool).listByRun('wf-tests', runId)).map((e) => `${e.type}${e.stage ? `:${e.stage}` : ''}`);

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
    // A confident classification needs no human review.
    ['review', 'skipped'],
    ['route', 'completed'],
    ['reply', 'completed'],
    ['draft', 'completed'],
  ]);
  const redacted = result.outputs.redact as { text: string; counts: Record<string, number> };
  expect(redacted.text).not.toContain('jo@example.com');
  expect(redacted.counts.EMAIL_ADDRESS).toBe(1);
  expect(typeof (result.outputs.classify as { label: string }).label).toBe('string');
  expect((result.outputs.reply as { reply: string }).reply.length).toBeGreaterThan(0);
  // The draft comes from the embedded local model, and its usage lands in the run result.
  const draft = result.outputs.draft as { text: string; usage: { promptTokens: number; completionTokens: number; totalTokens: number } };
  expect(draft.text.length).toBeGreaterThan(0);
  expect(draft.usage.promptTokens).toBeGreaterThan(0);
  expect(draft.usage.totalTokens).toBe(draft.usage.promptTokens + draft.usage.completionTokens);
  // The stage reports what it used, the run sums it, and the audit trail keeps both.
  const draftState = result.stages.find((s) => s.name === 'draft');
  expect(draftState?.usage).toEqual({
    model: expect.any(String),
    promptTokens: draft.usage.promptTokens,
    completionTokens: draft.usage.completionTokens,
    totalTokens: draft.usage.totalTokens,
    costUsd: 0,
  });
  expect(result.stages.filter((s) => s.usage).map((s) => s.name)).toEqual(['draft']);
  expect(result.spend).toEqual({ tokens: draft.usage.totalTokens, costUsd: 0 });
  const draftEvent = (await createAuditStore(ctx.db.pool).listByRun('wf-tests', runId)).find((e) => e.type === 'stage.completed' && e.stage === 'draft');
  expect(draftEvent?.data).toMatchObject({ usage: { totalTokens: draft.usage.totalTokens, costUsd: 0 }, runSpend: { tokens: draft.usage.totalTokens, costUsd: 0 } });

  expect(await auditTypes(runId)).toEqual([
    'run.started',
    'stage.completed:redact',
    'stage.completed:classify',
    'stage.skipped:review',
    'stage.completed:route',
    'stage.completed:reply',
    'stage.completed:draft',
    'run.completed',
  ]);
  const desc = await handle.describe();
  expect(desc.typedSearchAttributes.get(SA_STATUS)).toBe('completed');
  expect(await handle.query(progressQuery)).toMatchObject({ status: 'completed' });
});

const flakyYaml = TEST_PIPELINES.flaky;

test('a transient agent failure is retried and the attempts are recorded', async () => {
  const { handle, runId } = await start(flakyYaml, { text: 'hello' });
  const result = (await handle.result()) as PipelineRunResult;
  expect(result.outputs.echo).toEqual({ echoed: 'hello', attempt: 3 });
  expect(result.stages[0].attempts).toBe(3);
  const events = await createAuditStore(ctx.db.pool).listByRun('wf-tests', runId);
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
    TEST_PIPELINES.liar,
    { text: 'x' },
  );
  const err = (await handle.result().catch((e: unknown) => e)) as WorkflowFailedError;
  const cause = err.cause as ApplicationFailure;
  expect(cause.type).toBe('AgentOutputInvalid');
  const details = cause.details?.[0] as PipelineRunResult;
  expect(details.stages[0]).toMatchObject({ status: 'failed', attempts: 1 });
});

test('failure messages are stored encrypted: only a reader with the codec sees them', async () => {
  const { handle } = await start(TEST_PIPELINES.liar, { text: 'x' });
  const message = ((await handle.result().catch((e: unknown) => e)) as WorkflowFailedError).cause!.message;
  expect(message).toMatch(/stage "lie" failed/);

  // A client without the codec sees what Temporal stores (and the Temporal CLI and Web UI show without it).
  const raw = new Client({ connection: ctx.env.connection, namespace: ctx.env.namespace ?? 'default' });
  const history = await raw.workflow.getHandle(handle.workflowId).fetchHistory();
  const failures = (history.events ?? []).flatMap((e) =>
    [e.activityTaskFailedEventAttributes?.failure, e.workflowExecutionFailedEventAttributes?.failure].filter((f) => f !== undefined && f !== null),
  );
  expect(failures.length).toBeGreaterThanOrEqual(2);
  for (const f of failures) {
    expect(f.message).toBe('Encoded failure');
    expect(f.stackTrace).toBe('');
    expect(Buffer.from(f.encodedAttributes!.metadata!.encoding!).toString()).toBe(ENCODING_ENCRYPTED);
  }
  expect(Buffer.from(temporal.api.history.v1.History.encode(history).finish()).includes('stage "lie" failed')).toBe(false);
});

test('stages whose when-condition is false are skipped and audited as skipped', async () => {
  const { handle, runId } = await start(
    TEST_PIPELINES.conditional,
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
