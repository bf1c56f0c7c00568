/**
 * The `llm` agent with the real embedded model: SmolLM2-135M-Instruct (installed by `npm run setup`, which
 * `npm test` runs first) served by `agentry llm serve` on loopback, budgets in a real PostgreSQL. Completions are
 * kept short so the file runs in well under a minute on two cores.
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { Registry } from 'prom-client';
import {
  createLlmAgent,
  createLlmMetrics,
  createPgUsageStore,
  LlmBudgetExceededError,
  type LlmAgentOptions,
} from '../../src/agents';
import { estimatePromptTokens, utcDay } from '../../src/agents/llm';
import { LOCAL_MODEL_NAME, spawnLocalServer, type LocalServerProcess } from '../../src/llm';
import { agentActivity } from '../helpers/llm';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres';

let db: TestDatabase;
let server: LocalServerProcess;
let runs = 0;
/** Chat completion requests the agents sent, by tenant. */
const sent: Record<string, { messages: { role: string; content: string }[] }[]> = {};

beforeAll(async () => {
  [db, server] = await Promise.all([
    createTestDatabase('agentry_llm'),
    // One sequence and one thread: the cancellation test shows the sequence is freed, and two cores stay usable.
    spawnLocalServer({ port: 0, env: { ...process.env, LLM_LOCAL_PARALLEL: '1', LLM_LOCAL_THREADS: '1', LOG_LEVEL: 'warn' } }),
  ]);
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

/** Records each request body per tenant (read from the Authorization-free JSON the client sends). */
function recordingFetch(tenant: string): typeof fetch {
  return (url, init) => {
    (sent[tenant] ??= []).push(JSON.parse(String(init?.body)));
    return fetch(url, init);
  };
}

function agentFor(tenant: string, opts: Partial<LlmAgentOptions> = {}) {
  return createLlmAgent({ baseUrl: server.baseUrl, usage: createPgUsageStore(db.pool), fetch: recordingFetch(tenant), timeoutMs: 60_000, ...opts });
}

const SYSTEM = 'You are a helpful assistant. Answer in one short sentence.';

test('answers a chat completion with usage over the OpenAI-compatible API, and the agent records it', async () => {
  const res = await fetch(`${server.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: LOCAL_MODEL_NAME, messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 8 }),
  });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { model: string; choices: { message: { content: string }; finish_reason: string }[]; usage: Record<string, number> };
  expect(body.model).toBe(LOCAL_MODEL_NAME);
  expect(body.choices[0]!.message.content.length).toBeGreaterThan(0);
  expect(body.usage.prompt_tokens).toBeGreaterThan(3);
  expect(body.usage.completion_tokens).toBeGreaterThan(0);
  expect(body.usage.completion_tokens).toBeLessThanOrEqual(8);
  expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);

  const registry = new Registry();
  const run = `r${++runs}`;
  const { run: execute } = agentActivity(agentFor('chat', { metrics: createLlmMetrics(registry) }), { tenant: 'chat', run });
  const { output } = (await execute({ system: SYSTEM, prompt: 'My card payment was declined. What should I do?', maxTokens: 16 })) as {
    output: { text: string; model: string; usage: { promptTokens: number; completionTokens: number; totalTokens: number; calls: number }; budget: { runTokens: number } };
  };
  expect(output.text.trim().length).toBeGreaterThan(0);
  expect(output.model).toBe(LOCAL_MODEL_NAME);
  expect(output.usage.calls).toBe(1);
  expect(output.usage.completionTokens).toBeLessThanOrEqual(16);
  expect(output.budget.runTokens).toBe(output.usage.totalTokens);
  const { rows } = await db.pool.query('SELECT status, prompt_tokens, completion_tokens, tokens, model FROM llm_usage WHERE tenant = $1', ['chat']);
  expect(rows).toEqual([
    { status: 'recorded', prompt_tokens: output.usage.promptTokens, completion_tokens: output.usage.completionTokens, tokens: output.usage.totalTokens, model: LOCAL_MODEL_NAME },
  ]);
  const tokens = (await registry.getSingleMetric('llm_tokens_total')!.get()).values;
  expect(tokens).toEqual(expect.arrayContaining([expect.objectContaining({ labels: { model: LOCAL_MODEL_NAME, kind: 'completion' }, value: output.usage.completionTokens })]));
});

test('returns JSON matching responseSchema, parsed', async () => {
  const responseSchema = { type: 'object', properties: { urgent: { type: 'boolean' } }, required: ['urgent'] };
  const { run: execute } = agentActivity(agentFor('json'), { tenant: 'json', run: `r${++runs}` });
  const { output } = (await execute({ prompt: 'A customer writes: "my card was stolen". Is this urgent?', responseSchema, maxTokens: 24 })) as {
    output: { json: { urgent: unknown }; usage: { calls: number } };
  };
  expect(typeof output.json.urgent).toBe('boolean');
  expect(output.usage.calls).toBe(1);
});

test('asks once more with the validation errors, then fails the stage for good', async () => {
  // A grammar can make the model write an integer, not a multiple of 7919 above 100000: both answers miss.
  const responseSchema = { type: 'object', properties: { answer: { type: 'integer', multipleOf: 7919, minimum: 100000 } }, required: ['answer'] };
  const run = `r${++runs}`;
  const { run: execute } = agentActivity(agentFor('repair'), { tenant: 'repair', run });
  const err = (await execute({ prompt: 'Give a JSON object with an integer answer.', responseSchema, maxTokens: 24 }).catch((e: unknown) => e)) as ApplicationFailure;
  expect(err).toBeInstanceOf(ApplicationFailure);
  expect(err).toMatchObject({ type: 'AgentRejected', nonRetryable: true });
  expect(err.message).toMatch(/does not match responseSchema after 2 calls \(one repair attempt\): .*must be/);
  expect(sent.repair).toHaveLength(2);
  const repair = sent.repair![1]!.messages;
  expect(repair.at(-1)!.content).toMatch(/does not match the required JSON Schema: .*\/answer must be/);
  // Both calls were made, so both are charged.
  const { rows } = await db.pool.query('SELECT call, status FROM llm_usage WHERE tenant = $1 ORDER BY call', ['repair']);
  expect(rows).toEqual([{ call: 1, status: 'recorded' }, { call: 2, status: 'recorded' }]);
});

test('refuses a call that would take the run over its token budget, before calling the model', async () => {
  const budgets = { runTokens: 400, tenantDayTokens: 1_000_000 };
  const run = `r${++runs}`;
  const first = agentActivity(agentFor('run-budget', { budgets }), { tenant: 'run-budget', run, stage: 'first' });
  const { output } = (await first.run({ system: SYSTEM, prompt: 'Say hello.', maxTokens: 8 })) as { output: { budget: { runTokens: number } } };
  const used = output.budget.runTokens;
  expect(used).toBeGreaterThan(0);

  // A second stage of the same run whose worst case fits the budget on its own, but not on top of what the run used.
  const messages = [{ role: 'user' as const, content: 'Tell me a story.' }];
  const maxTokens = budgets.runTokens - used - estimatePromptTokens(messages) + 1;
  const second = agentActivity(agentFor('run-budget', { budgets }), { tenant: 'run-budget', run, stage: 'second' });
  const err = (await second.run({ prompt: 'Tell me a story.', maxTokens }).catch((e: unknown) => e)) as ApplicationFailure;
  expect(err).toMatchObject({ type: 'AgentRejected', nonRetryable: true });
  expect(err.message).toBe(
    `LLM budget "run-tokens" exceeded: this run has used ${used} of 400 tokens, and this call may use up to ${budgets.runTokens - used + 1} more`,
  );
  expect(sent['run-budget']).toHaveLength(1);

  // Another run starts with a fresh run budget.
  const other = agentActivity(agentFor('run-budget', { budgets }), { tenant: 'run-budget', run: `r${++runs}` });
  await expect(other.run({ prompt: 'Say hi.', maxTokens: 4 })).resolves.toBeDefined();
});

test('refuses a tenant over its daily budget, counted across runs and workers', async () => {
  const budgets = { runTokens: 1_000_000, tenantDayTokens: 300 };
  // Two workers: two agents, each with its own store on the same database.
  const workerA = agentFor('day-budget', { budgets });
  const workerB = agentFor('day-budget', { budgets });
  await agentActivity(workerA, { tenant: 'day-budget', run: `r${++runs}` }).run({ prompt: 'Say hello.', maxTokens: 8 });
  await agentActivity(workerB, { tenant: 'day-budget', run: `r${++runs}` }).run({ prompt: 'Say goodbye.', maxTokens: 8 });
  const spent = await createPgUsageStore(db.pool).totals('day-budget', 'none', utcDay());
  expect(spent.tenantDayTokens).toBeGreaterThan(0);

  const maxTokens = budgets.tenantDayTokens - spent.tenantDayTokens - estimatePromptTokens([{ role: 'user', content: 'Tell me a story.' }]) + 1;
  const refused = agentFor('day-budget', { budgets }).run({ prompt: 'Tell me a story.', maxTokens }, {
    signal: new AbortController().signal,
    heartbeat: () => undefined,
    logger: { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined },
    idempotencyKey: `day-budget/llm-test/r${++runs}/draft`,
    runId: `llm-test/r${runs}`,
    stage: 'draft',
    attempt: 1,
  });
  await expect(refused).rejects.toThrow(LlmBudgetExceededError);
  await expect(refused).rejects.toMatchObject({ budget: 'tenant-day-tokens', limit: 300, used: spent.tenantDayTokens });
  expect(sent['day-budget']).toHaveLength(2);

  // Another tenant's budget is its own.
  await expect(agentActivity(agentFor('other-tenant', { budgets }), { tenant: 'other-tenant', run: `r${++runs}` }).run({ prompt: 'Say hi.', maxTokens: 4 })).resolves.toBeDefined();
});

test('cancelling the stage stops the generation mid-way and frees the model', async () => {
  const run = `r${++runs}`;
  const { env, run: execute } = agentActivity(agentFor('cancel'), { tenant: 'cancel', run });
  const pending = execute({ prompt: 'Write a very long story about a bank, with many chapters.', maxTokens: 1500 });
  // Let the model get going: the prompt is evaluated and tokens are coming.
  await new Promise((r) => setTimeout(r, 1500));
  const cancelledAt = Date.now();
  env.cancel();
  await expect(pending).rejects.toBeInstanceOf(CancelledFailure);
  expect(Date.now() - cancelledAt).toBeLessThan(1000);

  // The server has one sequence: had the 1500-token generation gone on, this would wait for it (a minute or more).
  const started = Date.now();
  const res = await fetch(`${server.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'Say hi.' }], max_tokens: 4 }),
  });
  expect(res.status).toBe(200);
  expect(Date.now() - started).toBeLessThan(15_000);

  // A cancelled call may have generated (and remotely been billed): it is charged at its worst case.
  const { rows } = await db.pool.query('SELECT status, tokens, reserved_tokens FROM llm_usage WHERE tenant = $1', ['cancel']);
  expect(rows).toEqual([{ status: 'recorded', tokens: rows[0].reserved_tokens, reserved_tokens: expect.any(Number) }]);
});
