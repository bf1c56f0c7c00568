import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createAuditStore, type AuditStore } from '../../src/audit';
import { BackupError, createBackupService, newBackupId, type BackupService } from '../../src/backup';
import { SYSTEM_TENANT, type AuditEventInput } from '../../src/contracts';
import { testSealKeys, unsealed } from '../helpers/audit-seal';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres';

const ROOT = resolve(__dirname, '..', '..');
const PIPELINES = join(ROOT, 'src/pipelines/definitions');
const SECRET = 'jwt-secret-that-must-not-leave-the-process-0123456789';

let db: TestDatabase;
let audit: AuditStore;

/** The configuration a backup records: a secret and a URL with a password among ordinary settings. */
const config = () => ({ JWT_SECRET: SECRET, DATABASE_URL: 'postgres://agentry:db-password-42@db:5432/agentry', BACKUP_KEEP: 7, PIPELINES_DIR: PIPELINES });

function backups(opts: Partial<Parameters<typeof createBackupService>[0]> = {}): BackupService {
  return createBackupService({
    pool: db.pool,
    databaseUrl: db.url,
    audit,
    dir: mkdtempSync(join(tmpdir(), 'agentry-backups-')),
    pipelinesDir: PIPELINES,
    config: config(),
    ...opts,
  });
}

function event(tenant: string, seq: number, data: Record<string, unknown> = {}): AuditEventInput {
  return {
    id: `${tenant}/support-triage/r1#${seq}`,
    tenant,
    runId: 'support-triage/r1',
    type: seq === 1 ? 'run.started' : 'stage.completed',
    actor: 'alice',
    pipeline: 'support-triage',
    pipelineVersion: 2,
    definitionHash: 'd'.repeat(64),
    data: { seq, ...data },
    occurredAt: Date.UTC(2026, 0, 1, 0, 0, seq),
  };
}

/** Rows per tenant and per table: what a restore must bring back exactly. */
async function counts(): Promise<Record<string, number>> {
  const res = await db.pool.query<{ k: string; n: number }>(
    `SELECT 'events:' || tenant AS k, count(*)::int AS n FROM audit_events WHERE tenant <> $1 GROUP BY tenant
     UNION ALL SELECT 'stage_payloads', count(*)::int FROM stage_payloads
     UNION ALL SELECT 'llm_usage', count(*)::int FROM llm_usage
     UNION ALL SELECT 'llm_usage_tokens', COALESCE(sum(tokens), 0)::int FROM llm_usage`,
    [SYSTEM_TENANT],
  );
  return Object.fromEntries(res.rows.map((r) => [r.k, r.n]));
}

beforeAll(async () => {
  db = await createTestDatabase();
  audit = createAuditStore(db.pool, { sealKeys: testSealKeys });
  for (const tenant of ['acme', 'globex']) {
    for (let i = 1; i <= 6; i++) await audit.append(event(tenant, i, i === 1 ? { ip: '198.51.100.23', userAgent: 'curl/8' } : { attempts: 1 }));
  }
  for (let i = 0; i < 3; i++) {
    await db.pool.query("INSERT INTO stage_payloads (id, tenant, run_id, stage, sha256, bytes, body) VALUES ($1, 'acme', 'support-triage/r1', 'reply', 'h', 2, '{}')", [`claim-${i}`]);
  }
  // LLM spend counts against daily budgets: a restore must bring it back. Two attempts of one stage, and a repair call.
  for (const [attempt, call] of [[1, 1], [2, 1], [2, 2]]) {
    await db.pool.query(
      `INSERT INTO llm_usage (idempotency_key, attempt, call, tenant, run_id, stage, model, day, status, reserved_tokens, tokens, cost_usd)
       VALUES ('acme/support-triage/r1/draft', $1, $2, 'acme', 'support-triage/r1', 'draft', 'm', '2026-01-01', 'recorded', 300, $3, 0.000123)`,
      [attempt, call, 100 * attempt + call],
    );
  }
});
afterAll(() => db.drop());

