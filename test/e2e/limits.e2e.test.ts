import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Redis } from 'ioredis';
import { progressQuery } from '../../src/contracts';
import { mintToken, type Role } from '../../src/facade/auth';
import { createLimitsRedis, createRunSlots, type RunSlots } from '../../src/security';
import { call, metricValue, type Reply } from '../helpers/http';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres';
import { createRedisServer } from '../helpers/redis-server';
import { freePort, spawnService, waitForHttp, type Service } from '../helpers/processes';
import { startTemporal } from '../helpers/temporal';
import { waitUntil } from '../helpers/wait';

/**
 * Limits against real processes: two facades sharing the machine's Redis (127.0.0.1:6379) must hold every limit
 * together, and a facade whose own Redis goes away must refuse (or, when told to, serve) and heal without a
 * restart. Each test uses a tenant of its own, so nothing here meets another test's counters in the shared Redis.
 */
const ROOT = resolve(__dirname, '..', '..');
const SHARED_REDIS = 'redis://127.0.0.1:6379';
const secret = randomBytes(32).toString('hex');
const run = randomBytes(3).toString('hex');
let seq = 0;
const newTenant = (what: string) => `lim-${run}-${what}-${++seq}`;

const SUBJECT_LIMIT = 50;
const TENANT_LIMIT = 80;
const TENANT_MAX_ACTIVE_RUNS = 5;
const PIPELINE_MAX_RUNS = 3;
const IDS_MAX_FAILURES = 5;

/** Runs stop at an approval nobody gives, so each one holds its slot for the length of the test. */
const held = (name: string) => `
name: ${name}
version: 1
description: redacts, then waits for an approval; its runs stay active
input: { type: object, required: [text], properties: { text: { type: string } } }
limits: { maxConcurrentRuns: ${PIPELINE_MAX_RUNS}, runTimeout: 10m }
stages:
  - name: redact
    agent: pii-redact
    with: { text: "\${input.text}" }
  - name: hold
    approval:
      roles: [approver]
      timeout: 5m
`;

let env: TestWorkflowEnvironment;
let db: TestDatabase;
let worker: Service;
/** Two replicas on the shared Redis. */
let facadeA: Service;
let facadeB: Service;
let baseA: string;
let baseB: string;
let redis: Redis;
let slots: RunSlots;
let common: Record<string, string>;

const token = (tenant: string, sub: string, roles: Role[] = ['operator']) =>
  mintToken({ secret, issuer: 'agentry', audience: 'agentry-api', subject: sub, tenant, roles });

const start = (base: string, tk: string, pipeline = 'held', headers: Record<string, string> = {}) =>
  call(base, 'POST', `/v1/pipelines/${pipeline}/runs`, { token: tk, body: { input: { text: 'please hold' } }, headers });

const count = (replies: Reply[], status: number) => replies.filter((r) => r.status === status).length;

/** The sum of one metric over the given facades (each counts what it refused itself). */
const metric = (bases: string[], name: string, labels: Record<string, string>) => metricValue(bases.map((b) => `${b}/metrics`), name, labels);

async function auditEvents(tenant: string, type: string) {
  const res = await db.pool.query<{ actor: string; data: Record<string, unknown>; run_id: string }>(
    'SELECT actor, data, run_id FROM audit_events WHERE tenant = $1 AND type = $2 ORDER BY chain_index',
    [tenant, type],
  );
  return res.rows;
}

