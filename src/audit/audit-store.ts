import type { Pool, PoolClient } from 'pg';
import type { AuditEventInput } from '../contracts';
import { GENESIS_HASH, chainHash, type ChainHead, type ChainedFields } from './audit-chain';
import { sealContext, sealFields, type SealKeyRing } from './audit-seal';
import { checkOut } from '../storage/pg-client';
import { replaceLoneSurrogates } from '../security/unicode';

export interface StoredAuditEvent extends ChainedFields {
  data: Record<string, unknown>;
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

/**
 * What a broken link says happened: `edited` (an event's content no longer matches its hash), `deleted` (an event
 * is missing), `inserted` (an event was slipped in between two others), `reordered` (an event sits at a position it
 * was not written at).
 */
export type TamperKind = 'edited' | 'deleted' | 'inserted' | 'reordered';

export interface BrokenLink {
  tenant: string;
  /** Position of the event named. */
  chainIndex: number;
  id: string;
  kind: TamperKind;
  reason: string;
}

export interface VerifyResult {
  ok: boolean;
  tenants: number;
  /** Events checked (up to and including the first broken link). */
  events: number;
  /** The first broken link, when there is one. */
  broken?: BrokenLink;
}

/**
 * What an anchor check says happened to a chain since its head was recorded: `truncated` (the chain now ends before
 * the recorded position, or the tenant has no events left), `rewritten` (the event at the recorded position has
 * another hash: the chain was rewritten from there or earlier with recomputed hashes), `deleted` (the recorded event
 * is missing while later ones remain: a gap, which `verify` reports first).
 */
export type AnchorBreakKind = 'truncated' | 'rewritten' | 'deleted';

export interface AnchorBreak {
  tenant: string;
  /** The recorded head's position. */
  chainIndex: number;
  kind: AnchorBreakKind;
  /** A sentence naming the chain's state now and what the anchor recorded. */
  reason: string;
}

export interface AnchorCheck {
  ok: boolean;
  /** Recorded heads compared (up to and including the first break). */
  checked: number;
  /** The first recorded head no longer in place, when there is one. */
  broken?: AnchorBreak;
}

/** Filters of `page`: every one optional but the tenant. */
export interface AuditQuery {
  tenant: string;
  runId?: string;
  actor?: string;
  /** Any of these types. */
  types?: readonly string[];
  /** occurred_at >= from. */
  from?: Date;
  /** occurred_at < to. */
  to?: Date;
  /** Only events after this chain position (the cursor). @default 0 */
  after?: number;
  /** Page size. @default 100 */
  limit?: number;
}

export interface AuditPage {
  events: StoredAuditEvent[];
  /** Chain position to continue after, when more events may match. */
  next?: number;
}

export interface AuditStoreOptions {
  /**
   * Keys that seal the sensitive fields of `data` (`ip`, `userAgent`, `comment`, `reason`) on append. The facade,
   * the worker and the CLI always pass them; without them (read-only tools, tests) fields are stored as given.
   */
  sealKeys?: SealKeyRing;
}

const VERIFY_BATCH = 1000;

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
    data: r.data as Record<string, unknown>,
    occurredAt: r.occurred_at.toISOString(),
    recordedAt: r.recorded_at.toISOString(),
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

async function inTransaction<T>(pool: Pool, fn: (c: PoolClient) => Promise<T>): Promise<T> {
  // A connection cut mid-transaction fails it (the caller retries) instead of ending the process.
  const client = await checkOut(pool);
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
 * Each tenant's chain head (or one tenant's): the position and hash of its last event. Takes a client so that a
 * backup reads the heads in its snapshot's transaction.
 */
export async function readChainHeads(db: Pool | PoolClient, tenant?: string): Promise<Record<string, ChainHead>> {
  const res = await db.query<{ tenant: string; chain_index: string; hash: string }>(
    `SELECT DISTINCT ON (tenant) tenant, chain_index, hash FROM audit_events ${tenant !== undefined ? 'WHERE tenant = $1 ' : ''}ORDER BY tenant, chain_index DESC`,
    tenant !== undefined ? [tenant] : [],
  );
  // fromEntries defines own properties, so even a tenant named __proto__ is a key like any other.
  return Object.fromEntries(res.rows.map((h) => [h.tenant, { chainIndex: Number(h.chain_index), hash: h.hash }]));
}

/** A hash shortened for a sentence. */
const short = (hash: string) => `${hash.slice(0, 12)}…`;

/** A chain position in words: `#n`, or the start of the chain for 0. */
const position = (n: number) => (n === 0 ? 'the start of the chain' : `#${n}`);

/** The fields the chain hash covers, read back from a stored event. */
function chainedFieldsOf(e: StoredAuditEvent): ChainedFields {
  const { prevHash: _p, hash: _h, recordedAt: _r, ...fields } = e;
  return fields;
}

/**
 * The append-only, hash-chained audit trail. Appends for one tenant are serialised by a transaction-scoped
 * advisory lock, so concurrent writers (any number of workers) extend one linear chain; an event whose id is
 * already stored is acknowledged without a second row. Sensitive fields are sealed before hashing, so the chain
 * covers (and `verify` checks) the sealed form without needing a key.
 */
export function createAuditStore(pool: Pool, opts: AuditStoreOptions = {}) {
  /** The event whose hash is `hash` in a tenant's chain, if any: used only to explain a broken link. */
  async function positionOfHash(tenant: string, hash: string): Promise<number | undefined> {
    const res = await pool.query<{ chain_index: string }>('SELECT chain_index FROM audit_events WHERE tenant = $1 AND hash = $2 LIMIT 1', [tenant, hash]);
    return res.rowCount ? Number(res.rows[0].chain_index) : undefined;
  }

  /** Recomputes one tenant's chain; answers the first broken link, or the number of events when it holds. */
  async function verifyTenant(tenant: string): Promise<{ events: number; broken?: BrokenLink }> {
    let events = 0;
    let expected = 1;
    let prev: StoredAuditEvent | undefined;
    let prevPrevHash: string | undefined;
    for (;;) {
      const rows = (
        await pool.query<Row>('SELECT * FROM audit_events WHERE tenant = $1 AND chain_index > $2 ORDER BY chain_index LIMIT $3', [
          tenant,
          expected - 1,
          VERIFY_BATCH,
        ])
      ).rows;
      if (rows.length === 0) return { events };
      for (const row of rows) {
        const e = fromRow(row);
        events++;
        const at = (kind: TamperKind, reason: string, who: StoredAuditEvent = e): { events: number; broken: BrokenLink } => ({
          events,
          broken: { tenant, chainIndex: who.chainIndex, id: who.id, kind, reason },
        });
        const prevHash = prev?.hash ?? GENESIS_HASH;
        if (e.chainIndex !== expected) {
          const missing = e.chainIndex - expected === 1 ? `event #${expected} is missing` : `events #${expected} to #${e.chainIndex - 1} are missing`;
          return at('deleted', `${missing} (deleted): #${e.chainIndex} follows ${prev ? `#${prev.chainIndex}` : 'the start of the chain'}`);
        }
        if (e.prevHash !== prevHash) {
          // The link is broken; what the event links to instead tells what happened.
          if (prev && prevPrevHash !== undefined && e.prevHash === prevPrevHash) {
            return at('inserted', `event #${prev.chainIndex} was inserted: #${e.chainIndex} links to ${position(prev.chainIndex - 1)}, not to it`, prev);
          }
          const linked = e.prevHash === GENESIS_HASH ? 0 : await positionOfHash(tenant, e.prevHash);
          if (linked !== undefined) {
            return at(
              'reordered',
              `event #${e.chainIndex} is out of order: it links to ${position(linked)}, not to ${position(e.chainIndex - 1)}`,
            );
          }
          if (prev && chainHash(e.prevHash, chainedFieldsOf(e)) === e.hash) {
            // This event is intact and links to a hash no stored event has: its predecessor was rewritten.
            return at('edited', `event #${prev.chainIndex} was edited and its hash recomputed: #${e.chainIndex} links to its original hash`, prev);
          }
          return at('deleted', `event #${e.chainIndex} links to an event that is no longer in the chain (deleted, and the later events renumbered)`);
        }
        if (chainHash(prevHash, chainedFieldsOf(e)) !== e.hash) {
          return at('edited', `event #${e.chainIndex} was edited: its hash does not match its content (or it was forged with a hash computed some other way)`);
        }
        prevPrevHash = prevHash;
        prev = e;
        expected++;
      }
    }
  }

  return {
    async append(raw: AuditEventInput): Promise<AppendResult> {
      // PostgreSQL text and jsonb cannot hold U+0000 (a NUL from a caller would make this write fail on every retry
      // and leave its run stuck) and store a lone surrogate as U+FFFD (the stored event would no longer match its
      // hash). Both are recorded as U+FFFD.
      const event = withoutNul(raw);
      const data = opts.sealKeys ? sealFields(event.data ?? {}, opts.sealKeys, sealContext(event)) : (event.data ?? {});
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
          data,
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

    /** One page of a tenant's events in chain order, filtered; continue with `after: page.next`. */
    async page(q: AuditQuery): Promise<AuditPage> {
      const limit = q.limit ?? 100;
      const where = ['tenant = $1', 'chain_index > $2'];
      const params: unknown[] = [q.tenant, q.after ?? 0];
      const add = (clause: (n: string) => string, value: unknown) => {
        params.push(value);
        where.push(clause(`$${params.length}`));
      };
      if (q.runId !== undefined) add((p) => `run_id = ${p}`, q.runId);
      if (q.actor !== undefined) add((p) => `actor = ${p}`, q.actor);
      if (q.types?.length) add((p) => `type = ANY(${p}::text[])`, q.types);
      if (q.from) add((p) => `occurred_at >= ${p}`, q.from.toISOString());
      if (q.to) add((p) => `occurred_at < ${p}`, q.to.toISOString());
      params.push(limit + 1);
      const res = await pool.query<Row>(
        `SELECT * FROM audit_events WHERE ${where.join(' AND ')} ORDER BY chain_index LIMIT $${params.length}`,
        params,
      );
      const events = res.rows.slice(0, limit).map(fromRow);
      return { events, ...(res.rows.length > limit ? { next: events[events.length - 1].chainIndex } : {}) };
    },

    /** Every event (or one tenant's), tenant by tenant in chain order, read in batches. */
    async *exportEvents(tenant?: string, batch = 1000): AsyncGenerator<StoredAuditEvent> {
      let after: [string, number] = [tenant ?? '', 0];
      for (;;) {
        const res = await pool.query<Row>(
          `SELECT * FROM audit_events WHERE (tenant, chain_index) > ($1, $2) ${tenant !== undefined ? 'AND tenant = $4' : ''}
           ORDER BY tenant, chain_index LIMIT $3`,
          tenant !== undefined ? [after[0], after[1], batch, tenant] : [after[0], after[1], batch],
        );
        if (res.rows.length === 0) return;
        for (const row of res.rows) yield fromRow(row);
        const last = res.rows[res.rows.length - 1];
        after = [last.tenant, Number(last.chain_index)];
      }
    },

    /**
     * Recomputes every tenant's chain (or one tenant's) and reports the first broken link: which event, and whether
     * it was edited, deleted, inserted or reordered. A chain cut short at its end, or rewritten from some point by
     * someone who recomputes the hashes, still verifies: `checkAnchors` compares it with heads recorded earlier.
     */
    async verify(tenant?: string): Promise<VerifyResult> {
      const tenants = tenant
        ? [tenant]
        : (await pool.query<{ tenant: string }>('SELECT DISTINCT tenant FROM audit_events ORDER BY tenant')).rows.map((r) => r.tenant);
      let events = 0;
      for (const t of tenants) {
        const res = await verifyTenant(t);
        events += res.events;
        if (res.broken) return { ok: false, tenants: tenants.length, events, broken: res.broken };
      }
      return { ok: true, tenants: tenants.length, events };
    },

    /** Each tenant's current chain head (or one tenant's; empty when it has no events). */
    heads(tenant?: string): Promise<Record<string, ChainHead>> {
      return readChainHeads(pool, tenant);
    },

    /**
     * Checks heads recorded earlier, outside the database (`anchors`, by tenant; only `tenant`'s when given): the event
     * at each recorded position must still be there with the recorded hash. Since every hash covers the one before
     * it, a head in place proves the chain unchanged up to it; events appended since do not matter. Run `verify`
     * first: this checks the anchored events only, not the links between them. `source` names the anchor in the
     * reasons. @default 'the anchor'
     */
    async checkAnchors(anchors: Record<string, ChainHead>, tenant?: string, source = 'the anchor'): Promise<AnchorCheck> {
      const tenants = Object.keys(anchors)
        .filter((t) => tenant === undefined || t === tenant)
        .sort();
      let checked = 0;
      for (const t of tenants) {
        const anchored = anchors[t];
        checked++;
        const at = await pool.query<{ hash: string }>('SELECT hash FROM audit_events WHERE tenant = $1 AND chain_index = $2', [t, anchored.chainIndex]);
        if (at.rowCount && at.rows[0].hash === anchored.hash) continue;
        const broken = (kind: AnchorBreakKind, reason: string): AnchorCheck => ({
          ok: false,
          checked,
          broken: { tenant: t, chainIndex: anchored.chainIndex, kind, reason },
        });
        const recorded = `${source} recorded its head at #${anchored.chainIndex}`;
        if (at.rowCount) {
          return broken(
            'rewritten',
            `event #${anchored.chainIndex} has hash ${short(at.rows[0].hash)}, but ${source} recorded ${short(anchored.hash)} there: the chain was rewritten from #${anchored.chainIndex} or earlier with recomputed hashes`,
          );
        }
        const head = (await readChainHeads(pool, t))[t];
        if (!head) return broken('truncated', `the tenant has no events left, but ${recorded}`);
        if (head.chainIndex < anchored.chainIndex) {
          return broken('truncated', `the chain ends at #${head.chainIndex}, but ${recorded}: the events after #${head.chainIndex} were deleted`);
        }
        return broken('deleted', `event #${anchored.chainIndex} is missing, but ${recorded} and the chain goes on to #${head.chainIndex}`);
      }
      return { ok: true, checked };
    },
  };
}
export type AuditStore = ReturnType<typeof createAuditStore>;


/**
 * Replaces U+0000 and lone surrogates in every string and key of a value with U+FFFD. PostgreSQL refuses the first
 * and stores the second as U+FFFD itself; the hash must be computed over what is stored, or the chain breaks.
 */
export function withoutNul<T>(value: T): T {
  if (typeof value === 'string') return replaceLoneSurrogates(value.split('\u0000').join('\ufffd')) as T;
  if (Array.isArray(value)) return value.map((v) => withoutNul(v)) as T;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [withoutNul(k), withoutNul(v)])) as T;
  }
  return value;
}
