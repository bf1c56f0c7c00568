import { createReadStream, existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Pool, PoolClient } from 'pg';
import { migrate, readChainHeads, type ChainHead } from '../audit';
import { libpqTarget, runTool } from './pg-tools';
import { checkOut } from '../storage/pg-client';

/** The tables agentry owns, in the order a logical export writes and a logical restore reloads them. */
export const AGENTRY_TABLES = ['agentry_migrations', 'audit_events', 'stage_payloads', 'llm_usage'] as const;
/** Tables a logical restore reloads; `agentry_migrations` is rebuilt by running the migrations. */
export const RELOADED_TABLES = ['audit_events', 'stage_payloads', 'llm_usage'] as const;
/** Each table's primary key: the logical export pages through a table in this order. */
const TABLE_KEYS: Record<(typeof AGENTRY_TABLES)[number], readonly string[]> = {
  agentry_migrations: ['id'],
  audit_events: ['id'],
  stage_payloads: ['id'],
  llm_usage: ['idempotency_key', 'attempt', 'call'],
};
const BATCH = 1000;

/** The pg_dump output inside a backup's `database/` folder. */
export const PG_DUMP_FILE = 'database.sql';

export interface SnapshotFacts {
  serverVersion: string;
  rows: Record<string, number>;
  chainHeads: Record<string, ChainHead>;
}

/** Row counts and chain heads, read in the caller's transaction (the backup's snapshot, or after a restore). */
export async function readFacts(c: Pool | PoolClient): Promise<SnapshotFacts> {
  const serverVersion = (await c.query<{ server_version: string }>('SHOW server_version')).rows[0].server_version;
  const rows: Record<string, number> = {};
  for (const table of AGENTRY_TABLES) {
    const exists = (await c.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [table])).rows[0].t;
    if (exists) rows[table] = Number((await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);
  }
  const chainHeads = rows.audit_events !== undefined ? await readChainHeads(c) : {};
  return { serverVersion, rows, chainHeads };
}

/** Writes each agentry table as NDJSON (`row_to_json`, exact to the microsecond) in the snapshot of `c`. */
async function exportTables(c: PoolClient, outDir: string, tables: readonly string[]): Promise<void> {
  for (const table of tables) {
    const file = await open(join(outDir, `${table}.ndjson`), 'w');
    try {
      const keys = TABLE_KEYS[table as keyof typeof TABLE_KEYS] ?? ['id'];
      const keyList = keys.join(', ');
      // Keyset pagination: `(k1, k2) > ($2, $3)` continues after the last row of the previous batch.
      const after = `WHERE (${keyList}) > (${keys.map((_, i) => `$${i + 2}`).join(', ')})`;
      let last: unknown[] | undefined;
      for (;;) {
        const res = await c.query<{ j: string } & Record<string, unknown>>(
          `SELECT ${keyList}, row_to_json(t)::text AS j FROM ${table} t ${last === undefined ? '' : after} ORDER BY ${keyList} LIMIT $1`,
          last === undefined ? [BATCH] : [BATCH, ...last],
        );
        if (res.rows.length === 0) break;
        await file.write(res.rows.map((r) => `${r.j}\n`).join(''));
        const end = res.rows[res.rows.length - 1];
        last = keys.map((k) => end[k]);
      }
      await file.sync();
    } finally {
      await file.close();
    }
  }
}

export interface DumpOptions {
  pool: Pool;
  databaseUrl: string;
  /** The backup's `database/` folder. */
  outDir: string;
  /** pg_dump to use; undefined, or one older than the server, writes the logical NDJSON export instead. */
  pgDump?: string;
}

export interface DumpResult {
  format: 'pg_dump' | 'ndjson';
  facts: SnapshotFacts;
  tool?: string;
}

/**
 * Dumps the database from one consistent snapshot: a REPEATABLE READ transaction exports its snapshot, pg_dump
 * reads that same snapshot (`--snapshot`), and the row counts and chain heads in the manifest come from it too, so
 * they describe exactly what the dump holds even while workers keep appending.
 */
