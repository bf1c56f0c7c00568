import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Pool } from 'pg';
import { chainHash, createAuditStore, GENESIS_HASH, HEADS_FORMAT, type AuditStore } from '../../src/audit';
import type { AuditEventInput } from '../../src/contracts';
import { TEST_AUDIT_SEAL_KEYS } from '../helpers/audit-seal';
import { createTestDatabase, tamperAuditTrail, type TestDatabase } from '../helpers/postgres';
import { cliEnv, runCli, type CliResult } from '../helpers/processes';

// Two databases: the store tests break chains on purpose, and the command-line tests verify whole trails.
let storeDb: TestDatabase;
let cliDb: TestDatabase;
let store: AuditStore;
let env: Record<string, string>;

function event(tenant: string, seq: number, data: Record<string, unknown> = { seq }): AuditEventInput {
  return {
    id: `${tenant}/support-triage/r1#${seq}`,
    tenant,
    runId: 'support-triage/r1',
    type: 'stage.completed',
    actor: 'worker',
    pipeline: 'support-triage',
    pipelineVersion: 1,
    definitionHash: 'e'.repeat(64),
    stage: 'classify',
    data,
    occurredAt: Date.UTC(2026, 0, 1, 0, 0, seq),
  };
}

async function appendEvents(s: AuditStore, tenant: string, from: number, to: number): Promise<void> {
  for (let i = from; i <= to; i++) await s.append(event(tenant, i));
}

/** Runs SQL the append-only trigger would refuse, as the superuser that owns the test database. */
function tamper(pool: Pool, sql: string, params: unknown[]): Promise<void> {
  return tamperAuditTrail(pool, [sql, params]);
}

/**
 * Rewrites a tenant's chain from `from` on the way a careful forger would: new content for that event, and every
 * hash from there recomputed, so the chain itself still verifies.
 */
async function rewriteFrom(tenant: string, from: number): Promise<void> {
  const events = [];
  for await (const e of store.exportEvents(tenant)) events.push(e);
  let prevHash = events[from - 2]?.hash ?? GENESIS_HASH;
  for (const e of events.slice(from - 1)) {
    const { prevHash: _p, hash: _h, recordedAt: _r, ...fields } = e;
    const data = e.chainIndex === from ? { ...e.data, forged: true } : e.data;
    const hash = chainHash(prevHash, { ...fields, data });
    await tamper(storeDb.pool, 'UPDATE audit_events SET data = $1, prev_hash = $2, hash = $3 WHERE tenant = $4 AND chain_index = $5', [
      JSON.stringify(data),
      prevHash,
      hash,
      tenant,
      e.chainIndex,
    ]);
    prevHash = hash;
  }
}

beforeAll(async () => {
  [storeDb, cliDb] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  store = createAuditStore(storeDb.pool);
  env = cliEnv(cliDb.url, 'anchor', { AUDIT_SEAL_KEYS: TEST_AUDIT_SEAL_KEYS });
});
afterAll(() => Promise.all([storeDb?.drop(), cliDb?.drop()]));