beforeAll(async () => {
  const pipelinesDir = mkdtempSync(join(tmpdir(), 'agentry-limits-pipelines-'));
  const shipped = join(ROOT, 'src/pipelines/definitions');
  for (const f of readdirSync(shipped)) copyFileSync(join(shipped, f), join(pipelinesDir, f));
  writeFileSync(join(pipelinesDir, 'held.yaml'), held('held'));
  writeFileSync(join(pipelinesDir, 'held-b.yaml'), held('held-b'));

  [env, db] = await Promise.all([startTemporal(), createTestDatabase()]);
  redis = createLimitsRedis(SHARED_REDIS);
  slots = createRunSlots(redis);
  const [portA, portB, metricsPort] = await Promise.all([freePort(), freePort(), freePort()]);
  common = {
    DATABASE_URL: db.url,
    TEMPORAL_ADDRESS: env.address,
    TEMPORAL_TASK_QUEUE: `e2e-limits-${run}`,
    JWT_SECRET: secret,
    PIPELINES_DIR: pipelinesDir,
    AGENTRY_STATE_DIR: mkdtempSync(join(tmpdir(), 'agentry-limits-')),
    RATE_LIMIT_PER_MINUTE: String(SUBJECT_LIMIT),
    TENANT_RATE_LIMIT_PER_MINUTE: String(TENANT_LIMIT),
    TENANT_MAX_ACTIVE_RUNS: String(TENANT_MAX_ACTIVE_RUNS),
    IDS_MAX_FAILURES: String(IDS_MAX_FAILURES),
    IDS_WINDOW_S: '60',
    IDS_BLOCK_S: '120',
    // The address tests stand in for a proxy on the same host: they name the client in X-Forwarded-For.
    TRUST_PROXY: 'loopback',
  };
  worker = spawnService('src/worker.ts', { ...common, REDIS_URL: SHARED_REDIS, WORKER_METRICS_PORT: String(metricsPort) });
  facadeA = spawnService('src/server.ts', { ...common, REDIS_URL: SHARED_REDIS, PORT: String(portA) });
  facadeB = spawnService('src/server.ts', { ...common, REDIS_URL: SHARED_REDIS, PORT: String(portB) });
  baseA = `http://127.0.0.1:${portA}`;
  baseB = `http://127.0.0.1:${portB}`;
  await Promise.all([
    waitForHttp(`${baseA}/ready`, facadeA),
    waitForHttp(`${baseB}/ready`, facadeB),
    waitForHttp(`http://127.0.0.1:${metricsPort}/health`, worker),
  ]);
});

afterAll(async () => {
  await Promise.all([facadeA?.stop(), facadeB?.stop(), worker?.stop()]);
  await redis?.quit();
  await db?.drop();
  await env?.teardown();
});

