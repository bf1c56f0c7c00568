import { randomBytes } from 'node:crypto';
import { Client, Pool } from 'pg';
import { migrate } from '../../src/audit';

/** The machine's PostgreSQL (trust auth); CI and developers point TEST_DATABASE_URL elsewhere if needed. */
export const ADMIN_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  url: string;
  pool: Pool;
  drop(): Promise<void>;
}

/** A fresh, migrated database of its own for one test file, dropped afterwards. */
export async function createTestDatabase(prefix = 'agentry_test'): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const admin = new Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  await migrate(url.toString());
  const pool = new Pool({ connectionString: url.toString(), max: 10 });
  // An idle connection closed by the server (the database being dropped at teardown) is not a test failure.
  pool.on('error', () => undefined);
  return {
    url: url.toString(),
    pool,
    async drop() {
      await pool.end();
      const c = new Client({ connectionString: ADMIN_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** Runs SQL as the superuser with the append-only trigger off: how an attacker with database access would edit. */
export async function tamperAuditTrail(pool: Pool, ...statements: [string, unknown[]?][]): Promise<void> {
  const c = await pool.connect();
  try {
    await c.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only');
    for (const [sql, params] of statements) await c.query(sql, params ?? []);
  } finally {
    await c.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only');
    c.release();
  }
}