describe('audit store anchors', () => {
  test('heads answers the last position and hash of each chain, or of one tenant', async () => {
    await appendEvents(store, 'heads-a', 1, 3);
    await appendEvents(store, 'heads-b', 1, 2);
    const last = (await store.page({ tenant: 'heads-a', after: 2 })).events[0];
    const heads = await store.heads();
    expect(heads['heads-a']).toEqual({ chainIndex: 3, hash: last.hash });
    expect(heads['heads-b']).toMatchObject({ chainIndex: 2 });
    expect(await store.heads('heads-a')).toEqual({ 'heads-a': heads['heads-a'] });
    expect(await store.heads('heads-none')).toEqual({});
  });

  test('an untouched chain keeps its anchored head in place, also after more events are appended', async () => {
    await appendEvents(store, 'untouched', 1, 4);
    const anchors = await store.heads('untouched');
    await appendEvents(store, 'untouched', 5, 6);
    expect(await store.checkAnchors(anchors)).toEqual({ ok: true, checked: 1 });
    // With a tenant, only its anchored head is checked.
    expect(await store.checkAnchors({ ...anchors, elsewhere: { chainIndex: 1, hash: 'a'.repeat(64) } }, 'untouched')).toEqual({ ok: true, checked: 1 });
  });

  test('deleting the last two events verifies as a chain, but the anchor says truncated', async () => {
    await appendEvents(store, 'truncated', 1, 5);
    const anchors = await store.heads('truncated');
    await tamper(storeDb.pool, 'DELETE FROM audit_events WHERE tenant = $1 AND chain_index > 3', ['truncated']);

    expect(await store.verify('truncated')).toMatchObject({ ok: true, events: 3 });
    const check = await store.checkAnchors(anchors, undefined, 'heads.json');
    expect(check).toMatchObject({ ok: false, checked: 1, broken: { tenant: 'truncated', chainIndex: 5, kind: 'truncated' } });
    expect(check.broken?.reason).toMatch(/^the chain ends at #3, but heads\.json recorded its head at #5/);
  });

  test('a chain rewritten from #3 with recomputed hashes verifies, but the anchor says rewritten; a head before #3 still holds', async () => {
    await appendEvents(store, 'rewritten', 1, 5);
    const earlier = (await store.page({ tenant: 'rewritten', after: 1, limit: 1 })).events[0];
    const anchors = await store.heads('rewritten');
    await rewriteFrom('rewritten', 3);

    expect(await store.verify('rewritten')).toMatchObject({ ok: true, events: 5 });
    const check = await store.checkAnchors(anchors);
    expect(check).toMatchObject({ ok: false, checked: 1, broken: { tenant: 'rewritten', chainIndex: 5, kind: 'rewritten' } });
    expect(check.broken?.reason).toMatch(/^event #5 has hash [0-9a-f]{12}…, but the anchor recorded [0-9a-f]{12}… there: the chain was rewritten from #5 or earlier/);
    // The hash at #2 covers #1 and #2, which were left alone.
    expect(await store.checkAnchors({ rewritten: { chainIndex: 2, hash: earlier.hash } })).toEqual({ ok: true, checked: 1 });
  });

  test('a chain cut short and extended again with correctly computed hashes is rewritten at the anchored position', async () => {
    await appendEvents(store, 'regrown', 1, 5);
    const anchors = await store.heads('regrown');
    await tamper(storeDb.pool, 'DELETE FROM audit_events WHERE tenant = $1 AND chain_index > 3', ['regrown']);
    for (let i = 1; i <= 3; i++) await store.append({ ...event('regrown', 100 + i), data: { replacement: i } });

    expect(await store.verify('regrown')).toMatchObject({ ok: true, events: 6 });
    expect(await store.checkAnchors(anchors)).toMatchObject({ ok: false, broken: { chainIndex: 5, kind: 'rewritten' } });
  });

  test('a tenant whose events were all deleted is truncated', async () => {
    await appendEvents(store, 'emptied', 1, 3);
    const anchors = await store.heads('emptied');
    await tamper(storeDb.pool, 'DELETE FROM audit_events WHERE tenant = $1', ['emptied']);

    const check = await store.checkAnchors(anchors);
    expect(check).toMatchObject({ ok: false, checked: 1, broken: { tenant: 'emptied', chainIndex: 3, kind: 'truncated' } });
    expect(check.broken?.reason).toBe('the tenant has no events left, but the anchor recorded its head at #3');
  });

  test('an anchored event missing from the middle of a chain is deleted (verify names the gap first)', async () => {
    await appendEvents(store, 'gap', 1, 5);
    const third = (await store.page({ tenant: 'gap', after: 2, limit: 1 })).events[0];
    await tamper(storeDb.pool, 'DELETE FROM audit_events WHERE tenant = $1 AND chain_index = 3', ['gap']);

    expect(await store.verify('gap')).toMatchObject({ ok: false, broken: { kind: 'deleted' } });
    expect(await store.checkAnchors({ gap: { chainIndex: third.chainIndex, hash: third.hash } })).toMatchObject({
      ok: false,
      broken: { chainIndex: 3, kind: 'deleted', reason: 'event #3 is missing, but the anchor recorded its head at #3 and the chain goes on to #5' },
    });
  });
});

describe('audit heads and audit verify --anchor / --backup from the command line', () => {
  const agentry = (...args: string[]): Promise<CliResult> => runCli(args, env);
  const noStack = (r: CliResult) => expect(`${r.stdout}${r.stderr}`).not.toMatch(/\n\s+at /);

  test('a truncated chain verifies on its own but fails against the heads file and the backup taken before', async () => {
    const cli = createAuditStore(cliDb.pool);
    await appendEvents(cli, 'cli-a', 1, 5);
    await appendEvents(cli, 'cli-b', 1, 3);
    const headsFile = join(env.AGENTRY_STATE_DIR, 'heads.json');

    const [heads, oneTenant] = await Promise.all([agentry('audit', 'heads', '--out', headsFile), agentry('audit', 'heads', '--tenant', 'cli-b')]);
    expect(heads.code).toBe(0);
    expect(heads.stderr).toContain(`heads of 2 tenant chain(s) written to ${headsFile}`);
    const written = JSON.parse(readFileSync(headsFile, 'utf8'));
    expect(written).toEqual({ format: HEADS_FORMAT, takenAt: expect.any(String), chainHeads: await cli.heads() });
    expect(Number.isNaN(Date.parse(written.takenAt))).toBe(false);
    expect(oneTenant.code).toBe(0);
    expect(Object.keys(JSON.parse(oneTenant.stdout).chainHeads)).toEqual(['cli-b']);

    const created = await agentry('backup', 'create', '--actor', 'anchor-test');
    expect(created.code).toBe(0);
    const id = /backup (\S+) written/.exec(created.stdout)?.[1];
    expect(id).toBeDefined();

    // backup.created extends the _system chain (8 events in 3 chains); the anchors were taken before it.
    const [fromFile, fromBackup, fromFolder, oneAnchored] = await Promise.all([
      agentry('audit', 'verify', '--anchor', headsFile),
      agentry('audit', 'verify', '--backup', id!),
      agentry('audit', 'verify', '--anchor', join(env.BACKUP_DIR, id!), '--anchor', headsFile),
      agentry('audit', 'verify', '--tenant', 'cli-b', '--anchor', headsFile),
    ]);
    expect(fromFile.stdout).toContain(`audit trail verified: 9 events in 3 tenant chain(s); 2 anchored heads from ${headsFile} still in place`);
    expect(fromFile.code).toBe(0);
    expect(fromBackup.stdout).toContain(`audit trail verified: 9 events in 3 tenant chain(s); 2 anchored heads from backup ${id} still in place`);
    expect(fromBackup.code).toBe(0);
    expect(fromFolder.stdout).toContain(`; 4 anchored heads from ${join(env.BACKUP_DIR, id!, 'manifest.json')} and ${headsFile} still in place`);
    expect(fromFolder.code).toBe(0);
    expect(oneAnchored.stdout).toContain(`audit trail verified: 3 events in 1 tenant chain(s); 1 anchored head from ${headsFile} still in place`);
    expect(oneAnchored.code).toBe(0);

    await tamper(cliDb.pool, 'DELETE FROM audit_events WHERE tenant = $1 AND chain_index > 3', ['cli-a']);
    const [plain, againstFile, againstBackup, otherTenant] = await Promise.all([
      agentry('audit', 'verify'),
      agentry('audit', 'verify', '--anchor', headsFile),
      agentry('audit', 'verify', '--backup', id!),
      agentry('audit', 'verify', '--tenant', 'cli-b', '--backup', id!),
    ]);
    // Recomputing the chains alone cannot see a cut at the end: that is what the anchors are for.
    expect(plain.code).toBe(0);
    expect(againstFile.stdout).toContain(`audit trail BROKEN (truncated): tenant "cli-a": the chain ends at #3, but ${headsFile} recorded its head at #5`);
    expect(againstFile.code).toBe(1);
    expect(againstBackup.stdout).toContain(`audit trail BROKEN (truncated): tenant "cli-a": the chain ends at #3, but backup ${id} recorded its head at #5`);
    expect(againstBackup.code).toBe(1);
    expect(otherTenant.code).toBe(0);
  });

  test('a bad anchor, an unknown backup, a tenant without events or an unwritable --out fails with a message naming the file and field', async () => {
    const dir = env.AGENTRY_STATE_DIR;
    const badHash = join(dir, 'bad-hash.json');
    writeFileSync(
      badHash,
      JSON.stringify({ format: HEADS_FORMAT, takenAt: '2026-01-01T00:00:00.000Z', chainHeads: { acme: { chainIndex: 3, hash: 'not-a-hash' } } }),
    );
    const notJson = join(dir, 'not-json.json');
    writeFileSync(notJson, '{\n  "format": "agentry-audit-heads/1",\n  chainHeads: {}\n}\n');
    const unwritable = join(dir, 'no-such-folder', 'heads.json');
    const [hash, json, missing, unknown, notAnId, noTenant, noFolder] = await Promise.all([
      agentry('audit', 'verify', '--anchor', badHash),
      agentry('audit', 'verify', '--anchor', notJson),
      agentry('audit', 'verify', '--anchor', join(dir, 'nowhere.json')),
      agentry('audit', 'verify', '--backup', '20990101T000000Z-none'),
      agentry('audit', 'verify', '--backup', '../elsewhere'),
      agentry('audit', 'heads', '--tenant', 'cli-nobody'),
      agentry('audit', 'heads', '--out', unwritable),
    ]);
    for (const r of [hash, json, missing, unknown, notAnId, noTenant, noFolder]) {
      expect(r.code).toBe(1);
      noStack(r);
      expect(r.stdout).not.toMatch(/audit trail verified/);
    }
    expect(hash.stderr).toContain(`agentry: ${badHash}: chainHeads.acme.hash: expected 64 hex characters`);
    expect(json.stderr).toContain(`agentry: ${notJson}: not JSON: expected double-quoted property name at line 3, column 3`);
    expect(missing.stderr).toContain(`${join(dir, 'nowhere.json')}: cannot read the anchor: no such file or folder`);
    expect(unknown.stderr).toContain(
      `there is no backup 20990101T000000Z-none: looked for ${join(env.BACKUP_DIR, '20990101T000000Z-none', 'manifest.json')}`,
    );
    expect(notAnId.stderr).toContain('--backup: "../elsewhere" is not a backup id');
    expect(noTenant.stderr).toContain('tenant "cli-nobody" has no audit events (check the tenant name); no heads were written');
    expect(noFolder.stderr).toContain(`agentry: --out: cannot write ${unwritable}: its folder does not exist`);
  });
});