describe('request rate limits across two facades', () => {
  test('200 concurrent requests of one subject: exactly the per-subject limit succeed, the rest are 429 with headers', async () => {
    const tenant = newTenant('subject');
    const tk = await token(tenant, 'burst');
    const before = await metric([baseA, baseB], 'rate_limited_total', { limit: 'subject' });
    const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => call(i % 2 ? baseB : baseA, 'GET', '/v1/pipelines', { token: tk })));

    expect(count(replies, 200)).toBe(SUBJECT_LIMIT);
    expect(count(replies, 429)).toBe(200 - SUBJECT_LIMIT);
    // The headers describe the limit closest to running out: mostly the subject's, at times the tenant's (its
    // counter moves in another order). One counter for both replicas: no subject count was handed out twice.
    const served = replies.filter((r) => r.status === 200);
    for (const r of served) expect([String(SUBJECT_LIMIT), String(TENANT_LIMIT)]).toContain(r.headers.get('ratelimit-limit'));
    const subjectCounts = served.filter((r) => r.headers.get('ratelimit-limit') === String(SUBJECT_LIMIT)).map((r) => r.headers.get('ratelimit-remaining'));
    expect(new Set(subjectCounts).size).toBe(subjectCounts.length);
    expect(subjectCounts).toContain('0');
    for (const r of replies.filter((x) => x.status === 429)) {
      expect(r.type).toContain('application/problem+json');
      expect(r.json).toMatchObject({ code: 'rate_limited', status: 429, limit: 'subject' });
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(Number(r.headers.get('retry-after'))).toBeLessThanOrEqual(60);
      expect(r.headers.get('ratelimit-limit')).toBe(String(SUBJECT_LIMIT));
      expect(r.headers.get('ratelimit-remaining')).toBe('0');
      expect(Number(r.headers.get('ratelimit-reset'))).toBeGreaterThanOrEqual(1);
    }
    expect((await metric([baseA, baseB], 'rate_limited_total', { limit: 'subject' })) - before).toBe(200 - SUBJECT_LIMIT);

    // Another subject of the same tenant still has its own budget.
    expect((await call(baseA, 'GET', '/v1/pipelines', { token: await token(tenant, 'calm') })).status).toBe(200);
    // The first refusal of the window, on whichever replica it happened, is audited once.
    const audited = await waitUntil('security.rate_limited in the audit trail', async () => {
      const rows = await auditEvents(tenant, 'security.rate_limited');
      return rows.length > 0 ? rows : undefined;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(await auditEvents(tenant, 'security.rate_limited')).toHaveLength(1);
    expect(audited[0]).toMatchObject({ actor: 'burst', data: expect.objectContaining({ limit: 'subject', max: SUBJECT_LIMIT }) });
  });

  test('200 concurrent requests of eight subjects of one tenant: exactly the per-tenant limit succeed', async () => {
    const tenant = newTenant('tenant');
    const tokens = await Promise.all(Array.from({ length: 8 }, (_, i) => token(tenant, `member-${i}`)));
    const replies = await Promise.all(
      Array.from({ length: 200 }, (_, i) => call(i % 2 ? baseB : baseA, 'GET', '/v1/pipelines', { token: tokens[i % tokens.length] })),
    );
    expect(count(replies, 200)).toBe(TENANT_LIMIT);
    expect(count(replies, 429)).toBe(200 - TENANT_LIMIT);
    for (const r of replies.filter((x) => x.status === 429)) {
      expect(r.json).toMatchObject({ code: 'rate_limited', limit: 'tenant' });
      expect(r.headers.get('ratelimit-limit')).toBe(String(TENANT_LIMIT));
      expect(r.headers.get('ratelimit-remaining')).toBe('0');
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    // Another tenant is untouched.
    expect((await call(baseB, 'GET', '/v1/pipelines', { token: await token(newTenant('other'), 'member-0') })).status).toBe(200);
  });
});

describe('concurrency caps across two facades', () => {
  async function awaitingApproval(tenant: string, runId: string) {
    return waitUntil(`${runId} to wait at its approval`, async () => {
      const progress = await env.client.workflow.getHandle(`${tenant}/${runId}`).query(progressQuery);
      return progress.stages.find((s) => s.name === 'hold')?.status === 'awaiting-approval' ? progress : undefined;
    }, 30_000, 200);
  }

  test('12 concurrent starts of one pipeline: exactly maxConcurrentRuns start, the rest are 429 concurrency_limited', async () => {
    const tenant = newTenant('cap');
    const tk = await token(tenant, 'starter');
    const replies = await Promise.all(Array.from({ length: 12 }, (_, i) => start(i % 2 ? baseB : baseA, tk)));
    expect(count(replies, 202)).toBe(PIPELINE_MAX_RUNS);
    expect(count(replies, 429)).toBe(12 - PIPELINE_MAX_RUNS);
    for (const r of replies.filter((x) => x.status === 429)) {
      expect(r.type).toContain('application/problem+json');
      expect(r.json).toMatchObject({ code: 'concurrency_limited', limit: 'pipeline_active_runs', max: PIPELINE_MAX_RUNS });
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    expect(await slots.active(tenant, 'held')).toEqual({ tenant: PIPELINE_MAX_RUNS, pipeline: PIPELINE_MAX_RUNS });
    const runIds = replies.filter((r) => r.status === 202).map((r) => r.json.runId as string);
    // The admitted runs are really running: each waits at its approval, holding its slot.
    for (const runId of runIds) await awaitingApproval(tenant, runId);

    // What the worker does when a run ends: release its slot. The next start then fits.
    await env.client.workflow.getHandle(`${tenant}/${runIds[0]}`).terminate('test: frees a slot');
    await slots.release(tenant, 'held', runIds[0]);
    expect((await start(baseB, tk)).status).toBe(202);
    expect((await start(baseA, tk)).status).toBe(429);
  });

  test('at a full cap, the slot of a run that closed without releasing it (terminated from outside) is freed', async () => {
    const tenant = newTenant('reclaim');
    const tk = await token(tenant, 'starter');
    const runIds: string[] = [];
    for (let i = 0; i < PIPELINE_MAX_RUNS; i++) {
      const r = await start(baseA, tk);
      expect(r.status).toBe(202);
      runIds.push(r.json.runId as string);
    }
    for (const runId of runIds) await awaitingApproval(tenant, runId);
    const reclaimed = async () => Number(/^run_slots_reclaimed_total\{[^}]*\} (\d+)$/m.exec(await (await fetch(`${baseA}/metrics`)).text())?.[1] ?? 0);
    const before = await reclaimed();
    // Terminated through Temporal, as an operator might: the workflow never runs its release.
    await env.client.workflow.getHandle(`${tenant}/${runIds[0]}`).terminate('test: stops without releasing its slot');
    expect(await slots.active(tenant, 'held')).toEqual({ tenant: PIPELINE_MAX_RUNS, pipeline: PIPELINE_MAX_RUNS });

    const next = await start(baseA, tk);
    expect(next.status).toBe(202);
    expect(await slots.active(tenant, 'held')).toEqual({ tenant: PIPELINE_MAX_RUNS, pipeline: PIPELINE_MAX_RUNS });
    // Running runs keep theirs: the cap is full again.
    const refused = await start(baseA, tk);
    expect(refused.status).toBe(429);
    expect(refused.json.code).toBe('concurrency_limited');
    expect((await reclaimed()) - before).toBe(1);
  });

  test('the tenant cap holds over all its pipelines', async () => {
    const tenant = newTenant('tenantcap');
    const tk = await token(tenant, 'starter');
    const replies = await Promise.all(
      Array.from({ length: 8 }, (_, i) => start(i % 2 ? baseB : baseA, tk, i < 4 ? 'held' : 'held-b')),
    );
    expect(count(replies, 202)).toBe(TENANT_MAX_ACTIVE_RUNS);
    expect(count(replies, 429)).toBe(8 - TENANT_MAX_ACTIVE_RUNS);
    expect(replies.filter((r) => r.status === 429).map((r) => r.json.limit)).toContain('tenant_active_runs');
    const [a, b] = await Promise.all([slots.active(tenant, 'held'), slots.active(tenant, 'held-b')]);
    expect(a.tenant).toBe(TENANT_MAX_ACTIVE_RUNS);
    expect(a.pipeline + b.pipeline).toBe(TENANT_MAX_ACTIVE_RUNS);
    const refused = await start(baseA, tk, 'held-b');
    expect(refused.status).toBe(429);
    expect(refused.json.code).toBe('concurrency_limited');
  });

  test('Idempotency-Key retries, concurrent or at the cap, never take a second slot', async () => {
    const tenant = newTenant('idem');
    const tk = await token(tenant, 'starter');
    const key = { 'Idempotency-Key': `limits-${randomBytes(4).toString('hex')}` };
    const first = await Promise.all(Array.from({ length: 6 }, (_, i) => start(i % 2 ? baseB : baseA, tk, 'held', key)));
    expect(first.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 202]);
    expect(new Set(first.map((r) => r.json.runId)).size).toBe(1);
    expect(await slots.active(tenant, 'held')).toEqual({ tenant: 1, pipeline: 1 });

    expect((await start(baseA, tk)).status).toBe(202);
    expect((await start(baseB, tk)).status).toBe(202);
    expect((await start(baseA, tk)).status).toBe(429);
    // At the cap, a retry of a run that holds its slot still answers with that run.
    const retry = await start(baseB, tk, 'held', key);
    expect(retry.status).toBe(200);
    expect(retry.json.runId).toBe(first[0].json.runId);
    expect(await slots.active(tenant, 'held')).toEqual({ tenant: PIPELINE_MAX_RUNS, pipeline: PIPELINE_MAX_RUNS });

    // Once that run has ended and freed its slot, and another run took it, a retry is still answered (it starts
    // nothing) and takes no slot.
    const keyedRunId = first[0].json.runId as string;
    await env.client.workflow.getHandle(`${tenant}/${keyedRunId}`).terminate('test: the keyed run ends');
    await slots.release(tenant, 'held', keyedRunId);
    expect((await start(baseA, tk)).status).toBe(202);
    const late = await start(baseB, tk, 'held', key);
    expect(late.status).toBe(200);
    expect(late.json.runId).toBe(keyedRunId);
    expect(await slots.active(tenant, 'held')).toEqual({ tenant: PIPELINE_MAX_RUNS, pipeline: PIPELINE_MAX_RUNS });
  });
});