test('backup, drop the schema, restore: every chain verifies and the counts are equal (pg_dump)', async () => {
  const svc = backups();
  const s = await svc.create({ actor: 'test' });
  expect(s).toMatchObject({ databaseFormat: 'pg_dump', existing: false, rows: { audit_events: 12, stage_payloads: 3, llm_usage: 3 } });
  const manifest = JSON.parse(readFileSync(join(s.path, 'manifest.json'), 'utf8'));
  expect(manifest.files.map((f: { path: string }) => f.path)).toEqual(
    expect.arrayContaining(['config.json', 'database/database.sql', ...readdirSync(PIPELINES).map((f) => `pipelines/${f}`)]),
  );
  expect(manifest.database.chainHeads).toMatchObject({ acme: { chainIndex: 6 }, globex: { chainIndex: 6 } });
  const cfg = readFileSync(join(s.path, 'config.json'), 'utf8');
  expect(cfg).not.toContain(SECRET);
  expect(cfg).not.toContain('db-password-42');
  const created = (await audit.listByRun(SYSTEM_TENANT, s.id)).find((e) => e.type === 'backup.created');
  expect(created).toMatchObject({ actor: 'test', data: { manifestSha256: s.manifestSha256 } });
  await expect(svc.verify(s.id)).resolves.toMatchObject({ ok: true, problems: [], recorded: 'match' });

  const before = await counts();
  await db.pool.query('DROP SCHEMA public CASCADE');
  const r = await svc.restore(s.id, { actor: 'restorer' });
  expect(r.rows).toMatchObject({ audit_events: 12, stage_payloads: 3, llm_usage: 3 });
  expect(await counts()).toEqual(before);
  await expect(audit.verify()).resolves.toMatchObject({ ok: true });
  // The restore is recorded after the restored events; sealed fields still open with the same keys.
  const system = await audit.page({ tenant: SYSTEM_TENANT });
  expect(system.events[system.events.length - 1]).toMatchObject({ type: 'backup.restored', actor: 'restorer', runId: s.id });
  const started = (await audit.listByRun('acme', 'support-triage/r1'))[0];
  expect(unsealed(started).data).toMatchObject({ ip: '198.51.100.23', userAgent: 'curl/8' });
  // The application role's grants come back too (dumps are taken without privileges).
  const grants = await db.pool.query("SELECT has_table_privilege('agentry_app', 'audit_events', 'INSERT') AS i, has_table_privilege('agentry_app', 'audit_events', 'UPDATE') AS u");
  expect(grants.rows[0]).toEqual({ i: true, u: false });
});

test('a backup can be restored again after a restore (its backup.restored vouches for it)', async () => {
  const svc = backups();
  const s = await svc.create({ actor: 'test' });
  const before = await counts();
  await svc.restore(s.id, { actor: 'first' });
  await expect(svc.verify(s.id)).resolves.toMatchObject({ ok: true, recorded: 'match' });
  await svc.restore(s.id, { actor: 'second' });
  expect(await counts()).toEqual(before);
  await expect(audit.verify()).resolves.toMatchObject({ ok: true });
});

test('without pg_dump, a logical NDJSON export restores the same way', async () => {
  const svc = backups({ pgDump: null });
  const s = await svc.create({ actor: 'test' });
  expect(s.databaseFormat).toBe('ndjson');
  const before = await counts();
  await db.pool.query('DROP SCHEMA public CASCADE');
  await svc.restore(s.id, { actor: 'restorer' });
  expect(await counts()).toEqual(before);
  await expect(audit.verify()).resolves.toMatchObject({ ok: true });
});

test('a pg_dump older than the server (which would refuse it) falls back to the logical export', async () => {
  const bin = mkdtempSync(join(tmpdir(), 'agentry-old-pg-dump-'));
  const oldPgDump = join(bin, 'pg_dump');
  writeFileSync(oldPgDump, '#!/bin/sh\necho "pg_dump (PostgreSQL) 9.6.24"\n', { mode: 0o755 });
  const s = await backups({ pgDump: oldPgDump }).create({ actor: 'test' });
  expect(s.databaseFormat).toBe('ndjson');
  expect(JSON.parse(readFileSync(join(s.path, 'manifest.json'), 'utf8')).database.tool).toMatch(/9\.6\.24 is older than the server/);
});

