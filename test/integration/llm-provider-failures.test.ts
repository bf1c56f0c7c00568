/**
 * The `llm` agent against a provider that misbehaves on cue: a fake OpenAI-compatible server on loopback answers
 * 429 with Retry-After, 500, malformed bodies, 401 and hangs. Each failure is checked through the real `runAgent`
 * activity, so the test sees the failure type and retryability Temporal would.
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { Registry } from 'prom-client';
import {
  createLlmAgent,
  createLlmMetrics,
  createMemoryUsageStore,
  LlmBudgetExceededError,
  LlmMalformedResponseError,
  LlmProviderError,
  LlmRequestRejectedError,
  LlmTimeoutError,
  type LlmAgentOptions,
  type UsageStore,
} from '../../src/agents';
import { estimatePromptTokens, utcDay } from '../../src/agents/llm';
import { agentActivity, completion, failure, startFakeProvider, type FakeProvider } from '../helpers/llm';

let provider: FakeProvider;
let usage: UsageStore;
let runs = 0;

beforeAll(async () => {
  provider = await startFakeProvider();
});
afterAll(async () => {
  await provider?.close();
});
beforeEach(() => {
  provider.requests.length = 0;
  usage = createMemoryUsageStore();
});

const agentWith = (opts: Partial<LlmAgentOptions> = {}) =>
  createLlmAgent({ baseUrl: provider.baseUrl, model: 'fake-model', usage, timeoutMs: 5000, maxRetries: 2, retryAfterMaxMs: 3000, backoffMs: 20, ...opts });

/** Runs one stage through the activity; returns its output or the ApplicationFailure it raised. */
async function stage(opts: Partial<LlmAgentOptions>, input: Record<string, unknown>, tenant = 'acme') {
  const run = `r${++runs}`;
  const { run: execute } = agentActivity(agentWith(opts), { tenant, run });
  try {
    return { run, result: (await execute(input)) as { output: Record<string, unknown> }, error: undefined };
  } catch (err) {
    return { run, result: undefined, error: err as ApplicationFailure };
  }
}

const spendOf = (run: string, tenant = 'acme') => usage.totals(tenant, `llm-test/${run}`, utcDay());

test('a 429 with Retry-After is waited out and the call retried', async () => {
  provider.script(failure(429, { 'retry-after': '1' }), completion('Thanks for writing in.', { prompt: 12, completion: 6 }));
  const started = Date.now();
  const { run, result, error } = await stage({}, { prompt: 'Say thanks.', maxTokens: 16 });
  expect(error).toBeUndefined();
  expect(Date.now() - started).toBeGreaterThanOrEqual(950);
  expect(provider.requests).toHaveLength(2);
  expect(result!.output).toMatchObject({ text: 'Thanks for writing in.', usage: { promptTokens: 12, completionTokens: 6, totalTokens: 18, calls: 1 } });
  // Counted once, with what the provider reported.
  expect((await spendOf(run)).runTokens).toBe(18);
});

test('a Retry-After longer than LLM_RETRY_AFTER_MAX_MS fails the attempt at once, retryable', async () => {
  provider.script(failure(429, { 'retry-after': '120' }));
  const started = Date.now();
  const { run, error } = await stage({}, { prompt: 'Hello', maxTokens: 16 });
  expect(Date.now() - started).toBeLessThan(2000);
  expect(error).toBeInstanceOf(ApplicationFailure);
  expect(error).toMatchObject({ type: 'AgentFailed', nonRetryable: false });
  expect(error!.message).toMatch(/asks to wait 120 s \(HTTP 429\)/);
  expect(provider.requests).toHaveLength(1);
  // Nothing was generated, so nothing is charged.
  expect((await spendOf(run)).runTokens).toBe(0);
});

