import type { Pool, PoolClient } from 'pg';
import type { AuditEventInput } from '../contracts';
import { GENESIS_HASH, chainHash, type ChainedFields } from './audit-chain';

export interface StoredAuditEvent extends ChainedFields {
  prevHash: string;
  hash: string;
  recordedAt: string;
}

export interface AppendResult {
  /** false when an event with this id was already recorded (a retried write). */
  inserted: boolean;
  chainIndex: number;
  hash: string;
}

export interface VerifyResult {
  ok: boolean;
  tenants: number;
  events: number;
  /** The first broken link, when there is one. */
  broken?: { tenant: string; chainIndex: number; id: string; reason: string };
}

interface Row {
  id: string;
  tenant: string;
  chain_index: string;
  run_id: string;
  type: string;
  actor: string;
  pipeline: string | null;
  pipeline_version: number | null;
  definition_hash: string | null;
  stage: string | null;
  data: unknown;
  occurred_at: Date;
  recorded_at: Date;
  prev_hash: string;
  hash: string;
}

function fromRow(r: Row): StoredAuditEvent {
  return {
    id: r.id,
    tenant: r.tenant,
    chainIndex: Number(r.chain_index),
    runId: r.run_id,
    type: r.type,
    actor: r.actor,
    pipeline: r.pipeline,
    pipelineVersion: r.pipeline_version,
    definitionHash: r.definition_hash,
    stage: r.stage,
    data: r.data,
    occurredAt: r.occurred_at.toISOString(),
    recordedAt: r.recorded_at.toISOString(),
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

async function inTransaction<T>(pool: Pool, fn: (c: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/**
 * The append-only, hash-chained audit trail. Appends for one tenant are serialised by a transaction-scoped
 * advisory lock, so concurrent writers (any number of workers) extend one linear chain; an event whose id is
 * already stored is acknowledged without a second row.
 */
export function createAuditStore(pool: Pool) {
  return {
    async append(event: AuditEventInput): Promise<AppendResult> {
      return inTransaction(pool, async (c) => {
        await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 7241))', [event.tenant]);
        const existing = await c.query<{ chain_index: string; hash: string }>(
          'SELECT chain_index, hash FROM audit_events WHERE id = $1',
          [event.id],
        );
        if (existing.rowCount) {
          return { inserted: false, chainIndex: Number(existing.rows[0].chain_index), hash: existing.rows[0].hash };
        }
        const last = await c.query<{ chain_index: string; hash: string }>(
          'SELECT chain_index, hash FROM audit_events WHERE tenant = $1 ORDER BY chain_index DESC LIMIT 1',
          [event.tenant],
        );
        const prevHash = last.rows[0]?.hash ?? GENESIS_HASH;
        const chainIndex = last.rowCount ? Number(last.rows[0].chain_index) + 1 : 1;
        const fields: ChainedFields = {
          id: event.id,
          tenant: event.tenant,
          chainIndex,
          runId: event.runId,
          type: event.type,
          actor: event.actor,
          pipeline: event.pipeline ?? null,
          pipelineVersion: event.pipelineVersion ?? null,
          definitionHash: event.definitionHash ?? null,
          stage: event.stage ?? null,
          data: event.data ?? {},
          occurredAt: new Date(event.occurredAt).toISOString(),
        };
        const hash = chainHash(prevHash, fields);
        await c.query(
          `INSERT INTO audit_events (id, tenant, chain_index, run_id, type, actor, pipeline, pipeline_version,
             definition_hash, stage, data, occurred_at, prev_hash, hash)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)`,
          [fields.id, fields.tenant, chainIndex, fields.runId, fields.type, fields.actor, fields.pipeline,
            fields.pipelineVersion, fields.definitionHash, fields.stage, JSON.stringify(fields.data),
            fields.occurredAt, prevHash, hash],
        );
        return { inserted: true, chainIndex, hash };
      });
    },

    async listByRun(tenant: string, runId: string): Promise<StoredAuditEvent[]> {
      const res = await pool.query<Row>(
        'SELECT * FROM audit_events WHERE tenant = $1 AND run_id = $2 ORDER BY chain_index',
        [tenant, runId],
      );
      return res.rows.map(fromRow);
    },

    /** Recomputes every tenant's chain (or one tenant's) and reports the first broken link. */
    async verify(tenant?: string): Promise<VerifyResult> {
      const tenants = tenant
        ? [tenant]
        : (await pool.query<{ tenant: string }>('SELECT DISTINCT tenant FROM audit_events ORDER BY tenant')).rows.map(
            (r) => r.tenant,
          );
      let events = 0;
      for (const t of tenants) {
        const rows = (await pool.query<Row>('SELECT * FROM audit_events WHERE tenant = $1 ORDER BY chain_index', [t]))
          .rows;
        let prev = GENESIS_HASH;
        for (let i = 0; i < rows.length; i++) {
          const e = fromRow(rows[i]);
          events++;
          const fail = (reason: string): VerifyResult => ({
            ok: false,
            tenants: tenants.length,
            events,
            broken: { tenant: t, chainIndex: e.chainIndex, id: e.id, reason },
          });
          if (e.chainIndex !== i + 1) return fail(`expected chain index ${i + 1}, found ${e.chainIndex} (a row is missing)`);
          if (e.prevHash !== prev) return fail('prev_hash does not match the previous event (deleted, inserted or reordered)');
          const { prevHash: _p, hash, recordedAt: _r, ...fields } = e;
          if (chainHash(prev, fields) !== hash) return fail('hash does not match the content (the event was edited)');
          prev = hash;
        }
      }
      return { ok: true, tenants: tenants.length, events };
    },
  };
}
export type AuditStore = ReturnType<typeof createAuditStore>;
