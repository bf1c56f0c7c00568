import { randomBytes } from 'node:crypto';
import { mintToken } from '../../src/facade/auth';
import { startOtlpCollector, type CollectedSpan, type OtlpCollector } from '../helpers/otlp-collector';
import type { Service } from '../helpers/processes';
import { startStack, type Stack } from '../helpers/stack';
import { waitUntil } from '../helpers/wait';

/**
 * The facade and the worker run as processes with their production tracing configuration (OTLP/HTTP export, here to
 * an in-memory collector in the test). In-process instrumentation cannot be tested under Jest: its module registry
 * bypasses the require hooks that patch `pg`.
 */
const secret = randomBytes(32).toString('hex');
const tenant = `trace-${randomBytes(3).toString('hex')}`;
const TRACED = `
name: traced
version: 1
description: two agents, to follow one request through the workflow into the database
input: { type: object, properties: { text: { type: string } } }
stages:
  - name: redact
    agent: pii-redact
    with:
      text: \${input.text}
  - name: route
    agent: lookup
    with: { key: a, table: { a: billing } }
`;

let stack: Stack;
let collector: OtlpCollector;
let worker: Service;
let base: string;

beforeAll(async () => {
  collector = await startOtlpCollector();
  stack = await startStack({
    label: 'trace',
    secret,
    pipelines: { 'traced.yaml': TRACED },
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint,
      // The collector reads JSON; protobuf, the default, is the same exporter pipeline in another encoding.
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      // Standard batch processor setting: export every 200 ms rather than every 5 s, so the test waits less.
      OTEL_BSP_SCHEDULE_DELAY: '200',
    },
    workerEnv: { LOG_LEVEL: 'debug' },
  });
  ({ base } = stack);
  worker = stack.workers[0].service;
});

afterAll(async () => {
  await stack?.stop();
  await collector?.close();
});

/** The chain of ancestors of `span` among `spans`, nearest first. */
function ancestorsOf(span: CollectedSpan, spans: CollectedSpan[]): CollectedSpan[] {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const chain: CollectedSpan[] = [];
  for (let parent = byId.get(span.parentSpanId); parent; parent = byId.get(parent.parentSpanId)) chain.push(parent);
  return chain;
}

