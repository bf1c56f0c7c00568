import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import type { Redis } from 'ioredis';
import { mintToken, type Role } from '../../src/facade/auth';
import { createLimitsRedis, createRunSlots, type RunSlots } from '../../src/security';
import { findNginx, startNginx, type Nginx } from '../helpers/nginx';
import { SHARED_REDIS_URL, startStack, type Stack } from '../helpers/stack';
import { waitUntil } from '../helpers/wait';

/**
 * The production topology on one machine: nginx with deploy/nginx/nginx.conf in front of two facades, three
 * workers on one task queue, one PostgreSQL, one Redis, one Temporal. Everything goes through nginx, and must
 * behave as it does with one facade and one worker: runs complete, an Idempotency-Key starts one run whichever
 * facade gets the retries, approvals and event streams work, and the limits are shared. Each test has a tenant of
 * its own in the shared Redis (127.0.0.1:6379).
 */
const RATE_LIMIT = 30;
const TENANT_MAX_ACTIVE_RUNS = 4;
const secret = randomBytes(32).toString('hex');
const run = randomBytes(3).toString('hex');
let seq = 0;
const newTenant = (what: string) => `topo-${run}-${what}-${++seq}`;

const PIPELINES = {
  'quick.yaml': `
name: quick
version: 1
description: redacts a text and ends
input: { type: object, required: [text], properties: { text: { type: string } } }
stages:
  - name: redact
    agent: pii-redact
    with: { text: "\${input.text}" }
  - name: pick
    agent: lookup
    with: { key: a, table: { a: done } }
`,
  'held.yaml': `
name: held
version: 1
description: redacts, then waits for an approval
input: { type: object, required: [text], properties: { text: { type: string } } }
stages:
  - name: redact
    agent: pii-redact
    with: { text: "\${input.text}" }
  - name: review
    approval:
      roles: [approver]
      timeout: 5m
  - name: pick
    agent: lookup
    with: { key: "\${review.decision}", table: { approved: shipped } }
`,
};

const nginxBinary = findNginx();
if ('reason' in nginxBinary) {
  // Visible in the test output: the topology cannot be built without a load balancer.
  process.stderr.write(`topology tests skipped: ${nginxBinary.reason}\n`);
}
const describeTopology = 'path' in nginxBinary ? describe : describe.skip;

let stack: Stack;
let redis: Redis;
let slots: RunSlots;
let facadeUrls: string[] = [];
let workerMetricsUrls: string[] = [];
let lb: Nginx;

const token = (tenant: string, sub: string, roles: Role[] = ['operator']) =>
  mintToken({ secret, issuer: 'agentry', audience: 'agentry-api', subject: sub, tenant, roles });

interface Reply {
  status: number;
  headers: Headers;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are asserted field by field
  json: any;
  type: string;
}

