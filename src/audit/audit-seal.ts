import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * Fields of an audit event's `data` that identify or quote people (client addresses, user agents, free-text
 * comments and reasons). They are stored sealed: readable only with the audit seal keys, while everything else in
 * the trail stays plain for queries. The hash chain covers the sealed form, so verifying needs no key.
 */
export const SEALED_FIELDS = ['ip', 'userAgent', 'comment', 'reason'] as const;
export type SealedField = (typeof SEALED_FIELDS)[number];

/** The algorithm tag of a sealed value. */
export const SEAL_ALGORITHM = 'A256GCM';

const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Keys that seal and open fields: the active one seals, any of them opens (rotation keeps old ids readable).
 * `PayloadKeyRing` from `src/codec` satisfies it, so AUDIT_SEAL_KEYS is parsed like PAYLOAD_KEYS.
 */
export interface SealKeyRing {
  readonly activeKeyId: string;
  readonly activeKey: Buffer;
  /** Every key id, the active one first. */
  readonly keyIds: string[];
  key(id: string): Buffer | undefined;
}

/** How a sealed field is stored in `data`: AES-256-GCM over the field's JSON, bound to its event and name. */
export interface SealedValue {
  $sealed: typeof SEAL_ALGORITHM;
  /** Id of the key that sealed it (public). */
  kid: string;
  /** base64url: 12-byte IV, ciphertext, 16-byte tag. */
  iv: string;
  ct: string;
  tag: string;
}

export type UnsealFailureReason = 'unknown_key_id' | 'authentication_failed' | 'malformed';

/** A sealed field that cannot be opened. Names the field and key id, never key material or plaintext. */
export class AuditSealError extends Error {
  override readonly name = 'AuditSealError';
  constructor(
    readonly reason: UnsealFailureReason,
    readonly field: string,
    readonly keyId?: string,
  ) {
    super(`sealed field "${field}" cannot be opened: ${reason.replaceAll('_', ' ')}${keyId ? ` (key "${keyId}")` : ''}`);
  }
}

export function isSealed(value: unknown): value is SealedValue {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<SealedValue>;
  return v.$sealed === SEAL_ALGORITHM && typeof v.kid === 'string' && typeof v.iv === 'string' && typeof v.ct === 'string' && typeof v.tag === 'string';
}

/** Additional authenticated data: a sealed value opens only under the event and field it was sealed for. */
function aad(context: string, field: string): Buffer {
  return Buffer.from(`agentry-audit-seal/1\n${context}\n${field}`, 'utf8');
}

/**
 * Returns a copy of `data` whose sensitive top-level fields (`SEALED_FIELDS`) are AES-256-GCM sealed under the
 * active key. `context` binds each sealed value to its event (the store passes `{tenant}\n{eventId}`), so a sealed
 * comment copied into another event does not open. Absent (`undefined`) and `null` values stay as they are, and
 * values that are already sealed are not sealed twice.
 */
export function sealFields(data: Record<string, unknown>, keyring: SealKeyRing, context = ''): Record<string, unknown> {
  const out: Record<string, unknown> = { ...data };
  for (const field of SEALED_FIELDS) {
    const value = data[field];
    if (value === undefined || value === null || isSealed(value)) continue;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', keyring.activeKey, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(aad(context, field));
    const ct = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
    const sealed: SealedValue = {
      $sealed: SEAL_ALGORITHM,
      kid: keyring.activeKeyId,
      iv: iv.toString('base64url'),
      ct: ct.toString('base64url'),
      tag: cipher.getAuthTag().toString('base64url'),
    };
    out[field] = sealed;
  }
  return out;
}

/** Opens one sealed value. Throws `AuditSealError` when the key is unknown or the value was altered. */
export function unsealValue(value: SealedValue, keyring: Pick<SealKeyRing, 'key'>, context: string, field: string): unknown {
  const key = keyring.key(value.kid);
  if (!key) throw new AuditSealError('unknown_key_id', field, value.kid);
  const iv = Buffer.from(value.iv, 'base64url');
  const tag = Buffer.from(value.tag, 'base64url');
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new AuditSealError('malformed', field, value.kid);
  let plain: string;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad(context, field));
    decipher.setAuthTag(tag);
    plain = Buffer.concat([decipher.update(Buffer.from(value.ct, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    throw new AuditSealError('authentication_failed', field, value.kid);
  }
  try {
    return JSON.parse(plain) as unknown;
  } catch {
    throw new AuditSealError('malformed', field, value.kid);
  }
}

export interface UnsealResult {
  /** `data` with every sealed field that could be opened replaced by its plaintext. */
  data: Record<string, unknown>;
  /** Fields left sealed, with why (unknown key id, altered ciphertext). */
  failures: AuditSealError[];
}

/** Opens every sealed top-level field of `data` it can; the others stay sealed and are reported. */
export function unsealFields(data: Record<string, unknown>, keyring: Pick<SealKeyRing, 'key'>, context = ''): UnsealResult {
  const out: Record<string, unknown> = { ...data };
  const failures: AuditSealError[] = [];
  for (const [field, value] of Object.entries(data)) {
    if (!isSealed(value)) continue;
    try {
      out[field] = unsealValue(value, keyring, context, field);
    } catch (err) {
      if (!(err instanceof AuditSealError)) throw err;
      failures.push(err);
    }
  }
  return { data: out, failures };
}

/** The seal context of an event: its tenant and id. */
export function sealContext(event: { tenant: string; id: string }): string {
  return `${event.tenant}\n${event.id}`;
}
