import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAuditStore } from '../../src/audit';
import type { AuditEventInput } from '../../src/contracts';
import { TEST_AUDIT_SEAL_KEYS, testSealKeys } from '../helpers/audit-seal';
import { createTestDatabase, tamperAuditTrail, type TestDatabase } from '../helpers/postgres';
import { cliEnv, runCli, type CliResult } from '../helpers/processes';


let db: TestDatabase;
let env: Record<string, string>;

/** Runs `agentry ...` as a real process; resolves with its exit code and output. */
function agentry(...args: string[]): Promise<CliResult> {
  return agentryWith({}, ...args);
}

/** `agentry ...` with some environment variables replaced (another database). */
function agentryWith(overrides: Record<string, string>, ...args: string[]): Promise<CliResult> {
  return runCli(args, { ...env, ...overrides });
}

function event(tenant: string, seq: number, data: Record<string, unknown>): AuditEventInput {
  return {
    id: `${tenant}/support-triage/r1#${seq}`,
    tenant,
    runId: 'support-triage/r1',
    type: 'approval.granted',
    actor: 'bob',
    pipeline: 'support-triage',
    pipelineVersion: 2,
    definitionHash: 'f'.repeat(64),
    stage: 'review',
    data,
    occurredAt: Date.UTC(2026, 0, 1, 0, 0, seq),
  };
}

beforeAll(async () => {
  db = await createTestDatabase();
  const store = createAuditStore(db.pool, { sealKeys: testSealKeys });
  for (let i = 1; i <= 3; i++) {
    await store.append(event('cli-ok', i, { comment: `comment ${i}`, passes: true }));
    await store.append(event('cli-bad', i, { passes: true }));
  }
  await tamperAuditTrail(db.pool, [`UPDATE audit_events SET data = '{"passes": false}' WHERE tenant = 'cli-bad' AND chain_index = 2`]);
  env = cliEnv(db.url, 'cli', { AUDIT_SEAL_KEYS: TEST_AUDIT_SEAL_KEYS });
});
afterAll(() => db.drop());

test('audit verify, audit export --unseal and backup create / verify work from the command line', async () => {
  const out = join(env.AGENTRY_STATE_DIR, 'cli-ok.ndjson');
  const [verify, exported, created] = await Promise.all([
    agentry('audit', 'verify', '--tenant', 'cli-bad'),
    agentry('audit', 'export', '--tenant', 'cli-ok', '--out', out, '--unseal'),
    agentry('backup', 'create', '--actor', 'cli-test'),
  ]);

  expect(verify.code).toBe(1);
  expect(verify.stdout).toMatch(/audit trail BROKEN \(edited\): tenant "cli-bad" event #2 \(cli-bad\/support-triage\/r1#2\)/);

  expect(exported.code).toBe(0);
  expect(exported.stderr).toMatch(/exported 3 events/);
  const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  expect(lines.map((l) => [l.chainIndex, l.unsealed])).toEqual([
    [1, { comment: 'comment 1' }],
    [2, { comment: 'comment 2' }],
    [3, { comment: 'comment 3' }],
  ]);
  // The exported event keeps its stored (sealed) data, so the file can be re-verified link by link.
  expect(lines[0].data.comment).toMatchObject({ $sealed: 'A256GCM' });
  expect(lines[1].prevHash).toBe(lines[0].hash);

  expect(created.code).toBe(0);
  const id = /backup (\S+) written/.exec(created.stdout)?.[1];
  expect(id).toBeDefined();
  const verified = await agentry('backup', 'verify', id!);
  expect(verified.stdout).toContain(`backup ${id} verified (manifest matches the audit trail)`);
  expect(verified.code).toBe(0);
});

test('audit verify --tenant fails with exit code 2 for a tenant without events, and an empty trail verifies as empty', async () => {
  const empty = await createTestDatabase();
  try {
    const [mistyped, known, whole, emptyTenant, help] = await Promise.all([
      agentry('audit', 'verify', '--tenant', 'cli-okk'),
      agentry('audit', 'verify', '--tenant', 'cli-ok'),
      agentryWith({ DATABASE_URL: empty.url }, 'audit', 'verify'),
      agentryWith({ DATABASE_URL: empty.url }, 'audit', 'verify', '--tenant', 'cli-ok'),
      agentry('audit', 'verify', '--help'),
    ]);
    expect(mistyped.code).toBe(2);
    expect(mistyped.stdout).toContain('audit trail NOT verified: tenant "cli-okk" has no audit events (check the tenant name)');
    expect(mistyped.stdout).not.toMatch(/audit trail verified/);

    expect(known.code).toBe(0);
    expect(known.stdout).toContain('audit trail verified: 3 events in 1 tenant chain(s)');

    expect(whole.code).toBe(0);
    expect(whole.stdout).toContain('audit trail verified: it is empty (no events in any tenant)');

    expect(emptyTenant.code).toBe(2);
    expect(emptyTenant.stdout).toContain('tenant "cli-ok" has no audit events');

    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Exit codes:[\s\S]*\b2\s+--tenant names a tenant with no events/);
  } finally {
    await empty.drop();
  }
});

test('audit export --out names a path it cannot write, a full disk, and an unknown tenant, with exit code 1', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'agentry-export-'));
  const [noFolder, folder, full, mistyped] = await Promise.all([
    agentry('audit', 'export', '--out', join(dir, 'missing', 'x.ndjson')),
    agentry('audit', 'export', '--out', dir),
    existsSync('/dev/full') ? agentry('audit', 'export', '--out', '/dev/full') : Promise.resolve(undefined),
    agentry('audit', 'export', '--tenant', 'cli-okk', '--out', join(dir, 'none.ndjson')),
  ]);
  expect(noFolder).toMatchObject({ code: 1, stderr: `agentry: --out: cannot write ${join(dir, 'missing', 'x.ndjson')}: its folder does not exist\n` });
  expect(folder).toMatchObject({ code: 1, stderr: `agentry: --out: cannot write ${dir}: it is a folder\n` });
  if (full) expect(full).toMatchObject({ code: 1, stderr: 'agentry: --out: cannot write /dev/full: no space left on the device; the file is incomplete\n' });
  expect(mistyped).toMatchObject({ code: 1, stderr: 'agentry: tenant "cli-okk" has no audit events (check the tenant name)\n' });
  rmSync(dir, { recursive: true });
});