describe('intrusion detector', () => {
  test('a subject refused IDS_MAX_FAILURES times is blocked on every replica, and the block is audited once', async () => {
    const tenant = newTenant('ids');
    const snoop = await token(tenant, 'snoop', ['viewer']);
    const before = await metric([baseA, baseB], 'intrusion_blocks_total', { kind: 'subject' });
    // Viewers may not start runs: each attempt is a 403, counted by whichever replica answers it.
    const attempts = await Promise.all(Array.from({ length: 10 }, (_, i) => start(i % 2 ? baseB : baseA, snoop)));
    expect(attempts.every((r) => r.status === 403)).toBe(true);
    expect(attempts.filter((r) => r.json.code === 'forbidden').length).toBeGreaterThanOrEqual(IDS_MAX_FAILURES);

    for (const base of [baseA, baseB]) {
      const blocked = await call(base, 'GET', '/v1/pipelines', { token: snoop });
      expect(blocked.status).toBe(403);
      expect(blocked.type).toContain('application/problem+json');
      expect(blocked.json.code).toBe('temporarily_blocked');
      expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(100);
      expect(Number(blocked.headers.get('retry-after'))).toBeLessThanOrEqual(120);
    }
    // Other subjects of the tenant, and the (loopback) address they share, are not blocked.
    expect((await call(baseA, 'GET', '/v1/pipelines', { token: await token(tenant, 'colleague') })).status).toBe(200);

    expect((await metric([baseA, baseB], 'intrusion_blocks_total', { kind: 'subject' })) - before).toBe(1);
    expect(await metric([baseA, baseB], 'intrusion_blocked_requests_total', { kind: 'subject' })).toBeGreaterThanOrEqual(2);
    const events = await auditEvents(tenant, 'security.blocked');
    expect(events).toEqual([
      expect.objectContaining({
        actor: 'snoop',
        data: expect.objectContaining({ kind: 'subject', maxFailures: IDS_MAX_FAILURES, blockS: 120, trigger: { status: 403, code: 'forbidden' } }),
      }),
    ]);
  });

  test('a client address sending bad tokens is blocked, even with a good token, and audited under _system', async () => {
    const address = `10.${randomBytes(1)[0]}.${randomBytes(1)[0]}.${randomBytes(1)[0] || 1}`;
    const via = { 'X-Forwarded-For': address };
    const requestIds = Array.from({ length: IDS_MAX_FAILURES }, (_, i) => `ids-${run}-${i}`);
    for (let i = 0; i < IDS_MAX_FAILURES; i++) {
      const bad = await call(i % 2 ? baseB : baseA, 'GET', '/v1/pipelines', { token: 'not.a.token', headers: { ...via, 'X-Request-Id': requestIds[i] } });
      expect(bad.status).toBe(401);
    }
    const good = await token(newTenant('addr'), 'honest');
    const blocked = await call(baseB, 'GET', '/v1/pipelines', { token: good, headers: via });
    expect(blocked.status).toBe(403);
    expect(blocked.json.code).toBe('temporarily_blocked');
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(100);
    // The same token from elsewhere is served.
    expect((await call(baseA, 'GET', '/v1/pipelines', { token: good })).status).toBe(200);
    // Audited once, by the request that reached the threshold; the address itself is stored sealed, never plain.
    const events = (await auditEvents('_system', 'security.blocked')).filter((e) => requestIds.includes(String(e.data.requestId)));
    expect(events).toEqual([
      expect.objectContaining({
        actor: 'anonymous',
        run_id: '-',
        data: expect.objectContaining({ kind: 'address', requestId: requestIds[IDS_MAX_FAILURES - 1], trigger: expect.objectContaining({ status: 401 }) }),
      }),
    ]);
    expect(JSON.stringify(events)).not.toContain(address);
  });
});

