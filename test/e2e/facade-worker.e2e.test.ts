import { randomBytes } from 'node:crypto';
import { mintToken, type Role } from '../../src/facade/auth';
import { createAuditStore } from '../../src/audit';
import * as http from '../helpers/http';
import { startStack, type Stack } from '../helpers/stack';
import { waitUntil } from '../helpers/wait';

const secret = randomBytes(32).toString('hex');
const tenant = `e2e-${randomBytes(3).toString('hex')}`;
let stack: Stack;
let base: string;
let workerMetricsUrl: string;

const token = (roles: Role[] = ['operator'], t = tenant, sub = 'e2e-user') =>
  mintToken({ secret, issuer: 'agentry', audience: 'agentry-api', subject: sub, tenant: t, roles });

const call = (method: string, path: string, opts: http.CallOptions = {}) => http.call(base, method, path, opts);

async function runToEnd(runId: string, tk: string) {
  return waitUntil(`run ${runId} to finish`, async () => {
    const r = await call('GET', `/v1/runs/${runId}`, { token: tk });
    return r.status === 200 && r.json.status !== 'running' ? r.json : undefined;
  }, 60_000, 200);
}

beforeAll(async () => {
  stack = await startStack({ label: 'fw', secret });
  ({ base, workerMetricsUrl } = stack);
});

afterAll(async () => {
  await stack?.stop();
});

test('/health and /ready answer, and /ready names each dependency', async () => {
  expect((await call('GET', '/health')).status).toBe(200);
  const ready = await call('GET', '/ready');
  expect(ready.status).toBe(200);
  expect(ready.json.checks).toMatchObject({ temporal: { ok: true }, postgres: { ok: true }, limiter: { ok: true, mode: 'redis' } });
});