test('500s are retried with backoff, and a lasting outage fails the attempt as retryable', async () => {
  provider.script(failure(500), completion('ok'));
  const recovered = await stage({}, { prompt: 'Hello', maxTokens: 8 });
  expect(recovered.error).toBeUndefined();
  expect(provider.requests).toHaveLength(2);

  provider.requests.length = 0;
  provider.script(failure(500), failure(502), failure(503));
  const { error } = await stage({}, { prompt: 'Hello', maxTokens: 8 });
  expect(error).toMatchObject({ type: 'AgentFailed', nonRetryable: false });
  expect(error!.message).toMatch(/HTTP 503\) after 3 requests/);
  expect(provider.requests).toHaveLength(3);
});

test('malformed JSON from the provider fails the attempt as retryable, without retrying in process', async () => {
  const agent = agentWith();
  const ctx = fakeCtx('acme/llm-test/direct/draft');
  provider.script({ status: 200, headers: { 'content-type': 'application/json' }, body: '{"choices": [{"message": {"content": "cut o' });
  await expect(agent.run({ prompt: 'Hello', maxTokens: 8 }, ctx)).rejects.toThrow(LlmMalformedResponseError);
  provider.script({ status: 200, headers: { 'content-type': 'text/html' }, body: '<html>Bad gateway</html>' });
  await expect(agent.run({ prompt: 'Hello', maxTokens: 8 }, ctx)).rejects.toThrow(/not JSON \(text\/html, 24 bytes\)/);
  provider.script({ status: 200, headers: { 'content-type': 'application/json' }, body: '{"object": "list", "data": []}' });
  await expect(agent.run({ prompt: 'Hello', maxTokens: 8 }, ctx)).rejects.toThrow(/not a Chat Completions response \(choices:/);
  expect(provider.requests).toHaveLength(3);

  provider.script({ status: 200, headers: { 'content-type': 'application/json' }, body: 'not json' });
  const { error } = await stage({}, { prompt: 'Hello', maxTokens: 8 });
  expect(error).toMatchObject({ type: 'AgentFailed', nonRetryable: false });
  expect(error!.message).toMatch(/malformed response/);
});

test('a request the provider refuses (401) fails for good', async () => {
  provider.script(failure(401, {}, 'Incorrect API key provided'));
  const { error } = await stage({ apiKey: 'sk-wrong' }, { prompt: 'Hello', maxTokens: 8 });
  expect(error).toMatchObject({ type: 'AgentRejected', nonRetryable: true });
  expect(error!.message).toMatch(/refused the request \(HTTP 401\): Incorrect API key provided/);
  expect(provider.requests).toHaveLength(1);
});

test('a call that outlives LLM_TIMEOUT_MS fails retryable and is charged its worst case', async () => {
  provider.script('hang');
  const { run, error } = await stage({ timeoutMs: 300 }, { prompt: 'Hello there', maxTokens: 20 });
  expect(error).toMatchObject({ type: 'AgentFailed', nonRetryable: false });
  expect(error!.message).toMatch(/did not answer within 300 ms/);
  const worst = estimatePromptTokens([{ role: 'user', content: 'Hello there' }]) + 20;
  expect((await spendOf(run)).runTokens).toBe(worst);
});

test('cancelling the stage aborts the HTTP call at once', async () => {
  provider.script('hang');
  const { env, run } = agentActivity(agentWith(), { tenant: 'acme', run: `r${++runs}` });
  const pending = run({ prompt: 'Hello', maxTokens: 8 });
  await new Promise((r) => setTimeout(r, 200));
  const cancelledAt = Date.now();
  env.cancel();
  await expect(pending).rejects.toBeInstanceOf(CancelledFailure);
  expect(Date.now() - cancelledAt).toBeLessThan(500);
  await new Promise((r) => setTimeout(r, 100));
  expect(provider.abandoned).toBeGreaterThanOrEqual(1);
});

test('an answer that misses responseSchema gets one repair request quoting the errors', async () => {
  const responseSchema = { type: 'object', properties: { urgent: { type: 'boolean' } }, required: ['urgent'], additionalProperties: false };
  provider.script(completion('{"urgent": "yes", "note": 1}', { prompt: 30, completion: 8 }), completion('```json\n{"urgent": true}\n```', { prompt: 60, completion: 6 }));
  const { run, result, error } = await stage({}, { prompt: 'Is "my card was stolen" urgent?', responseSchema, maxTokens: 32 });
  expect(error).toBeUndefined();
  expect(result!.output).toMatchObject({ json: { urgent: true }, usage: { calls: 2, repaired: true, promptTokens: 90, completionTokens: 14 } });
  expect(provider.requests[0]!.response_format).toEqual({ type: 'json_schema', json_schema: { name: 'response', schema: responseSchema } });
  const repair = provider.requests[1]!.messages;
  expect(repair.at(-2)).toEqual({ role: 'assistant', content: '{"urgent": "yes", "note": 1}' });
  expect(repair.at(-1)!.content).toMatch(/\/urgent must be boolean/);
  expect(repair.at(-1)!.content).toMatch(/must NOT have additional properties \(note\)/);
  expect((await spendOf(run)).runTokens).toBe(104);

  // A second miss is final: no retries of the stage would make the model comply.
  provider.script(completion('{"urgent": "yes"}'), completion('still no JSON'));
  const missed = await stage({}, { prompt: 'Is it urgent?', responseSchema, maxTokens: 32 });
  expect(missed.error).toMatchObject({ type: 'AgentRejected', nonRetryable: true });
  expect(missed.error!.message).toMatch(/does not match responseSchema after 2 calls .*not valid JSON/);
});

test('cost is priced by LLM_PRICES, counted in metrics, and the cost budget refuses a call before it is made', async () => {
  const registry = new Registry();
  const metrics = createLlmMetrics(registry);
  const opts = { prices: { 'fake-model': { input: 1, output: 2 } }, budgets: { runTokens: 1e6, tenantDayTokens: 1e7, tenantDayCostUsd: 2.5 }, metrics };
  provider.script(completion('ok', { prompt: 1000, completion: 500 }));
  const first = await stage(opts, { prompt: 'Hello', maxTokens: 500 }, 'costly');
  expect(first.result!.output).toMatchObject({ usage: { costUsd: 2 }, budget: { tenantDayCostUsd: 2, tenantDayCostLimitUsd: 2.5 } });
  expect((await registry.getSingleMetric('llm_cost_total')!.get()).values).toEqual([expect.objectContaining({ labels: { model: 'fake-model' }, value: 2 })]);
  const tokens = (await registry.getSingleMetric('llm_tokens_total')!.get()).values;
  expect(tokens).toEqual(expect.arrayContaining([expect.objectContaining({ labels: { model: 'fake-model', kind: 'prompt' }, value: 1000 })]));

  // 500 more completion tokens could cost 1 USD: over what is left of 2.5.
  const second = await stage(opts, { prompt: 'Hello', maxTokens: 500 }, 'costly');
  expect(second.error).toMatchObject({ type: 'AgentRejected', nonRetryable: true });
  expect(second.error!.message).toMatch(/LLM budget "tenant-day-cost" exceeded/);
  expect(provider.requests).toHaveLength(1);
  expect((await registry.getSingleMetric('llm_budget_rejections_total')!.get()).values).toEqual([expect.objectContaining({ labels: { budget: 'tenant-day-cost' }, value: 1 })]);

  await expect(agentWith(opts).run({ prompt: 'Hello', maxTokens: 500 }, fakeCtx('costly/llm-test/x/draft'))).rejects.toBeInstanceOf(LlmBudgetExceededError);
});

test('the error classes say which failures are final', () => {
  expect(new LlmProviderError('x', 503)).not.toBeInstanceOf(LlmRequestRejectedError);
  expect(new LlmTimeoutError(5).message).toBe('the LLM provider did not answer within 5 ms');
});

function fakeCtx(idempotencyKey: string) {
  const quiet = () => undefined;
  return {
    signal: new AbortController().signal,
    heartbeat: quiet,
    logger: { debug: quiet, info: quiet, warn: quiet, error: quiet },
    idempotencyKey,
    runId: idempotencyKey.split('/').slice(1, 3).join('/'),
    stage: 'draft',
    attempt: 1,
  };
}