test('one trace runs from the incoming traceparent through the HTTP request, workflow start, workflow and activities to the SQL, and the logs carry it', async () => {
  const traceId = randomBytes(16).toString('hex');
  const callerSpanId = randomBytes(8).toString('hex');
  const tk = await mintToken({ secret, issuer: 'agentry', audience: 'agentry-api', subject: 'tracer', tenant, roles: ['operator'] });
  const started = await fetch(`${base}/v1/pipelines/traced/runs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tk}`, 'content-type': 'application/json', traceparent: `00-${traceId}-${callerSpanId}-01` },
    body: JSON.stringify({ input: { text: 'write to sam@example.org' } }),
  });
  expect(started.status).toBe(202);
  const { runId } = (await started.json()) as { runId: string };
  const run = await waitUntil(`run ${runId} to finish`, async () => {
    const res = await fetch(`${base}/v1/runs/${runId}`, { headers: { authorization: `Bearer ${tk}` } });
    const body = (await res.json()) as { status: string };
    return res.status === 200 && body.status !== 'running' ? body : undefined;
  }, 60_000, 200);
  expect(run.status).toBe('completed');

  // Spans arrive in batches, children before parents: wait until the workflow's span is in and every span of the
  // trace hangs from the caller's span.
  const spans = await waitUntil('the whole trace at the collector', async () => {
    const all = collector.spans().filter((s) => s.traceId === traceId);
    if (!all.some((s) => s.name === 'RunWorkflow:pipeline')) return undefined;
    const ids = new Set(all.map((s) => s.spanId));
    return all.every((s) => ids.has(s.parentSpanId) || s.parentSpanId === callerSpanId) ? all : undefined;
  }, 30_000, 200);

  // The facade's server span continues the caller's trace, and is the one root of everything below.
  const server = spans.filter((s) => s.parentSpanId === callerSpanId);
  expect(server).toHaveLength(1);
  expect(server[0]).toMatchObject({ service: 'agentry-facade', kind: 2, scope: '@opentelemetry/instrumentation-http' });
  // Named by its route template, never the raw path with the pipeline name in it.
  expect(server[0]).toMatchObject({ name: 'POST /v1/pipelines/:pipeline/runs', attributes: expect.objectContaining({ 'http.method': 'POST', 'http.route': '/v1/pipelines/:pipeline/runs' }) });
  const root = server[0] as CollectedSpan;
  const under = (s: CollectedSpan, ancestor: CollectedSpan) => ancestorsOf(s, spans).some((a) => a.spanId === ancestor.spanId);

  const start = spans.filter((s) => s.name === 'StartWorkflow:pipeline');
  expect(start).toHaveLength(1);
  expect(start[0]?.service).toBe('agentry-facade');
  expect(under(start[0] as CollectedSpan, root)).toBe(true);

  const workflow = spans.filter((s) => s.name === 'RunWorkflow:pipeline');
  expect(workflow).toHaveLength(1);
  expect(workflow[0]).toMatchObject({ service: 'agentry-worker', parentSpanId: start[0]?.spanId });
  expect(workflow[0]?.attributes.workflowId).toBe(`${tenant}/${runId}`);

  // Each activity attempt runs in its own span, under the workflow's span that scheduled it.
  const activities = spans.filter((s) => s.name.startsWith('RunActivity:'));
  for (const a of activities) {
    expect(a.service).toBe('agentry-worker');
    const scheduled = spans.find((s) => s.spanId === a.parentSpanId);
    expect(scheduled?.name).toBe(a.name.replace('RunActivity:', 'StartActivity:'));
    expect(under(a, workflow[0] as CollectedSpan)).toBe(true);
  }
  const names = activities.map((a) => a.name);
  expect(names.filter((n) => n === 'RunActivity:runAgent')).toHaveLength(2);
  expect(names).toContain('RunActivity:recordAudit');

  // The audit appends are SQL spans inside the recordAudit activities, with the statement but never its values.
  const sql = spans.filter((s) => s.scope === '@opentelemetry/instrumentation-pg');
  const auditInserts = sql.filter((s) => /INSERT INTO audit_events/i.test(String(s.attributes['db.statement'] ?? '')));
  expect(auditInserts.length).toBeGreaterThanOrEqual(1);
  for (const q of auditInserts) {
    expect(q.service).toBe('agentry-worker');
    expect(ancestorsOf(q, spans).find((s) => s.name.startsWith('RunActivity:'))?.name).toBe('RunActivity:recordAudit');
    expect(JSON.stringify(q.attributes)).not.toContain('sam@example.org');
  }
  for (const s of spans) expect(JSON.stringify(s.attributes)).not.toContain('sam@example.org');

  // The worker's log lines of this run carry its run id, stage and trace id, and the span of their activity.
  const agentRuns = new Map(activities.filter((a) => a.name === 'RunActivity:runAgent').map((a) => [a.spanId, a]));
  const lines = worker
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.runId === runId && l.msg === 'agent finished');
  expect(lines.map((l) => l.stage).sort()).toEqual(['redact', 'route']);
  for (const l of lines) {
    expect(l.trace_id).toBe(traceId);
    expect(agentRuns.has(String(l.span_id))).toBe(true);
  }
});

test('requests without a traceparent start their own trace, and probes are not traced', async () => {
  const before = collector.spans().length;
  const health = await fetch(`${base}/health`);
  expect(health.status).toBe(200);
  const tk = await mintToken({ secret, issuer: 'agentry', audience: 'agentry-api', subject: 'tracer', tenant, roles: ['viewer'] });
  const listed = await fetch(`${base}/v1/pipelines`, { headers: { authorization: `Bearer ${tk}` } });
  expect(listed.status).toBe(200);
  const served = await waitUntil('the GET /v1/pipelines span', async () =>
    collector
      .spans()
      .slice(before)
      .find((s) => s.service === 'agentry-facade' && s.kind === 2 && s.attributes['http.target'] === '/v1/pipelines'),
  10_000, 100);
  expect(served.parentSpanId).toBe('');
  expect(served.name).toBe('GET /v1/pipelines');
  expect(served.traceId).toMatch(/^[0-9a-f]{32}$/);
  expect(collector.spans().some((s) => s.attributes['http.target'] === '/health')).toBe(false);
});