describe('Redis outage', () => {
  test('fail closed answers 503 limiter_unavailable, fail open serves; both recover when Redis returns, without a restart', async () => {
    const server = await createRedisServer();
    await server.start();
    const [portC, portD] = await Promise.all([freePort(), freePort()]);
    const own = { ...common, REDIS_URL: server.url };
    const closed = spawnService('src/server.ts', { ...own, PORT: String(portC) });
    const open = spawnService('src/server.ts', { ...own, PORT: String(portD), RATE_LIMIT_FAIL_OPEN: 'true' });
    const baseC = `http://127.0.0.1:${portC}`;
    const baseD = `http://127.0.0.1:${portD}`;
    try {
      await Promise.all([waitForHttp(`${baseC}/ready`, closed), waitForHttp(`${baseD}/ready`, open)]);
      const tenant = newTenant('outage');
      const tk = await token(tenant, 'patient');
      expect((await call(baseC, 'GET', '/v1/pipelines', { token: tk })).status).toBe(200);

      await server.stop();
      const refused = await waitUntil('the fail-closed facade to refuse', async () => {
        const r = await call(baseC, 'GET', '/v1/pipelines', { token: tk });
        return r.status === 503 ? r : undefined;
      }, 15_000, 100);
      expect(refused.type).toContain('application/problem+json');
      expect(refused.json).toMatchObject({ code: 'limiter_unavailable', status: 503 });
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      const notReady = await call(baseC, 'GET', '/ready');
      expect(notReady.status).toBe(503);
      expect(notReady.json.checks.limiter).toMatchObject({ ok: false });
      // Starting a run is refused the same way.
      expect((await start(baseC, tk)).json.code).toBe('limiter_unavailable');

      // Fail open: the same outage lets requests through, counted.
      expect((await call(baseD, 'GET', '/v1/pipelines', { token: tk })).status).toBe(200);
      const started = await start(baseD, tk);
      expect(started.status).toBe(202);
      expect(await metric([baseD], 'limiter_fail_open_total', { check: 'rate' })).toBeGreaterThanOrEqual(2);
      expect(await metric([baseD], 'limiter_fail_open_total', { check: 'concurrency' })).toBe(1);
      expect((await call(baseD, 'GET', '/ready')).json.checks.limiter).toMatchObject({ ok: false });

      await server.start();
      await waitUntil('the fail-closed facade to serve again', async () => {
        const r = await call(baseC, 'GET', '/v1/pipelines', { token: tk });
        return r.status === 200 ? r : undefined;
      }, 30_000, 250);
      await waitUntil('/ready to report the limiter ok', async () => ((await call(baseC, 'GET', '/ready')).status === 200 ? true : undefined), 30_000, 250);
      expect((await start(baseC, tk)).status).toBe(202);
      expect(closed.child.exitCode).toBeNull();
      await env.client.workflow.getHandle(`${tenant}/${started.json.runId}`).terminate('test cleanup');
    } finally {
      await Promise.all([closed.stop(), open.stop()]);
      await server.destroy();
    }
  }, 180_000);
});

