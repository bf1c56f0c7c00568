import { createHash, randomBytes } from 'node:crypto';
import { Pool } from 'pg';
import { createAuditStore } from '../src/audit';
import type { AuditEventInput } from '../src/contracts';
import { createTestDatabase } from '../test/helpers/postgres';
import { closedLoop, progress, ratio } from './measure';

export interface AuditRow {
  mode: string;
  tenants: number;
  concurrency: number;
  events: number;
  eventsPerS: number;
  /** Against plain INSERTs at the same concurrency in the same run. */
  ratioToPlain: number;
}

export interface AuditResult {
  postgres: string;
  events: number;
  appends: AuditRow[];
  verify: { tenants: number; events: number; seconds: number; eventsPerS: number; ok: boolean }[];
}

const PLAIN_TABLE = `
  CREATE TABLE bench_plain_events (
    id text PRIMARY KEY, tenant text NOT NULL, run_id text NOT NULL, type text NOT NULL, actor text NOT NULL,
    pipeline text, pipeline_version int, definition_hash text, stage text, data jsonb NOT NULL,
    occurred_at timestamptz NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now()
  )`;

/** A `stage.completed` event shaped like the ones the worker writes (hashes, attempt, duration; no sealed fields). */
function event(tenant: string, i: number): AuditEventInput {
  const h = (s: string) => createHash('sha256').update(s).digest('hex');
  const run = Math.floor(i / 8);
  return {
    id: `${tenant}/bench-triage/${run}#${i % 8}`,
    tenant,
    runId: `bench-triage/${run}`,
    type: 'stage.completed',
    actor: 'worker',
    pipeline: 'bench-triage',
    pipelineVersion: 3,
    definitionHash: h('bench-triage'),
    stage: 'classify',
    data: { attempt: 1, inputHash: h(`in${i}`), outputHash: h(`out${i}`), durationMs: 3 },
    occurredAt: Date.now(),
  };
}

/**
 * Append throughput of the hash-chained audit store (one tenant: every append waits for the tenant's lock; several
 * tenants: chains grow side by side) against plain INSERTs of the same rows into a table without a chain, then the
 * rate at which `verify` recomputes the chains. On a fresh database of the machine's PostgreSQL, dropped afterwards.
 */
export async function auditBench(opts: { events: number; concurrency: number; tenants: number }): Promise<AuditResult> {
  const db = await createTestDatabase('agentry_bench_audit');
  const pool = new Pool({ connectionString: db.url, max: opts.concurrency + 1 });
  pool.on('error', () => undefined);
  try {
    await pool.query(PLAIN_TABLE);
    const store = createAuditStore(pool);
    const postgres = String((await pool.query<{ v: string }>('SELECT version() AS v')).rows[0].v).split(' on ')[0];
    const tag = randomBytes(3).toString('hex');
    const rows: AuditRow[] = [];
    const plainRate = new Map<number, number>();

    const run = async (mode: string, tenants: number, concurrency: number, write: (e: AuditEventInput) => Promise<unknown>) => {
      const names = Array.from({ length: tenants }, (_, t) => `bench-${tag}-${mode.replace(/\W+/g, '-')}-c${concurrency}-t${t}`);
      const bar = progress(`audit ${mode}, ${tenants} tenant(s), c=${concurrency}`, opts.events);
      const r = await closedLoop(opts.events, concurrency, (i) => write(event(names[i % tenants], Math.floor(i / tenants))).then(() => undefined), bar);
      bar.stop();
      if (r.failures) throw new Error(`audit ${mode}: ${r.failures} writes failed, first: ${r.firstError}`);
      const eventsPerS = Math.round(opts.events / (r.wallMs / 1000));
      if (mode === 'plain INSERT') plainRate.set(concurrency, eventsPerS);
      rows.push({ mode, tenants, concurrency, events: opts.events, eventsPerS, ratioToPlain: ratio(eventsPerS, plainRate.get(concurrency) ?? NaN) });
      return names;
    };
    const plain = (e: AuditEventInput) =>
      pool.query(
        `INSERT INTO bench_plain_events (id, tenant, run_id, type, actor, pipeline, pipeline_version, definition_hash, stage, data, occurred_at)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)`,
        [e.id, e.tenant, e.runId, e.type, e.actor, e.pipeline, e.pipelineVersion, e.definitionHash, e.stage, JSON.stringify(e.data), new Date(e.occurredAt).toISOString()],
      );
    const chained = (e: AuditEventInput) => store.append(e);

    const concurrencies = [...new Set([1, opts.concurrency])];
    let oneTenant: string[] = [];
    let manyTenants: string[] = [];
    for (const c of concurrencies) {
      await run('plain INSERT', 1, c, plain);
      oneTenant = await run('chained append', 1, c, chained);
      if (opts.tenants > 1) manyTenants = await run('chained append', opts.tenants, c, chained);
    }

    const verify: AuditResult['verify'] = [];
    const timeVerify = async (tenants: string[]) => {
      const t0 = performance.now();
      let events = 0;
      let ok = true;
      for (const t of tenants) {
        const r = await store.verify(t);
        events += r.events;
        ok &&= r.ok;
      }
      const seconds = (performance.now() - t0) / 1000;
      verify.push({ tenants: tenants.length, events, seconds: Math.round(seconds * 100) / 100, eventsPerS: Math.round(events / seconds), ok });
    };
    await timeVerify(oneTenant);
    if (manyTenants.length) await timeVerify(manyTenants);
    return { postgres, events: opts.events, appends: rows, verify };
  } finally {
    await pool.end();
    await db.drop();
  }
}
