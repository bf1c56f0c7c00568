import { createAuditStore, type AuditStore } from '../../src/audit';
import type { AuditEventInput } from '../../src/contracts';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres';

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

/** Runs SQL as the superuser with the append-only trigger off: how an attacker with database access would edit. */
async function tamper(sql: string, params: unknown[] = []): Promise<void> {
  const c = await db.pool.connect();
  try {
    await c.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only');
    await c.query(sql, params);
  } finally {
    await c.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only');
    c.release();
  }
}

test('appends events as a hash chain that verifies', async () => {
  for (let i = 1; i <= 5; i++) await store.append(event('t-chain', 'r1', i));
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

test('verify names the edited event', async () => {
  for (let i = 1; i <= 3; i++) await store.append(event('t-edit', 'r1', i));
  await tamper(`UPDATE audit_events SET data = '{"attempts": 9}' WHERE tenant = 't-edit' AND chain_index = 2`);
  const res = await store.verify('t-edit');
  expect(res.ok).toBe(false);
  expect(res.broken).toMatchObject({ tenant: 't-edit', chainIndex: 2 });
  expect(res.broken?.reason).toMatch(/edited/);
});

test('verify names the gap a deleted event leaves', async () => {
  for (let i = 1; i <= 3; i++) await store.append(event('t-delete', 'r1', i));
  await tamper("DELETE FROM audit_events WHERE tenant = 't-delete' AND chain_index = 2");
  const res = await store.verify('t-delete');
  expect(res).toMatchObject({ ok: false, broken: { chainIndex: 3 } });
  expect(res.broken?.reason).toMatch(/missing/);
});
