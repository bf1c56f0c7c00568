import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres';
import { cliEnv, freePort, runCli } from '../helpers/processes';

let db: TestDatabase;
let bin: string;

beforeAll(async () => {
  db = await createTestDatabase();
  // A pg_dump older than any server it would be asked to dump, as a distribution's can be next to a newer server.
  bin = mkdtempSync(join(tmpdir(), 'agentry-old-pg-dump-'));
  writeFileSync(join(bin, 'pg_dump'), '#!/bin/sh\necho "pg_dump (PostgreSQL) 9.6.24"\n', { mode: 0o755 });
});
afterAll(async () => {
  rmSync(bin, { recursive: true, force: true });
  await db.drop();
});

test('with the database stopped, audit and backup commands name PostgreSQL and DATABASE_URL, not only the socket error', async () => {
  const port = await freePort();
  const env = cliEnv(`postgres://agentry:hunter2-secret@127.0.0.1:${port}/agentry`, 'unreachable');
  const [verify, heads, backup] = await Promise.all([
    runCli(['audit', 'verify'], env),
    runCli(['audit', 'heads'], env),
    runCli(['backup', 'create'], env),
  ]);
  for (const run of [verify, heads, backup]) {
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`agentry: cannot reach PostgreSQL at 127.0.0.1:${port} (DATABASE_URL): connection refused; is PostgreSQL running there?\n`);
    expect(run.stderr).not.toContain('hunter2');
  }
});

test('backup create says why it wrote the NDJSON export when the pg_dump on PATH is older than the server', async () => {
  const env = cliEnv(db.url, 'old-pg-dump', { PATH: `${bin}:${process.env.PATH ?? ''}` });
  const run = await runCli(['backup', 'create', '--actor', 'cli-test'], env);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  const serverVersion = (await db.pool.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0].v;
  expect(run.stdout).toMatch(/^backup \S+ written to .*: ndjson, /);
  expect(run.stdout).toContain(
    `database written as the logical NDJSON export, not with pg_dump: pg_dump (PostgreSQL) 9.6.24 is older than the server (PostgreSQL ${serverVersion}), which it refuses to dump\n`,
  );
});