/** A request through the load balancer. */
async function call(method: string, path: string, opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Reply> {
  const res = await fetch(`${lb.url}${path}`, {
    method,
    headers: {
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
      ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...opts.headers,
    },
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, type: res.headers.get('content-type') ?? '' };
}

const start = (tk: string, pipeline: string, text: string, headers: Record<string, string> = {}) =>
  call('POST', `/v1/pipelines/${pipeline}/runs`, { token: tk, body: { input: { text } }, headers });
const count = (replies: Reply[], status: number) => replies.filter((r) => r.status === status).length;

/** The sum of one metric's samples on one process, optionally only those carrying the given labels. */
async function metric(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const body = await (await fetch(`${url}/metrics`)).text();
  let total = 0;
  for (const line of body.split('\n')) {
    if (line.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) total += Number(line.split(' ').pop());
  }
  return total;
}
const perFacade = (name: string, labels: Record<string, string> = {}) => Promise.all(facadeUrls.map((u) => metric(u, name, labels)));

async function result(tenant: string, runId: string): Promise<void> {
  await stack.temporal.client.workflow.getHandle(`${tenant}/${runId}`).result();
}

beforeAll(async () => {
  if (!('path' in nginxBinary)) return;
  redis = createLimitsRedis(SHARED_REDIS_URL);
  slots = createRunSlots(redis);
  stack = await startStack({
    label: 'topology',
    secret,
    pipelines: PIPELINES,
    env: {
      RATE_LIMIT_PER_MINUTE: String(RATE_LIMIT),
      TENANT_RATE_LIMIT_PER_MINUTE: '100000',
      TENANT_MAX_ACTIVE_RUNS: String(TENANT_MAX_ACTIVE_RUNS),
    },
    facades: 2,
    workers: 3,
  });
  facadeUrls = stack.facades.map((f) => f.url);
  workerMetricsUrls = stack.workers.map((w) => w.url);
  lb = await startNginx(nginxBinary.path, stack.facades.map((f) => f.port));
}, 180_000);

afterAll(async () => {
  await lb?.stop();
  await redis?.quit();
  await stack?.stop();
});

describeTopology('two facades behind nginx, three workers', () => {
  test('runs started through nginx complete; both facades take starts and the workers share the stages', async () => {
    const tenant = newTenant('runs');
    const tk = await token(tenant, 'starter');
    const reader = await token(tenant, 'reader', ['viewer']);
    const startsBefore = await perFacade('http_requests_total', { route: '/v1/pipelines/:pipeline/runs', status: '202' });
    const stagesBefore = await Promise.all(workerMetricsUrls.map((u) => metric(u, 'agent_executions_total')));
    const runIds: string[] = [];
    // In batches no larger than the tenant's cap on active runs; each batch ends (and frees its slots) first.
    for (let batch = 0; batch < 3; batch++) {
      const replies = await Promise.all(Array.from({ length: TENANT_MAX_ACTIVE_RUNS }, (_, i) => start(tk, 'quick', `batch ${batch} run ${i}, mail a@example.com`)));
      expect(replies.map((r) => r.status)).toEqual(Array(TENANT_MAX_ACTIVE_RUNS).fill(202));
      const ids = replies.map((r) => r.json.runId as string);
      await Promise.all(ids.map((id) => result(tenant, id)));
      await waitUntil('the batch to free its slots', async () => ((await slots.active(tenant, 'quick')).tenant === 0 ? true : undefined), 30_000, 100);
      runIds.push(...ids);
    }
    for (const runId of runIds) {
      const r = await call('GET', `/v1/runs/${runId}`, { token: reader });
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({ runId, status: 'completed', outputs: { pick: expect.anything() } });
      expect(JSON.stringify(r.json.outputs)).not.toContain('a@example.com');
    }

    const startsAfter = await perFacade('http_requests_total', { route: '/v1/pipelines/:pipeline/runs', status: '202' });
    const starts = startsAfter.map((n, i) => n - startsBefore[i]);
    expect(starts[0] + starts[1]).toBe(runIds.length);
    for (const n of starts) expect(n).toBeGreaterThan(0);
    const stagesAfter = await Promise.all(workerMetricsUrls.map((u) => metric(u, 'agent_executions_total')));
    const stages = stagesAfter.map((n, i) => n - stagesBefore[i]);
    // Two agent stages per run, each run exactly once over the three workers.
    expect(stages.reduce((a, b) => a + b, 0)).toBe(2 * runIds.length);
    expect(stages.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
  });

  test('an Idempotency-Key starts one run, whichever facade each retry reaches', async () => {
    const tenant = newTenant('idem');
    const tk = await token(tenant, 'starter');
    const key = { 'Idempotency-Key': `topology-${randomBytes(4).toString('hex')}` };
    const before = await perFacade('http_requests_total', { route: '/v1/pipelines/:pipeline/runs' });
    const replies = await Promise.all(Array.from({ length: 6 }, () => start(tk, 'quick', 'same body', key)));
    expect(replies.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 202]);
    expect(new Set(replies.map((r) => r.json.runId)).size).toBe(1);
    const after = await perFacade('http_requests_total', { route: '/v1/pipelines/:pipeline/runs' });
    for (const [i, n] of after.entries()) expect(n - before[i]).toBeGreaterThan(0);

    const runId = replies[0].json.runId as string;
    await result(tenant, runId);
    const late = await start(tk, 'quick', 'same body', key);
    expect(late.status).toBe(200);
    expect(late.json.runId).toBe(runId);
    const conflict = await start(tk, 'quick', 'another body', key);
    expect(conflict.status).toBe(409);
    expect(conflict.type).toContain('application/problem+json');
    expect(conflict.json.code).toBe('idempotency_key_reused');
  });

  test('an approval given through nginx resumes the run, and its event stream arrives unbuffered', async () => {
    const tenant = newTenant('approve');
    const starter = await token(tenant, 'starter');
    const approver = await token(tenant, 'approver', ['approver']);
    const reader = await token(tenant, 'reader', ['viewer']);
    const started = await start(starter, 'held', 'please review');
    expect(started.status).toBe(202);
    const runId = started.json.runId as string;

    // Follow the run's events through nginx, frame by frame.
    const frames: string[] = [];
    let ended = false;
    const stream = new Promise<void>((resolveStream, reject) => {
      const req = request(`${lb.url}/v1/runs/${runId}/events`, { headers: { authorization: `Bearer ${reader}`, accept: 'text/event-stream' } }, (res) => {
        expect(res.statusCode).toBe(200);
        expect(res.headers['content-type']).toContain('text/event-stream');
        res.setEncoding('utf8');
        let buffer = '';
        res.on('data', (chunk: string) => {
          buffer += chunk;
          const parts = buffer.split('\n\n');
          buffer = parts.pop() ?? '';
          frames.push(...parts.filter((p) => !p.startsWith(':')));
        });
        res.on('end', () => {
          ended = true;
          resolveStream();
        });
      });
      req.on('error', reject);
      req.end();
    });
    const transition = (status: string, stage?: string) =>
      frames.some((f) => f.includes('event: transition') && f.includes(`"status":"${status}"`) && (!stage || f.includes(`"stage":"${stage}"`)));

    // The stream shows the wait for approval while the run is still waiting: nginx passes events on as they come.
    await waitUntil('the awaiting-approval event through nginx', async () => (transition('awaiting-approval', 'review') ? true : undefined), 30_000, 100);
    expect(ended).toBe(false);

    const decided = await call('POST', `/v1/runs/${runId}/approvals`, { token: approver, body: { stage: 'review', decision: 'approve', comment: 'fine' } });
    expect(decided.status).toBe(200);
    expect(decided.json).toMatchObject({ stage: 'review', decision: 'approved', approver: 'approver' });
    await result(tenant, runId);
    await stream;
    expect(transition('completed', 'pick')).toBe(true);
    const end = frames.find((f) => f.includes('event: end'));
    expect(end).toContain('"status":"completed"');

    const finished = await call('GET', `/v1/runs/${runId}`, { token: reader });
    expect(finished.json).toMatchObject({ status: 'completed', outputs: { pick: expect.anything() } });
    expect(finished.json.approvals).toEqual([expect.objectContaining({ stage: 'review', decision: 'approved', approver: 'approver' })]);
    // A second decision is refused, whichever facade takes it.
    const again = await call('POST', `/v1/runs/${runId}/approvals`, { token: approver, body: { stage: 'review', decision: 'approve' } });
    expect(again.status).toBe(409);
    expect(again.type).toContain('application/problem+json');
  });

  test(`${RATE_LIMIT + 20} concurrent requests of one subject through nginx: exactly ${RATE_LIMIT} pass over both facades`, async () => {
    const tenant = newTenant('rate');
    const tk = await token(tenant, 'burst');
    const before = await perFacade('http_requests_total');
    const replies = await Promise.all(Array.from({ length: RATE_LIMIT + 20 }, () => call('GET', '/v1/pipelines', { token: tk })));
    const after = await perFacade('http_requests_total');

    expect(count(replies, 200)).toBe(RATE_LIMIT);
    expect(count(replies, 429)).toBe(20);
    for (const r of replies.filter((x) => x.status === 429)) {
      expect(r.type).toContain('application/problem+json');
      expect(r.json).toMatchObject({ code: 'rate_limited', status: 429, limit: 'subject' });
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    // Both facades answered part of the burst, and the shared counter still let exactly the limit through.
    for (const [i, n] of after.entries()) expect(n - before[i]).toBeGreaterThan(0);
  });

  test('the tenant cap on active runs holds over both facades', async () => {
    const tenant = newTenant('cap');
    const tk = await token(tenant, 'starter');
    const before = await perFacade('http_requests_total', { route: '/v1/pipelines/:pipeline/runs' });
    const replies = await Promise.all(Array.from({ length: 10 }, (_, i) => start(tk, 'held', `held ${i}`)));
    const after = await perFacade('http_requests_total', { route: '/v1/pipelines/:pipeline/runs' });
    expect(count(replies, 202)).toBe(TENANT_MAX_ACTIVE_RUNS);
    expect(count(replies, 429)).toBe(10 - TENANT_MAX_ACTIVE_RUNS);
    for (const r of replies.filter((x) => x.status === 429)) {
      expect(r.type).toContain('application/problem+json');
      expect(r.json).toMatchObject({ code: 'concurrency_limited', limit: 'tenant_active_runs', max: TENANT_MAX_ACTIVE_RUNS });
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    for (const [i, n] of after.entries()) expect(n - before[i]).toBeGreaterThan(0);
    expect((await slots.active(tenant, 'held')).tenant).toBe(TENANT_MAX_ACTIVE_RUNS);
    // The held runs end here, so they do not outlive the test.
    for (const r of replies.filter((x) => x.status === 202)) {
      await stack.temporal.client.workflow.getHandle(`${tenant}/${r.json.runId}`).terminate('test: done');
    }
  });

  test('nginx publishes no metrics; each facade does, directly', async () => {
    expect((await fetch(`${lb.url}/metrics`)).status).toBe(404);
    for (const url of facadeUrls) expect((await fetch(`${url}/metrics`)).status).toBe(200);
    expect(lb.config).toContain('proxy_buffering off');
  });
});
