import { randomBytes } from 'node:crypto';
import { Pool } from 'pg';
import { Registry } from 'prom-client';
import { createRecordAuditActivity } from '../../activities/record-audit.activity';
import { chainHash, createAuditStore, isSealed, migrate, type AuditStore, type StoredAuditEvent } from '../../src/audit';
import type { AuditEventInput } from '../../src/contracts';
import { createLogger, createRunMetrics } from '../../src/telemetry';
import { testSealKeys, unsealed } from '../helpers/audit-seal';
import { createTestDatabase, tamperAuditTrail, type TestDatabase } from '../helpers/postgres';

let db: TestDatabase;
let store: AuditStore;

beforeAll(async () => {
  db = await createTestDatabase();
  store = createAuditStore(db.pool);
});
afterAll(() => db.drop());

function event(tenant: string, runId: string, seq: number, extra: Partial<AuditEventInput> = {}): AuditEventInput {
  return {
    id: `${tenant}/${runId}#${seq}`,
    tenant,
    runId,
    type: 'stage.completed',
    actor: 'tester',
    pipeline: 'support-triage',
    pipelineVersion: 1,
    definitionHash: 'a'.repeat(64),
    stage: 'classify',
    data: { attempts: 1, seq },
    occurredAt: Date.UTC(2026, 0, 1, 0, 0, seq),
    ...extra,
  };
}

async function appendMany(tenant: string, n: number): Promise<void> {
  for (let i = 1; i <= n; i++) await store.append(event(tenant, 'r1', i));
}

const tamper = (...statements: [string, unknown[]?][]) => tamperAuditTrail(db.pool, ...statements);

async function row(tenant: string, chainIndex: number): Promise<StoredAuditEvent> {
  const [e] = (await store.page({ tenant, after: chainIndex - 1, limit: 1 })).events;
  return e;
}

test('appends events as a hash chain that verifies', async () => {
  await appendMany('t-chain', 5);
  const rows = await store.listByRun('t-chain', 'r1');
  expect(rows.map((r) => r.chainIndex)).toEqual([1, 2, 3, 4, 5]);
  expect(rows[1].prevHash).toBe(rows[0].hash);
  await expect(store.verify('t-chain')).resolves.toMatchObject({ ok: true, events: 5 });
});

test('a retried write with the same event id stores one row', async () => {
  const first = await store.append(event('t-retry', 'r1', 1));
  const again = await store.append(event('t-retry', 'r1', 1));
  expect(first.inserted).toBe(true);
  expect(again).toEqual({ inserted: false, chainIndex: first.chainIndex, hash: first.hash });
  expect(await store.listByRun('t-retry', 'r1')).toHaveLength(1);
});

test('a retried recordAudit activity writes one row', async () => {
  const recordAudit = createRecordAuditActivity({
    audit: createAuditStore(db.pool, { sealKeys: testSealKeys }),
    metrics: createRunMetrics(new Registry()),
    logger: createLogger({ level: 'silent', name: 'test' }),
  });
  // What Temporal does when the first attempt's completion is lost: the same event, delivered again.
  const e = event('t-activity', 'r1', 1, { type: 'approval.granted', data: { comment: 'ok by me' } });
  const first = await recordAudit(e);
  const second = await recordAudit(e);
  expect(first).toEqual({ inserted: true, chainIndex: 1 });
  expect(second).toEqual({ inserted: false, chainIndex: 1 });
  const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM audit_events WHERE tenant = 't-activity'");
  expect(rows[0].n).toBe(1);
});

test('concurrent appends for one tenant leave one linear chain', async () => {
  await Promise.all(Array.from({ length: 100 }, (_, i) => store.append(event('t-concurrent', `r${i % 7}`, i))));
  const { rows } = await db.pool.query<{ n: string; max: string }>(
    "SELECT count(*) AS n, max(chain_index) AS max FROM audit_events WHERE tenant = 't-concurrent'",
  );
  expect(rows[0]).toEqual({ n: '100', max: '100' });
  await expect(store.verify('t-concurrent')).resolves.toMatchObject({ ok: true, events: 100 });
});

test('UPDATE and DELETE are refused by the database', async () => {
  await store.append(event('t-immutable', 'r1', 1));
  await expect(db.pool.query("UPDATE audit_events SET actor = 'mallory' WHERE tenant = 't-immutable'")).rejects.toThrow(/append-only/);
  await expect(db.pool.query("DELETE FROM audit_events WHERE tenant = 't-immutable'")).rejects.toThrow(/append-only/);
});