export async function dumpDatabase(opts: DumpOptions): Promise<DumpResult> {
  const c = await checkOut(opts.pool);
  try {
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const snapshot = (await c.query<{ s: string }>('SELECT pg_export_snapshot() AS s')).rows[0].s;
    const facts = await readFacts(c);
    let result: DumpResult;
    const version = opts.pgDump ? (await runTool(opts.pgDump, ['--version'])).stdout.trim() : undefined;
    const serverMajor = Math.floor((await c.query<{ v: number }>("SELECT current_setting('server_version_num')::int AS v")).rows[0].v / 10_000);
    // pg_dump refuses servers newer than itself (a distribution's pg_dump against an embedded PostgreSQL 17, say).
    const usable = opts.pgDump && version && Number(/(\d+)\.\d+/.exec(version)?.[1] ?? 0) >= serverMajor;
    if (opts.pgDump && usable) {
      const target = libpqTarget(opts.databaseUrl);
      await runTool(
        opts.pgDump,
        [
          '--format=plain',
          '--no-owner',
          // Privileges are applied again after a restore (agentry_apply_app_privileges), so a dump restores into a
          // cluster that lacks the roles of the original.
          '--no-privileges',
          '--clean',
          '--if-exists',
          `--snapshot=${snapshot}`,
          `--file=${join(opts.outDir, PG_DUMP_FILE)}`,
          `--dbname=${target.url}`,
        ],
        target.env,
      );
      result = { format: 'pg_dump', facts, tool: version };
    } else {
      await exportTables(c, opts.outDir, Object.keys(facts.rows));
      result = { format: 'ndjson', facts, ...(version ? { tool: `${version} is older than the server (${serverMajor}): logical export instead` } : {}) };
    }
    await c.query('COMMIT');
    return result;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    c.release();
  }
}

export interface RestoreOptions {
  pool: Pool;
  databaseUrl: string;
  /** The backup's `database/` folder. */
  dir: string;
  format: 'pg_dump' | 'ndjson';
  /** psql, required for the pg_dump format. */
  psql?: string;
}

/**
 * Loads a dump into the database, replacing agentry's tables (events written since the backup are gone
 * afterwards: that is what a restore is). The pg_dump format loads in one transaction with psql; the NDJSON format
 * drops the tables, runs the migrations and reloads the rows.
 */
export async function restoreDatabase(opts: RestoreOptions): Promise<void> {
  if (opts.format === 'pg_dump') {
    if (!opts.psql) throw new Error('this backup is a pg_dump script and psql is not on PATH');
    const target = libpqTarget(opts.databaseUrl);
    await runTool(
      opts.psql,
      [
        '-X',
        '-q',
        '-v',
        'ON_ERROR_STOP=1',
        '--single-transaction',
        // pg_dump leaves the public schema out of its script: restore into a database whose schema was dropped.
        '-c',
        'SET client_min_messages = warning; CREATE SCHEMA IF NOT EXISTS public',
        '-f',
        join(opts.dir, PG_DUMP_FILE),
        `--dbname=${target.url}`,
      ],
      target.env,
    );
    return;
  }
  const c = await checkOut(opts.pool);
  try {
    await c.query('BEGIN');
    await c.query('SET LOCAL client_min_messages = warning');
    await c.query('CREATE SCHEMA IF NOT EXISTS public');
    await c.query(`DROP TABLE IF EXISTS ${AGENTRY_TABLES.join(', ')} CASCADE`);
    await c.query('DROP FUNCTION IF EXISTS audit_events_append_only() CASCADE');
    await c.query('DROP FUNCTION IF EXISTS agentry_apply_app_privileges()');
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    c.release();
    throw err;
  }
  try {
    await migrate(opts.databaseUrl);
    await c.query('BEGIN');
    for (const table of RELOADED_TABLES) {
      // A table that did not exist when the backup was taken has no file: it stays as the migrations made it.
      if (!existsSync(join(opts.dir, `${table}.ndjson`))) continue;
      const lines = createInterface({ input: createReadStream(join(opts.dir, `${table}.ndjson`)), crlfDelay: Infinity });
      let batch: string[] = [];
      const flush = async () => {
        if (batch.length === 0) return;
        await c.query(`INSERT INTO ${table} SELECT * FROM json_populate_recordset(NULL::${table}, $1::json)`, [`[${batch.join(',')}]`]);
        batch = [];
      };
      for await (const line of lines) {
        if (line.trim() === '') continue;
        batch.push(line);
        if (batch.length >= BATCH) await flush();
      }
      await flush();
    }
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    c.release();
  }
}