test('a backup with an altered file fails verification naming the file, and is not restored', async () => {
  const svc = backups();
  const s = await svc.create({ actor: 'test' });
  const dump = join(s.path, 'database', 'database.sql');
  writeFileSync(dump, readFileSync(dump, 'utf8').replace('alice', 'alicf'));
  await expect(svc.verify(s.id)).resolves.toMatchObject({ ok: false, problems: [{ path: 'database/database.sql', problem: 'sha256 differs' }] });
  const eventsBefore = (await db.pool.query('SELECT count(*)::int AS n FROM audit_events')).rows[0].n;
  await expect(svc.restore(s.id, { actor: 'x' })).rejects.toThrow(BackupError);
  await expect(svc.restore(s.id, { actor: 'x' })).rejects.toThrow(/database\/database.sql sha256 differs\); nothing was restored/);
  expect((await db.pool.query('SELECT count(*)::int AS n FROM audit_events')).rows[0].n).toBe(eventsBefore);
});

test('a manifest rewritten to match altered files no longer matches the audit trail', async () => {
  const svc = backups();
  const s = await svc.create({ actor: 'test' });
  const configFile = join(s.path, 'config.json');
  writeFileSync(configFile, '{"values":{}}\n');
  const manifestFile = join(s.path, 'manifest.json');
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
  const entry = manifest.files.find((f: { path: string }) => f.path === 'config.json');
  const text = readFileSync(configFile);
  Object.assign(entry, { bytes: text.length, sha256: createHash('sha256').update(text).digest('hex') });
  writeFileSync(manifestFile, JSON.stringify(manifest, null, 2));
  await expect(svc.verify(s.id)).resolves.toMatchObject({ ok: false, problems: [], recorded: 'mismatch' });
});

test('keeps the newest BACKUP_KEEP backups', async () => {
  const svc = backups({ keep: 2 });
  const ids = [1, 2, 3].map((h) => newBackupId(new Date(Date.UTC(2026, 0, 1, h)), `k${h}`));
  for (const id of ids) await svc.create({ id, actor: 'test' });
  expect((await svc.list()).map((b) => b.id)).toEqual([ids[2], ids[1]]);
});

test('taking a backup again under the same id (a retried activity) answers the finished one', async () => {
  const svc = backups();
  const id = newBackupId(new Date(), 'retry');
  const first = await svc.create({ id, actor: 'schedule:test' });
  const again = await svc.create({ id, actor: 'schedule:test' });
  expect(again).toEqual({ ...first, existing: true });
  expect((await audit.listByRun(SYSTEM_TENANT, id)).filter((e) => e.type === 'backup.created')).toHaveLength(1);
  expect(await svc.list()).toHaveLength(1);
});

/** A copy of a backup folder under another id, its manifest saying that id (as a careful forger would). */
function plantCopy(from: string, id: string): string {
  const to = join(dirname(from), id);
  cpSync(from, to, { recursive: true });
  editManifest(to, (m) => Object.assign(m, { id }));
  return to;
}

function editManifest(folder: string, edit: (m: Record<string, unknown>) => void): void {
  const file = join(folder, 'manifest.json');
  const manifest = JSON.parse(readFileSync(file, 'utf8'));
  edit(manifest);
  writeFileSync(file, JSON.stringify(manifest, null, 2));
}