describe('single process (no REDIS_URL)', () => {
  test('/ready reports in-process mode, the caps hold, and a slot frees itself when its run ends', async () => {
    const port = await freePort();
    const single = spawnService('src/server.ts', { ...common, PORT: String(port) });
    const base = `http://127.0.0.1:${port}`;
    try {
      await waitForHttp(`${base}/ready`, single);
      const ready = await call(base, 'GET', '/ready');
      expect(ready.json.checks.limiter).toMatchObject({ ok: true, mode: 'in-process' });
      expect(ready.json.checks.limiter.detail).toContain('single-process');

      const tenant = newTenant('single');
      const tk = await token(tenant, 'starter');
      const replies = await Promise.all(Array.from({ length: 5 }, () => start(base, tk)));
      expect(count(replies, 202)).toBe(PIPELINE_MAX_RUNS);
      expect(replies.filter((r) => r.status === 429).map((r) => r.json.code)).toEqual(['concurrency_limited', 'concurrency_limited']);

      // No worker can reach this process's slots: the facade frees one when it sees the run close.
      const ended = replies.find((r) => r.status === 202)!.json.runId as string;
      await env.client.workflow.getHandle(`${tenant}/${ended}`).terminate('test: ends a run');
      await waitUntil('a slot to free itself', async () => ((await start(base, tk)).status === 202 ? true : undefined), 30_000, 250);
      expect((await start(base, tk)).status).toBe(429);
    } finally {
      await single.stop();
    }
  }, 180_000);
});
