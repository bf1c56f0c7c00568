import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';

/** AES-256 needs exactly this many key bytes. */
export const PAYLOAD_KEY_BYTES = 32;

const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;
// Standard or URL-safe alphabet; Buffer.from(…, 'base64') would silently skip anything else.
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;

/** A malformed key ring. The message names the key id at fault, never key material. */
export class KeyRingError extends Error {
  override readonly name = 'KeyRingError';
}

/**
 * The payload keys: the first encrypts, all of them decrypt (rotation: put the new key first and keep the old
 * ones until no stored history needs them). Serialises and inspects as key ids only, so a stray log line cannot
 * leak key material.
 */
export class PayloadKeyRing {
  readonly activeKeyId: string;
  readonly #keys: ReadonlyMap<string, Buffer>;

  constructor(keys: readonly { id: string; key: Buffer }[]) {
    if (keys.length === 0) throw new KeyRingError('the key ring is empty');
    const map = new Map<string, Buffer>();
    for (const { id, key } of keys) {
      if (!KEY_ID.test(id)) throw new KeyRingError(`key id "${id.slice(0, 64)}" must be 1-64 characters of A-Z a-z 0-9 . _ -`);
      if (key.length !== PAYLOAD_KEY_BYTES) throw new KeyRingError(`key "${id}" must be ${PAYLOAD_KEY_BYTES} bytes, got ${key.length}`);
      if (map.has(id)) throw new KeyRingError(`key id "${id}" appears twice`);
      map.set(id, Buffer.from(key));
    }
    this.#keys = map;
    this.activeKeyId = keys[0].id;
  }

  /** The key with this id, or undefined. */
  key(id: string): Buffer | undefined {
    return this.#keys.get(id);
  }

  get activeKey(): Buffer {
    return this.#keys.get(this.activeKeyId)!;
  }

  get keyIds(): string[] {
    return [...this.#keys.keys()];
  }

  toJSON() {
    return { activeKeyId: this.activeKeyId, keyIds: this.keyIds };
  }

  [inspect.custom]() {
    return `PayloadKeyRing(${this.keyIds.join(', ')})`;
  }
}

/**
 * Parses `PAYLOAD_KEYS`: comma-separated `id:base64` entries, the active key first, e.g.
 * `k2:<base64 of 32 bytes>,k1:<base64 of 32 bytes>`. Throws `KeyRingError` without echoing key material.
 */
export function parseKeyRing(text: string): PayloadKeyRing {
  const entries = text
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  if (entries.length === 0) throw new KeyRingError('expected id:base64key entries separated by commas');
  const keys = entries.map((entry, i) => {
    const colon = entry.indexOf(':');
    if (colon <= 0) throw new KeyRingError(`entry ${i + 1} must be id:base64key`);
    const id = entry.slice(0, colon).trim();
    const encoded = entry.slice(colon + 1).trim();
    if (!KEY_ID.test(id)) throw new KeyRingError(`entry ${i + 1}: key id must be 1-64 characters of A-Z a-z 0-9 . _ -`);
    if (!BASE64.test(encoded)) throw new KeyRingError(`key "${id}" is not valid base64`);
    return { id, key: Buffer.from(encoded, 'base64') };
  });
  return new PayloadKeyRing(keys);
}

/** A fresh one-key ring in `PAYLOAD_KEYS` format, for development and for operators rotating keys. */
export function generateKeyRingText(id = `k${new Date().toISOString().slice(0, 10).replaceAll('-', '')}-${randomBytes(2).toString('hex')}`): string {
  return `${id}:${randomBytes(PAYLOAD_KEY_BYTES).toString('base64')}`;
}