test('a manifest that names another folder, or lacks fields, is skipped with a warning and never deleted; nothing outside is touched', async () => {
  const warnings: string[] = [];
  const svc = backups({ keep: 1, warn: (l) => warnings.push(l) });
  const first = await svc.create({ id: newBackupId(new Date(Date.UTC(2026, 0, 2)), 'real'), actor: 'test' });
  const victim = mkdtempSync(join(tmpdir(), 'agentry-backup-victim-'));
  writeFileSync(join(victim, 'keep-me'), 'x');
  // An old-looking folder whose manifest points prune at a folder outside BACKUP_DIR...
  const evil = plantCopy(first.path, '20190101T000000Z-evil');
  editManifest(evil, (m) => Object.assign(m, { id: `../../${victim.split('/').pop()}`, createdAt: '2019-01-01T00:00:00Z' }));
  // ...one that says it is the real backup, and one without its database section.
  const twin = plantCopy(first.path, '20190101T000000Z-twin');
  editManifest(twin, (m) => Object.assign(m, { id: first.id }));
  const broken = plantCopy(first.path, '20190101T000000Z-broken');
  editManifest(broken, (m) => delete m.database);

  expect((await svc.list()).map((b) => b.id)).toEqual([first.id]);
  expect(warnings.sort()).toEqual([
    expect.stringMatching(/^skipping .*20190101T000000Z-broken: .*manifest.json is not an agentry-backup\/1 manifest: \/database: /),
    expect.stringMatching(/^skipping .*20190101T000000Z-evil: .*: \/id: expected a backup id/),
    expect.stringMatching(/^skipping .*20190101T000000Z-twin: .*: \/id: "\d{8}T\d{6}Z-real" is not its folder's name "20190101T000000Z-twin"$/),
  ]);
  // A new backup prunes down to one: the real one goes (it is older), the unusable folders stay, the victim too.
  const second = await svc.create({ actor: 'test' });
  expect((await svc.list()).map((b) => b.id)).toEqual([second.id]);
  expect(readdirSync(dirname(first.path)).sort()).toEqual(['20190101T000000Z-broken', '20190101T000000Z-evil', '20190101T000000Z-twin', second.id].sort());
  expect(readFileSync(join(victim, 'keep-me'), 'utf8')).toBe('x');
  rmSync(victim, { recursive: true });
});

test('a backup that loads but whose audit trail does not verify is undone: the database is as it was', async () => {
  const svc = backups();
  const s = await svc.create({ actor: 'test' });
  // A forged copy: an event's actor edited in the dump, every sum in the manifest made to match.
  const forged = plantCopy(s.path, s.id.replace(/-[0-9a-f]+$/, '-f0f0f0'));
  const dump = join(forged, 'database', 'database.sql');
  writeFileSync(dump, readFileSync(dump, 'utf8').replace('\talice\t', '\tmallory\t'));
  const text = readFileSync(dump);
  editManifest(forged, (m) => {
    const entry = (m.files as { path: string; bytes: number; sha256: string }[]).find((f) => f.path === 'database/database.sql')!;
    Object.assign(entry, { bytes: text.length, sha256: createHash('sha256').update(text).digest('hex') });
  });
  await expect(svc.verify(forged.split('/').pop())).resolves.toMatchObject({ ok: true, recorded: 'unrecorded' });
  await audit.append(event('initech', 1));
  const before = await counts();
  await expect(svc.restore(forged.split('/').pop()!, { actor: 'x', allowUnrecorded: true })).rejects.toThrow(
    /loads, but its audit trail does not verify: tenant "(acme|globex)" event #\d+ .*; the database was put back as it was before the restore$/,
  );
  expect(await counts()).toEqual(before);
  await expect(audit.verify()).resolves.toMatchObject({ ok: true });
  rmSync(forged, { recursive: true });
});

test('a folder planted in the backup directory, or a manifest naming files outside it, is not restored', async () => {
  const svc = backups();
  const s = await svc.create({ actor: 'test' });
  // A copy under a new id: its files match its manifest, but the audit trail never recorded its creation.
  const plantedId = s.id.replace(/-[0-9a-f]+$/, '-0000beef');
  const planted = plantCopy(s.path, plantedId);
  await expect(svc.verify(plantedId)).resolves.toMatchObject({ ok: true, recorded: 'unrecorded' });
  const eventsBefore = (await db.pool.query('SELECT count(*)::int AS n FROM audit_events')).rows[0].n;
  await expect(svc.restore(plantedId, { actor: 'x' })).rejects.toThrow(/not recorded in the audit trail .*--allow-unrecorded/);
  expect((await db.pool.query('SELECT count(*)::int AS n FROM audit_events')).rows[0].n).toBe(eventsBefore);

  // A manifest that lists a file outside the folder (with that file's true sum) fails verification, naming it.
  const manifestFile = join(planted, 'manifest.json');
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
  const outside = join(dirname(s.path), 'outside.txt');
  writeFileSync(outside, 'x');
  manifest.files.push({ path: '../outside.txt', sha256: createHash('sha256').update('x').digest('hex'), bytes: 1 });
  writeFileSync(manifestFile, JSON.stringify(manifest));
  await expect(svc.verify(plantedId)).resolves.toMatchObject({ ok: false, problems: [{ path: '../outside.txt', problem: 'outside the backup folder' }] });
  // And one that is not JSON is unreadable, not missing.
  writeFileSync(manifestFile, '{not json');
  await expect(svc.verify(plantedId)).resolves.toMatchObject({ ok: false, problems: [{ path: 'manifest.json', problem: 'unreadable' }] });
  rmSync(planted, { recursive: true });
  rmSync(outside);
});