describe('verify names the first broken link', () => {
  test('an edited payload', async () => {
    await appendMany('t-edit', 3);
    await tamper([`UPDATE audit_events SET data = '{"attempts": 9}' WHERE tenant = 't-edit' AND chain_index = 2`]);
    const res = await store.verify('t-edit');
    expect(res.ok).toBe(false);
    expect(res.broken).toMatchObject({ tenant: 't-edit', chainIndex: 2, id: 't-edit/r1#2', kind: 'edited' });
    expect(res.broken?.reason).toMatch(/edited/);
  });

  test('an edited event whose hash was recomputed', async () => {
    await appendMany('t-rehash', 4);
    const e = await row('t-rehash', 2);
    const forged = { ...e, actor: 'mallory' };
    const { prevHash, hash: _h, recordedAt: _r, ...fields } = forged;
    await tamper(["UPDATE audit_events SET actor = 'mallory', hash = $1 WHERE id = $2", [chainHash(prevHash, fields), e.id]]);
    const res = await store.verify('t-rehash');
    expect(res.broken).toMatchObject({ chainIndex: 2, id: e.id, kind: 'edited' });
    expect(res.broken?.reason).toMatch(/hash recomputed/);
  });

  test('a deleted event', async () => {
    await appendMany('t-delete', 3);
    await tamper(["DELETE FROM audit_events WHERE tenant = 't-delete' AND chain_index = 2"]);
    const res = await store.verify('t-delete');
    expect(res).toMatchObject({ ok: false, broken: { chainIndex: 3, kind: 'deleted' } });
    expect(res.broken?.reason).toMatch(/#2 is missing/);
  });

  test('a deleted event whose successors were renumbered to close the gap', async () => {
    await appendMany('t-renumber', 4);
    await tamper(
      ["DELETE FROM audit_events WHERE tenant = 't-renumber' AND chain_index = 2"],
      ["UPDATE audit_events SET chain_index = chain_index + 1000000 WHERE tenant = 't-renumber' AND chain_index > 2"],
      ["UPDATE audit_events SET chain_index = chain_index - 1000001 WHERE tenant = 't-renumber' AND chain_index > 1000000"],
    );
    const res = await store.verify('t-renumber');
    expect(res.broken).toMatchObject({ chainIndex: 2, id: 't-renumber/r1#3', kind: 'deleted' });
  });

  test('an inserted event with a correctly recomputed hash', async () => {
    await appendMany('t-insert', 4);
    const before = await row('t-insert', 2);
    // Make room at #3, then slip in a forged event that links to #2 and hashes exactly as the store would.
    const forged: AuditEventInput = event('t-insert', 'r1', 99, { actor: 'mallory', type: 'approval.granted', stage: 'review', data: { passes: true } });
    const fields = {
      id: forged.id,
      tenant: forged.tenant,
      chainIndex: 3,
      runId: forged.runId,
      type: forged.type,
      actor: forged.actor,
      pipeline: forged.pipeline,
      pipelineVersion: forged.pipelineVersion,
      definitionHash: forged.definitionHash,
      stage: forged.stage ?? null,
      data: forged.data,
      occurredAt: new Date(forged.occurredAt).toISOString(),
    };
    await tamper(
      ["UPDATE audit_events SET chain_index = chain_index + 1000000 WHERE tenant = 't-insert' AND chain_index >= 3"],
      ["UPDATE audit_events SET chain_index = chain_index - 999999 WHERE tenant = 't-insert' AND chain_index > 1000000"],
      [
        `INSERT INTO audit_events (id, tenant, chain_index, run_id, type, actor, pipeline, pipeline_version, definition_hash, stage, data,
           occurred_at, prev_hash, hash) VALUES ($1,$2,3,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)`,
        [fields.id, fields.tenant, fields.runId, fields.type, fields.actor, fields.pipeline, fields.pipelineVersion, fields.definitionHash,
          fields.stage, JSON.stringify(fields.data), fields.occurredAt, before.hash, chainHash(before.hash, fields)],
      ],
    );
    const res = await store.verify('t-insert');
    expect(res.broken).toMatchObject({ tenant: 't-insert', chainIndex: 3, id: forged.id, kind: 'inserted' });
    expect(res.broken?.reason).toMatch(/#3 was inserted: #4 links to #2/);
  });

  test('a forged event appended with a hash that only looks recomputed', async () => {
    await appendMany('t-forge', 3);
    const last = await row('t-forge', 3);
    await tamper([
      `INSERT INTO audit_events (id, tenant, chain_index, run_id, type, actor, data, occurred_at, prev_hash, hash)
       VALUES ('t-forge/r1#x', 't-forge', 4, 'r1', 'run.completed', 'mallory', '{}', now(), $1, $2)`,
      [last.hash, randomBytes(32).toString('hex')],
    ]);
    const res = await store.verify('t-forge');
    expect(res.broken).toMatchObject({ chainIndex: 4, id: 't-forge/r1#x', kind: 'edited' });
    expect(res.broken?.reason).toMatch(/forged/);
  });

  test('two events whose chain positions were swapped', async () => {
    await appendMany('t-swap', 5);
    await tamper(
      ["UPDATE audit_events SET chain_index = -1 WHERE tenant = 't-swap' AND chain_index = 2"],
      ["UPDATE audit_events SET chain_index = 2 WHERE tenant = 't-swap' AND chain_index = 4"],
      ["UPDATE audit_events SET chain_index = 4 WHERE tenant = 't-swap' AND chain_index = -1"],
    );
    const res = await store.verify('t-swap');
    expect(res.broken).toMatchObject({ chainIndex: 2, id: 't-swap/r1#4', kind: 'reordered' });
    expect(res.broken?.reason).toMatch(/out of order: it links to #3, not to #1/);
  });

  test('adjacent events swapped', async () => {
    await appendMany('t-swap2', 3);
    await tamper(
      ["UPDATE audit_events SET chain_index = -1 WHERE tenant = 't-swap2' AND chain_index = 1"],
      ["UPDATE audit_events SET chain_index = 1 WHERE tenant = 't-swap2' AND chain_index = 2"],
      ["UPDATE audit_events SET chain_index = 2 WHERE tenant = 't-swap2' AND chain_index = -1"],
    );
    expect((await store.verify('t-swap2')).broken).toMatchObject({ chainIndex: 1, id: 't-swap2/r1#2', kind: 'reordered' });
  });

  test('across all tenants, naming the tenant', async () => {
    const res = await store.verify();
    expect(res.ok).toBe(false);
    expect(res.tenants).toBeGreaterThan(5);
    expect(res.broken?.tenant).toMatch(/^t-/);
  });
});

describe('sealed fields', () => {
  test('ip, userAgent, comment and reason are stored sealed, the chain covers the sealed form, and the key opens them', async () => {
    const sealing = createAuditStore(db.pool, { sealKeys: testSealKeys });
    await sealing.append(event('t-seal', 'r1', 1, { type: 'run.started', data: { ip: '203.0.113.7', userAgent: 'agent/1.0', requestId: 'q1' } }));
    await sealing.append(event('t-seal', 'r1', 2, { type: 'approval.granted', data: { comment: 'approved, card verified', passes: true } }));
    await sealing.append(event('t-seal', 'r1', 3, { type: 'run.cancelled', data: { reason: 'customer withdrew', compensated: [] } }));
    const raw = await db.pool.query<{ data: string }>("SELECT data::text AS data FROM audit_events WHERE tenant = 't-seal'");
    expect(raw.rows.map((r) => r.data).join('\n')).not.toMatch(/203\.0\.113|agent\/1\.0|card verified|withdrew/);
    const events = await sealing.listByRun('t-seal', 'r1');
    expect(isSealed(events[0].data.ip)).toBe(true);
    expect(events[0].data.requestId).toBe('q1');
    // Verifying needs no key: a store without one checks the sealed form.
    await expect(store.verify('t-seal')).resolves.toMatchObject({ ok: true, events: 3 });
    expect(events.map((e) => unsealed(e).data)).toEqual([
      { ip: '203.0.113.7', userAgent: 'agent/1.0', requestId: 'q1' },
      { comment: 'approved, card verified', passes: true },
      { reason: 'customer withdrew', compensated: [] },
    ]);
  });
});

describe('reading', () => {
  beforeAll(async () => {
    const types = ['run.started', 'stage.completed', 'approval.granted', 'run.completed'] as const;
    for (let i = 1; i <= 8; i++) {
      await store.append(event('t-read', `p/r${i % 2}`, i, { type: types[i % 4], actor: i % 3 === 0 ? 'bob' : 'alice' }));
    }
  });

  test('pages through a tenant in chain order, with filters', async () => {
    const first = await store.page({ tenant: 't-read', limit: 3 });
    expect(first.events.map((e) => e.chainIndex)).toEqual([1, 2, 3]);
    expect(first.next).toBe(3);
    const rest = await store.page({ tenant: 't-read', after: first.next, limit: 10 });
    expect(rest.events.map((e) => e.chainIndex)).toEqual([4, 5, 6, 7, 8]);
    expect(rest.next).toBeUndefined();
    expect((await store.page({ tenant: 't-read', actor: 'bob' })).events.map((e) => e.chainIndex)).toEqual([3, 6]);
    expect((await store.page({ tenant: 't-read', runId: 'p/r1', types: ['stage.completed', 'approval.granted'] })).events.map((e) => e.chainIndex)).toEqual([
      1, 5,
    ]);
    expect((await store.page({ tenant: 't-read', types: ['run.started', 'run.completed'] })).events.map((e) => e.chainIndex)).toEqual([3, 4, 7, 8]);
    const window = await store.page({ tenant: 't-read', from: new Date(Date.UTC(2026, 0, 1, 0, 0, 3)), to: new Date(Date.UTC(2026, 0, 1, 0, 0, 5)) });
    expect(window.events.map((e) => e.chainIndex)).toEqual([3, 4]);
  });

  test('exports every event of a tenant in chain order', async () => {
    const out: number[] = [];
    for await (const e of store.exportEvents('t-read', 3)) out.push(e.chainIndex);
    expect(out).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });
});

describe('least privilege', () => {
  test('the application role may read and append, and not change history, even with the trigger in its way', async () => {
    const role = `agentry_test_app_${randomBytes(4).toString('hex')}`;
    await db.pool.query(`CREATE ROLE ${role} LOGIN IN ROLE agentry_app`);
    const url = new URL(db.url);
    url.username = role;
    const app = new Pool({ connectionString: url.toString(), max: 2 });
    try {
      // Processes call migrate at start: with nothing pending, the application role may.
      await expect(migrate(url.toString())).resolves.toEqual([]);
      const appStore = createAuditStore(app);
      await appStore.append(event('t-role', 'r1', 1));
      await appStore.append(event('t-role', 'r1', 2));
      await expect(appStore.verify('t-role')).resolves.toMatchObject({ ok: true, events: 2 });
      await expect(app.query("UPDATE audit_events SET actor = 'x' WHERE tenant = 't-role'")).rejects.toThrow(/permission denied/);
      await expect(app.query("DELETE FROM audit_events WHERE tenant = 't-role'")).rejects.toThrow(/permission denied/);
      await expect(app.query('TRUNCATE audit_events')).rejects.toThrow(/permission denied/);
      await expect(app.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only')).rejects.toThrow(/must be owner/);
      // Claim checks overwrite their own payload on a retried stage.
      await app.query("INSERT INTO stage_payloads (id, tenant, run_id, stage, sha256, bytes, body) VALUES ('c1', 't-role', 'r1', 's', 'h', 2, '{}')");
      await app.query("INSERT INTO stage_payloads (id, tenant, run_id, stage, sha256, bytes, body) VALUES ('c1', 't-role', 'r1', 's', 'h', 2, '[]') ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body");
    } finally {
      await app.end();
      await db.pool.query(`DROP ROLE ${role}`);
    }
  });

  test('the grants can be applied again, by the migration user', async () => {
    await expect(db.pool.query('SELECT agentry_apply_app_privileges() AS r')).resolves.toMatchObject({ rows: [{ r: 'granted' }] });
  });
});

test('a NUL from a caller (signal field, token subject) is stored as U+FFFD instead of failing every retry', async () => {
  const res = await store.append(event('t-nul', 'r1', 1, { actor: 'a\u0000b', data: { fields: ['x\u0000y'], ['k\u0000']: 'v\u0000' } }));
  expect(res.inserted).toBe(true);
  const [row] = await store.listByRun('t-nul', 'r1');
  expect(row.actor).toBe('a\ufffdb');
  expect(row.data).toEqual({ fields: ['x\ufffdy'], 'k\ufffd': 'v\ufffd' });
  await expect(store.verify('t-nul')).resolves.toMatchObject({ ok: true });
});

test('a lone surrogate (which PostgreSQL stores as U+FFFD) is hashed as stored, so the chain still verifies', async () => {
  const res = await store.append(event('t-surrogate', 'r1', 1, { actor: 'a\ud800', data: { note: 'x\udc00y', ['k\ud83d']: 'ok \ud83d\ude00' } }));
  expect(res.inserted).toBe(true);
  const [row] = await store.listByRun('t-surrogate', 'r1');
  expect(row.actor).toBe('a\ufffd');
  // A proper pair (an emoji) is text and stays as it is.
  expect(row.data).toEqual({ note: 'x\ufffdy', 'k\ufffd': 'ok \ud83d\ude00' });
  await store.append(event('t-surrogate', 'r1', 2));
  await expect(store.verify('t-surrogate')).resolves.toMatchObject({ ok: true });
});
