import { createHash } from 'node:crypto';
import type { PayloadCodec } from '@temporalio/common';
import type { Pool } from 'pg';
import { ENCODING_ENCRYPTED } from '../codec/aes-gcm-codec';
import { payloadsFromJson, payloadsToJson } from '../codec/payload-json';

/** What travels through Temporal in place of a large value. */
export interface ClaimRef {
  $claim: string;
  bytes: number;
  sha256: string;
}

export function isClaimRef(value: unknown): value is ClaimRef {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as ClaimRef).$claim === 'string' &&
    typeof (value as ClaimRef).sha256 === 'string' &&
    Object.keys(value).length === 3
  );
}

export class ClaimMissingError extends Error {
  override readonly name = 'ClaimMissingError';
  constructor(
    readonly claimId: string,
    /** Why it cannot be read, when it is there but cannot be opened. */
    readonly reason?: string,
  ) {
    super(reason ? `claimed payload ${claimId} cannot be opened: ${reason}` : `claimed payload ${claimId} is missing or does not match its hash`);
  }
}

/**
 * An encrypted body is stored as this prefix and the payload codec's output as JSON. No JSON text starts with it,
 * so a plain body (written before encryption, or with it off) can never be taken for an encrypted one.
 */
const ENCRYPTED_PREFIX = 'agentry-encrypted-payload:';

export interface ClaimStoreOptions {
  /**
   * The payload codec the worker uses for Temporal: claimed values are Temporal payloads set aside, so they are
   * encrypted with the same keys (PAYLOAD_KEYS) before they reach PostgreSQL. Without it, or with encryption off,
   * bodies are stored as plain JSON.
   */
  codec?: PayloadCodec;
}

/**
 * Claim-check storage in PostgreSQL: large stage outputs are stored here and referenced by id, so runs never
 * push payloads near Temporal's 2 MB limit (which would fail the workflow task and retry it forever). Bodies
 * stored before encryption, or with it off, still read.
 */
export function createClaimStore(pool: Pool, opts: ClaimStoreOptions = {}) {
  const seal = async (body: string): Promise<string> => {
    if (!opts.codec) return body;
    const [encoded] = await opts.codec.encode([{ metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from(body, 'utf8') }]);
    if (Buffer.from(encoded.metadata?.encoding ?? []).toString() !== ENCODING_ENCRYPTED) return body;
    return `${ENCRYPTED_PREFIX}${JSON.stringify(payloadsToJson([encoded]).payloads[0])}`;
  };
  const open = async (stored: string, claimId: string): Promise<string> => {
    if (!stored.startsWith(ENCRYPTED_PREFIX)) return stored;
    if (!opts.codec) throw new ClaimMissingError(claimId, 'it is encrypted and this process has no payload keys');
    let read: ReturnType<typeof payloadsFromJson>;
    try {
      read = payloadsFromJson({ payloads: [JSON.parse(stored.slice(ENCRYPTED_PREFIX.length)) as unknown] });
    } catch {
      throw new ClaimMissingError(claimId, 'its stored form is not readable');
    }
    if ('errors' in read) throw new ClaimMissingError(claimId, 'its stored form is not readable');
    const [decoded] = await opts.codec.decode(read.payloads).catch((err: unknown) => {
      // The codec names the problem (an unknown key id: add that key to PAYLOAD_KEYS; altered bytes).
      throw new ClaimMissingError(claimId, err instanceof Error ? err.message : String(err));
    });
    return Buffer.from(decoded.data ?? []).toString('utf8');
  };

  return {
    async put(ref: { id: string; tenant: string; runId: string; stage: string }, value: unknown): Promise<ClaimRef> {
      const plain = JSON.stringify(value);
      const sha256 = createHash('sha256').update(plain).digest('hex');
      const bytes = Buffer.byteLength(plain, 'utf8');
      const body = await seal(plain);
      // A retried stage stores its own latest attempt under the same id: the reference it returns matches.
      await pool.query(
        `INSERT INTO stage_payloads (id, tenant, run_id, stage, sha256, bytes, body) VALUES ($1,$2,$3,$4,$5,$6,$7)
         ON CONFLICT (id) DO UPDATE SET sha256 = EXCLUDED.sha256, bytes = EXCLUDED.bytes, body = EXCLUDED.body`,
        // The column holds the hash of what is stored: a hash of the plaintext next to its ciphertext would let
        // a reader of the database confirm a guessed value.
        [ref.id, ref.tenant, ref.runId, ref.stage, body === plain ? sha256 : createHash('sha256').update(body).digest('hex'), bytes, body],
      );
      return { $claim: ref.id, bytes, sha256 };
    },

    async get(ref: ClaimRef, tenant: string): Promise<unknown> {
      const res = await pool.query<{ body: string }>('SELECT body FROM stage_payloads WHERE id = $1 AND tenant = $2', [
        ref.$claim,
        tenant,
      ]);
      const row = res.rows[0];
      if (!row) throw new ClaimMissingError(ref.$claim);
      const plain = await open(row.body, ref.$claim);
      // The hash in the reference travelled through Temporal: a body altered or swapped in the database fails it.
      if (createHash('sha256').update(plain).digest('hex') !== ref.sha256) throw new ClaimMissingError(ref.$claim);
      return JSON.parse(plain) as unknown;
    },

    /** Replaces every claim reference inside `value` with the stored value. */
    async resolve(value: unknown, tenant: string): Promise<unknown> {
      if (isClaimRef(value)) return this.get(value, tenant);
      if (Array.isArray(value)) return Promise.all(value.map((v) => this.resolve(v, tenant)));
      if (value && typeof value === 'object') {
        const entries = await Promise.all(Object.entries(value).map(async ([k, v]) => [k, await this.resolve(v, tenant)] as const));
        return Object.fromEntries(entries);
      }
      return value;
    },
  };
}
export type ClaimStore = ReturnType<typeof createClaimStore>;

/**
 * Moves the largest top-level fields of an output into the store until what remains fits `maxBytes`; if that is
 * not enough, claims the whole output. Small outputs come back unchanged.
 */
export async function claimLargeFields(
  store: ClaimStore,
  output: unknown,
  maxBytes: number,
  ref: { idPrefix: string; tenant: string; runId: string; stage: string },
): Promise<{ value: unknown; claimed: string[] }> {
  const size = (v: unknown) => Buffer.byteLength(JSON.stringify(v) ?? '', 'utf8');
  if (size(output) <= maxBytes) return { value: output, claimed: [] };
  if (!output || typeof output !== 'object' || Array.isArray(output)) {
    return { value: await store.put({ ...ref, id: `${ref.idPrefix}/$` }, output), claimed: ['$'] };
  }
  const fields = Object.entries(output as Record<string, unknown>).sort((a, b) => size(b[1]) - size(a[1]));
  const result: Record<string, unknown> = { ...(output as Record<string, unknown>) };
  const claimed: string[] = [];
  for (const [key, value] of fields) {
    if (size(result) <= maxBytes) break;
    result[key] = await store.put({ ...ref, id: `${ref.idPrefix}/${key}` }, value);
    claimed.push(key);
  }
  if (size(result) > maxBytes) return { value: await store.put({ ...ref, id: `${ref.idPrefix}/$` }, output), claimed: ['$'] };
  return { value: result, claimed };
}
