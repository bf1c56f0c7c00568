/**
 * LLM calls in a trace: each Chat Completions call is a client span under the caller's span (in a worker, the
 * activity's), and every HTTP request carries its traceparent to the provider. Runs against the scripted provider on
 * loopback; spans go to an in-memory exporter through the project's own tracing set-up.
 */
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { createChatClient, LlmRequestRejectedError } from '../../src/agents/llm';
import { startTracing, type Tracing } from '../../src/telemetry';
import { completion, failure, startFakeProvider, type FakeProvider } from '../helpers/llm';

let provider: FakeProvider;
let tracing: Tracing;
const exporter = new InMemorySpanExporter();

beforeAll(async () => {
  tracing = startTracing({ serviceName: 'llm-tracing-test', spanProcessors: [new SimpleSpanProcessor(exporter)] });
  provider = await startFakeProvider();
  // The SDK may finish registering its tracer provider after start() returns (CI once exported no span at all in
  // the first test): wait until a probe span is recorded.
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    trace.getTracer('probe').startSpan('probe').end();
    if (exporter.getFinishedSpans().length > 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
});
afterAll(async () => {
  await provider?.close();
  await tracing?.shutdown();
});
beforeEach(() => exporter.reset());

const client = () => createChatClient({ baseUrl: provider.baseUrl, timeoutMs: 5000, maxRetries: 2, retryAfterMaxMs: 3000, backoffMs: 10 });
const ask = { model: 'fake-model', messages: [{ role: 'user' as const, content: 'Say thanks.' }], maxTokens: 16 };

/** Runs `fn` inside a parent span, as an activity would; returns the parent's ids. */
async function underParent(fn: () => Promise<unknown>) {
  return trace.getTracer('test').startActiveSpan('RunActivity:runAgent', async (parent) => {
    try {
      await fn().catch(() => undefined);
    } finally {
      parent.end();
    }
    return parent.spanContext();
  });
}

test('a call is one client span under its caller, with model, usage and retries, and each request carries its traceparent', async () => {
  const before = provider.traceparents.length;
  provider.script(failure(429, { 'retry-after': '0' }), completion('Thanks!', { prompt: 12, completion: 3 }));
  const parent = await underParent(() => client().complete(ask));

  // The names first: should the span be missing, the failure shows what was exported instead.
  expect(exporter.getFinishedSpans().map((s) => s.name)).toContain('chat fake-model');
  const chat = exporter.getFinishedSpans().find((s) => s.name === 'chat fake-model');
  expect(chat!.kind).toBe(SpanKind.CLIENT);
  expect(chat!.spanContext().traceId).toBe(parent.traceId);
  expect(chat!.parentSpanId).toBe(parent.spanId);
  expect(chat!.attributes).toMatchObject({
    'gen_ai.operation.name': 'chat',
    'gen_ai.request.model': 'fake-model',
    'gen_ai.request.max_tokens': 16,
    'gen_ai.usage.input_tokens': 12,
    'gen_ai.usage.output_tokens': 3,
    'gen_ai.response.finish_reasons': ['stop'],
    'server.address': '127.0.0.1',
    'agentry.llm.requests': 2,
  });
  expect(chat!.events.map((e) => [e.name, e.attributes?.['http.response.status_code']])).toEqual([['retry', 429]]);
  expect(chat!.status.code).not.toBe(SpanStatusCode.ERROR);
  // Both HTTP requests (the 429 and its retry) name the chat span as their parent.
  const sent = provider.traceparents.slice(before);
  expect(sent).toHaveLength(2);
  for (const header of sent) expect(header).toBe(`00-${parent.traceId}-${chat!.spanContext().spanId}-01`);
  // The prompt and the answer are customer data: not in the span.
  expect(JSON.stringify(chat!.attributes)).not.toMatch(/Say thanks|Thanks!/);
});

test('a refused call ends its span with an error naming the failure', async () => {
  provider.script(failure(401, {}, 'bad key'));
  await underParent(() => client().complete(ask));
  const chat = exporter.getFinishedSpans().find((s) => s.name === 'chat fake-model');
  expect(chat!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'LlmRequestRejectedError (HTTP 401)' });
  expect(chat!.attributes).toMatchObject({ 'error.type': new LlmRequestRejectedError('x', 401).name, 'http.response.status_code': 401 });
  // The provider's own words (which can quote the prompt) stay out of the span.
  expect(JSON.stringify({ status: chat!.status, attributes: chat!.attributes, events: chat!.events })).not.toContain('bad key');
});
