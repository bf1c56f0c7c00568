import { mkdtempSync, writeFileSync, copyFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import { createBuiltinAgents } from '../../src/agents';
import { createAuditStore, type AuditStore } from '../../src/audit';
import type { AuditEventInput } from '../../src/contracts';
import { createApp, createAuthenticator, createRequestLimiter, mintToken, type App, type Role } from '../../src/facade';
import { loadPipelineCatalog } from '../../src/pipelines/pipeline-catalog';
import { createInputChecker } from '../../src/security';
import { createHttpMetrics, createLogger, createRegistry } from '../../src/telemetry';
import { testSealKeys } from '../helpers/audit-seal';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres';

const ROOT = resolve(__dirname, '..', '..');
const secret = 'audit-routes-test-secret-0123456789abcdef';
const RESTRICTED = `
name: restricted
version: 1
description: readable by operators only
input: { type: object, required: [key], properties: { key: { type: string } } }
access: { read: [operator], start: [operator] }
stages:
  - name: find
    agent: lookup
    with: { key: "\${input.key}", table: { a: alpha } }
`;

let db: TestDatabase;
let store: AuditStore;
let app: App;
let base: string;

function event(tenant: string, runId: string, seq: number, extra: Partial<AuditEventInput> = {}): AuditEventInput {
  return {
    id: `${tenant}/${runId}#${seq}`,
    tenant,
    runId,
    type: 'stage.completed',
    actor: 'alice',
    pipeline: runId.split('/')[0],
    pipelineVersion: 1,
    definitionHash: 'e'.repeat(64),
    data: { seq },
    occurredAt: Date.UTC(2026, 0, 1, 0, seq),
    ...extra,
  };
}

beforeAll(async () => {
  db = await createTestDatabase();
  store = createAuditStore(db.pool, { sealKeys: testSealKeys });
  const pipelinesDir = mkdtempSync(join(tmpdir(), 'agentry-audit-routes-'));
  const shipped = join(ROOT, 'src/pipelines/definitions');
  for (const f of readdirSync(shipped)) copyFileSync(join(shipped, f), join(pipelinesDir, f));
  writeFileSync(join(pipelinesDir, 'restricted.yaml'), RESTRICTED);
  const agents = createBuiltinAgents({ trainFile: join(ROOT, 'src/demo/train.csv'), cacheDir: mkdtempSync(join(tmpdir(), 'agentry-models-')) });
  const registry = createRegistry('audit-routes-test');
  app = createApp({
    logger: createLogger({ level: 'silent', name: 'audit-routes-test' }),
    registry,
    httpMetrics: createHttpMetrics(registry),
    // The audit routes read PostgreSQL only; nothing here reaches Temporal.
    temporal: { options: { namespace: 'default' } } as unknown as Client,
    taskQueue: 'unused',
    uiUrl: 'http://127.0.0.1:8233',
    pipelines: await loadPipelineCatalog(pipelinesDir, agents),
    checker: createInputChecker(),
    auth: createAuthenticator({ secret, issuer: 'agentry', audience: 'agentry-api', clockToleranceS: 5 }),
    limiter: createRequestLimiter({ requestsPerMinute: 100_000 }),
    bodyLimitBytes: 65_536,
    readiness: {},
    version: 'test',
    audit: store,
    auditReader: store,
  });
  base = `http://127.0.0.1:${await app.start(0, '127.0.0.1')}`;

  const types = ['run.started', 'stage.completed', 'approval.granted', 'run.completed'] as const;
  for (let i = 1; i <= 8; i++) {
    await store.append(
      event('acme', 'support-triage/r1', i, { type: types[(i - 1) % 4], actor: i % 2 ? 'alice' : 'bob', ...(i === 3 ? { data: { comment: 'fine by me' } } : {}) }),
    );
  }
  await store.append(event('acme', 'restricted/r2', 9));
  await store.append(event('globex', 'support-triage/r1', 1, { actor: 'eve' }));
});

afterAll(async () => {
  await app?.stop();
  await db?.drop();
});

async function get(path: string, roles: Role[], tenant = 'acme') {
  const token = await mintToken({ secret, issuer: 'agentry', audience: 'agentry-api', subject: `${roles.join('+')}@${tenant}`, tenant, roles });
  const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are probed field by field
  return { status: res.status, type: res.headers.get('content-type') ?? '', json: (await res.json()) as Record<string, any> };
}

describe('GET /v1/audit', () => {
  test("an auditor reads the tenant's trail in chain order, a page at a time", async () => {
    const first = await get('/v1/audit?limit=4', ['auditor']);
    expect(first.status).toBe(200);
    expect(first.json.events.map((e: { chainIndex: number }) => e.chainIndex)).toEqual([1, 2, 3, 4]);
    expect(first.json.nextCursor).toBe('4');
    const second = await get(`/v1/audit?limit=4&cursor=${first.json.nextCursor}`, ['auditor']);
    expect(second.json.events.map((e: { chainIndex: number }) => e.chainIndex)).toEqual([5, 6, 7, 8]);
    const last = await get(`/v1/audit?limit=4&cursor=${second.json.nextCursor}`, ['auditor']);
    expect(last.json.events.map((e: { chainIndex: number }) => e.chainIndex)).toEqual([9]);
    expect(last.json.nextCursor).toBeUndefined();
    // Another tenant's events never appear.
    expect([...first.json.events, ...second.json.events, ...last.json.events].every((e: { tenant: string }) => e.tenant === 'acme')).toBe(true);
    // Sealed fields stay sealed over HTTP; the chain fields are all there to re-verify.
    const granted = first.json.events[2];
    expect(granted).toMatchObject({ type: 'approval.granted', data: { comment: { $sealed: 'A256GCM', kid: 'seal-test-1' } } });
    expect(Object.keys(granted)).toEqual(expect.arrayContaining(['prevHash', 'hash', 'occurredAt', 'definitionHash']));
  });

  test('filters by run, actor, type and time', async () => {
    const ids = async (q: string) => (await get(`/v1/audit?${q}`, ['auditor'])).json.events.map((e: { chainIndex: number }) => e.chainIndex);
    expect(await ids('run=restricted/r2')).toEqual([9]);
    expect(await ids('actor=bob')).toEqual([2, 4, 6, 8]);
    expect(await ids('type=run.started,run.completed')).toEqual([1, 4, 5, 8]);
    expect(await ids('run=support-triage/r1&actor=alice&type=approval.granted')).toEqual([3, 7]);
    expect(await ids(`from=${new Date(Date.UTC(2026, 0, 1, 0, 2)).toISOString()}&to=2026-01-01T00:05:00Z`)).toEqual([2, 3, 4]);
  });

  test('is for auditors only', async () => {
    const res = await get('/v1/audit', ['admin', 'operator', 'viewer']);
    expect(res.status).toBe(403);
    expect(res.type).toMatch(/application\/problem\+json/);
    expect(res.json).toMatchObject({ code: 'forbidden' });
  });

  test.each([
    ['type=run.exploded', '/type'],
    ['from=yesterday', '/from'],
    ['from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z', '/from'],
    // Dates PostgreSQL would refuse (a 500) or Date.parse would roll over into another day.
    ['from=0000-01-01T00:00:00Z', '/from'],
    ['to=0000-06-01T00:00:00Z', '/to'],
    ['from=2026-02-30T00:00:00Z', '/from'],
    ['to=2026-01-01T24:00:00Z', '/to'],
    // In range where written, out of it in UTC once the offset is applied.
    ['from=9999-12-31T23:59:59-23:59', '/from'],
    ['to=9999-12-31T23:59:59-01:00', '/to'],
    ['from=1970-01-01T00:00:00%2B01:00', '/from'],
    ['cursor=abc', '/cursor'],
    ['limit=0', '/limit'],
    ['limit=501', '/limit'],
    // Numbers a lenient parser would read, but no client writes as a page size.
    ['limit=0x10', '/limit'],
    ['limit=1e2', '/limit'],
    ['limit=%205', '/limit'],
    ['limit=', '/limit'],
    ['limit=1&limit=2', '/limit'],
    ['run=not-a-run-id', '/run'],
    ['tenant=globex', '/'],
  ])('answers 400 problem+json naming the bad filter: %s', async (query, path) => {
    const res = await get(`/v1/audit?${query}`, ['auditor']);
    expect(res.status).toBe(400);
    expect(res.type).toMatch(/application\/problem\+json/);
    expect(res.json.code).toBe('validation_failed');
    expect(res.json.errors.map((e: { path: string }) => e.path.replace(/\/\d+$/, ''))).toContain(path);
  });
});

describe('GET /v1/runs/:pipeline/:id/audit', () => {
  test("a role that may read the run gets its events, and so does an auditor", async () => {
    const viewer = await get('/v1/runs/support-triage/r1/audit', ['viewer']);
    expect(viewer.status).toBe(200);
    expect(viewer.json.runId).toBe('support-triage/r1');
    expect(viewer.json.events).toHaveLength(8);
    expect((await get('/v1/runs/restricted/r2/audit', ['operator'])).json.events).toHaveLength(1);
    expect((await get('/v1/runs/restricted/r2/audit', ['auditor'])).json.events).toHaveLength(1);
    const paged = await get('/v1/runs/support-triage/r1/audit?limit=5', ['auditor']);
    expect(paged.json.nextCursor).toBe('5');
  });

  test('refuses roles the pipeline does not let read, and hides other tenants\' runs', async () => {
    const denied = await get('/v1/runs/restricted/r2/audit', ['viewer', 'approver']);
    expect(denied.status).toBe(403);
    expect(denied.json.code).toBe('forbidden');
    const elsewhere = await get('/v1/runs/restricted/r2/audit', ['operator'], 'globex');
    expect(elsewhere.status).toBe(404);
    expect(elsewhere.type).toMatch(/application\/problem\+json/);
    expect((await get('/v1/runs/support-triage/nope/audit', ['auditor'])).status).toBe(404);
    // A pipeline no longer loaded: its trail stays readable by admins and auditors only.
    expect((await get('/v1/runs/retired/r1/audit', ['viewer'])).status).toBe(403);
    expect((await get('/v1/runs/retired/r1/audit', ['admin'])).status).toBe(404);
  });
});

test('the OpenAPI description lists both routes', async () => {
  const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { paths: Record<string, unknown> };
  expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/audit', '/v1/runs/{pipeline}/{id}/audit']));
});