test('a ticket started over HTTP runs every stage, leaves its audit trail and moves the metrics', async () => {
  const tk = await token();
  const started = await call('POST', '/v1/pipelines/support-triage/runs', {
    token: tk,
    body: { input: { text: 'I lost my card yesterday, my email is sam@example.org', ticketId: 'E2E-1' } },
  });
  expect(started.status).toBe(202);
  expect(started.json.runId).toMatch(/^support-triage\//);
  expect(started.headers.get('location')).toBe(`/v1/runs/${started.json.runId}`);

  const run = await runToEnd(started.json.runId, tk);
  expect(run.status).toBe('completed');
  expect(run.stages.map((s: { name: string; status: string }) => `${s.name}:${s.status}`)).toEqual([
    'redact:completed',
    'classify:completed',
    'review:skipped',
    'route:completed',
    'reply:completed',
    'draft:completed',
  ]);
  expect(run.outputs.redact.text).not.toContain('sam@example.org');
  expect(run.links.ui).toContain(encodeURIComponent(`${tenant}/${started.json.runId}`));

  const events = await createAuditStore(stack.db.pool).listByRun(tenant, started.json.runId);
  expect(events.map((e) => e.type)).toEqual([
    'run.started',
    'stage.completed',
    'stage.completed',
    'stage.skipped',
    'stage.completed',
    'stage.completed',
    'stage.completed',
    'run.completed',
  ]);
  expect(events.every((e) => e.actor === 'e2e-user')).toBe(true);
  await expect(createAuditStore(stack.db.pool).verify(tenant)).resolves.toMatchObject({ ok: true });

  expect(await http.metricValue(workerMetricsUrl, 'agent_executions_total', { agent_name: 'pii-redact', status: 'ok' })).toBeGreaterThanOrEqual(1);
  // The draft stage's spend: in the run status and in the worker's metrics.
  expect(run.outputs.draft.usage.totalTokens).toBeGreaterThan(0);
  expect(await http.metricValue(workerMetricsUrl, 'llm_tokens_total', { model: 'SmolLM2-135M-Instruct', kind: 'completion' })).toBeGreaterThanOrEqual(1);
  expect(await http.metricValue(workerMetricsUrl, 'workflows_total', { status: 'completed', workflow_name: 'support-triage' })).toBeGreaterThanOrEqual(1);
  expect(await http.metricValue(`${base}/metrics`, 'runs_started_total', { workflow_name: 'support-triage' })).toBeGreaterThanOrEqual(1);
  expect(await http.metricValue(`${base}/metrics`, 'http_requests_total', { route: '/v1/runs/:pipeline/:id', status: '200' })).toBeGreaterThanOrEqual(1);

  const listed = await waitUntil('the run to be listed', async () => {
    const r = await call('GET', '/v1/runs?pipeline=support-triage&status=completed', { token: tk });
    return r.json.runs.some((x: { runId: string }) => x.runId === started.json.runId) ? r.json : undefined;
  });
  expect(listed.runs.find((x: { runId: string }) => x.runId === started.json.runId)).toMatchObject({ status: 'completed', pipeline: 'support-triage' });
});

test('requests without a valid token are refused with problem+json', async () => {
  const none = await call('POST', '/v1/pipelines/support-triage/runs', { body: { input: { text: 'x' } } });
  expect(none.status).toBe(401);
  expect(none.type).toContain('application/problem+json');
  expect(none.json.code).toBe('unauthorized');
  const forged = await mintToken({ secret: 'x'.repeat(40), issuer: 'agentry', audience: 'agentry-api', subject: 's', tenant, roles: ['admin'] });
  expect((await call('GET', '/v1/runs', { token: forged })).status).toBe(401);
});

test('bad input gets a clear 4xx naming the field, and starts nothing', async () => {
  const tk = await token();
  const invalid = await call('POST', '/v1/pipelines/support-triage/runs', { token: tk, body: { input: { text: 7, extra: true } } });
  expect(invalid.status).toBe(400);
  expect(invalid.json.code).toBe('validation_failed');
  expect(invalid.json.errors.map((e: { path: string }) => e.path).sort()).toEqual(['/input/extra', '/input/text']);

  const malformed = await call('POST', '/v1/pipelines/support-triage/runs', { token: tk, raw: '{"input": {' });
  expect(malformed.status).toBe(400);
  expect(malformed.json.code).toBe('invalid_json');

  const wrongType = await call('POST', '/v1/pipelines/support-triage/runs', {
    token: tk,
    raw: 'text=hi',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  expect(wrongType.status).toBe(415);

  const unknown = await call('POST', '/v1/pipelines/no-such-pipeline/runs', { token: tk, body: { input: { text: 'x' } } });
  expect(unknown.status).toBe(404);
  expect(unknown.type).toContain('application/problem+json');

  for (const r of [invalid, malformed, wrongType, unknown]) expect(r.text).not.toMatch(/\s+at\s|\/src\/|node_modules/);
});

test('roles and tenants are enforced', async () => {
  const viewer = await token(['viewer']);
  const denied = await call('POST', '/v1/pipelines/support-triage/runs', { token: viewer, body: { input: { text: 'hello' } } });
  expect(denied.status).toBe(403);

  const started = await call('POST', '/v1/pipelines/support-triage/runs', { token: await token(), body: { input: { text: 'hello there' } } });
  const other = await token(['admin'], `${tenant}-other`);
  const peek = await call('GET', `/v1/runs/${started.json.runId}`, { token: other });
  expect(peek.status).toBe(404);
});

test('the same Idempotency-Key returns the same run; with another body it is a conflict', async () => {
  const tk = await token();
  const key = `key-${randomBytes(4).toString('hex')}`;
  const body = { input: { text: 'Where is my transfer?' } };
  const first = await call('POST', '/v1/pipelines/support-triage/runs', { token: tk, body, headers: { 'Idempotency-Key': key } });
  const second = await call('POST', '/v1/pipelines/support-triage/runs', { token: tk, body, headers: { 'Idempotency-Key': key } });
  expect(first.status).toBe(202);
  expect(second.status).toBe(200);
  expect(second.json.runId).toBe(first.json.runId);
  const clash = await call('POST', '/v1/pipelines/support-triage/runs', {
    token: tk,
    body: { input: { text: 'something else' } },
    headers: { 'Idempotency-Key': key },
  });
  expect(clash.status).toBe(409);
  expect(clash.json.code).toBe('idempotency_key_reused');

  // The same input with its keys in another order is the same request; a retry that repeats the first request's
  // X-Request-Id is still a retry (whether a request created the run is not the client's to say).
  const key2 = `key-${randomBytes(4).toString('hex')}`;
  const headers = { 'Idempotency-Key': key2, 'X-Request-Id': `req-${key2}` };
  const original = await call('POST', '/v1/pipelines/support-triage/runs', { token: tk, raw: '{"input": {"text": "hi", "ticketId": "T-9"}}', headers });
  const reordered = await call('POST', '/v1/pipelines/support-triage/runs', { token: tk, raw: '{"input": {"ticketId": "T-9", "text": "hi"}}', headers });
  expect(original.status).toBe(202);
  expect(reordered.status).toBe(200);
  expect(reordered.json.runId).toBe(original.json.runId);
});

test('/openapi.json describes every route', async () => {
  const doc = await call('GET', '/openapi.json');
  expect(doc.status).toBe(200);
  expect(Object.keys(doc.json.paths)).toEqual(
    expect.arrayContaining(['/v1/pipelines/{pipeline}/runs', '/v1/runs/{pipeline}/{id}', '/v1/runs', '/v1/pipelines', '/health', '/ready', '/metrics']),
  );
});
