import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { METADATA_ENCODING_KEY, type Payload, type PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { PayloadKeyRing } from './key-ring';

/** `encoding` metadata of a payload this codec encrypted. */
export const ENCODING_ENCRYPTED = 'binary/encrypted';
/** Metadata naming the key that encrypted a payload (public: an id, not key material). */
export const METADATA_KEY_ID = 'encryption-key-id';

const ALGORITHM = 'aes-256-gcm';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const ProtoPayload = temporal.api.common.v1.Payload;

export type PayloadDecryptionReason = 'missing_key_id' | 'unknown_key_id' | 'malformed' | 'authentication_failed';

/** A payload that cannot be decrypted. Carries the key id (public) and why, never key material or plaintext. */
export class PayloadDecryptionError extends Error {
  override readonly name = 'PayloadDecryptionError';
  constructor(
    readonly reason: PayloadDecryptionReason,
    message: string,
    readonly keyId?: string,
  ) {
    super(message);
  }
}

export interface AesGcmCodecOptions {
  /** Keys to decrypt with; the active one also encrypts. Required when `encrypt` is true. */
  keys?: PayloadKeyRing;
  /** Encrypt new payloads (PAYLOAD_ENCRYPTION). When false, encode passes payloads through and decode still decrypts. @default true */
  encrypt?: boolean;
}

const utf8 = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | null | undefined) => (b ? Buffer.from(b).toString('utf8') : undefined);

/**
 * Encrypts each whole payload (metadata and data, serialised as a `temporal.api.common.v1.Payload` protobuf) with
 * AES-256-GCM under a random 12-byte IV. The stored payload is `encoding: binary/encrypted`, `encryption-key-id:
 * <id>`, data = IV || ciphertext || 16-byte tag. Decoding picks the key by id, so payloads written under older keys
 * stay readable after rotation, and passes through payloads that were never encrypted (histories recorded before
 * encryption was on). Runs outside the workflow sandbox, in clients and workers.
 */
export class AesGcmPayloadCodec implements PayloadCodec {
  readonly encrypts: boolean;
  readonly #keys?: PayloadKeyRing;

  constructor(opts: AesGcmCodecOptions) {
    this.encrypts = opts.encrypt ?? true;
    if (this.encrypts && !opts.keys) throw new Error('payload encryption is on but no keys were given');
    this.#keys = opts.keys;
  }

  /** Id of the key new payloads are encrypted with; undefined when encryption is off. */
  get activeKeyId(): string | undefined {
    return this.encrypts ? this.#keys?.activeKeyId : undefined;
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    if (!this.encrypts) return payloads;
    const keys = this.#keys!;
    const keyId = keys.activeKeyId;
    return payloads.map((payload) => {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv(ALGORITHM, keys.activeKey, iv, { authTagLength: TAG_BYTES });
      const sealed = Buffer.concat([iv, cipher.update(ProtoPayload.encode(payload).finish()), cipher.final(), cipher.getAuthTag()]);
      return {
        metadata: { [METADATA_ENCODING_KEY]: utf8(ENCODING_ENCRYPTED), [METADATA_KEY_ID]: utf8(keyId) },
        data: sealed,
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.#decodeOne(payload));
  }

  #decodeOne(payload: Payload): Payload {
    if (text(payload.metadata?.[METADATA_ENCODING_KEY]) !== ENCODING_ENCRYPTED) return payload;
    const keyId = text(payload.metadata?.[METADATA_KEY_ID]);
    if (!keyId) throw new PayloadDecryptionError('missing_key_id', `an encrypted payload has no "${METADATA_KEY_ID}" metadata`);
    const key = this.#keys?.key(keyId);
    if (!key) {
      const known = this.#keys ? this.#keys.keyIds.join(', ') : 'none (PAYLOAD_KEYS is not set)';
      throw new PayloadDecryptionError(
        'unknown_key_id',
        `payload was encrypted with key "${keyId}", which is not in PAYLOAD_KEYS (configured: ${known}); add that key to the ring to read it`,
        keyId,
      );
    }
    const data = payload.data ?? new Uint8Array();
    if (data.length < IV_BYTES + TAG_BYTES) {
      throw new PayloadDecryptionError('malformed', `encrypted payload (key "${keyId}") is ${data.length} bytes, too short to hold IV and tag`, keyId);
    }
    let plain: Buffer;
    try {
      const decipher = createDecipheriv(ALGORITHM, key, data.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new PayloadDecryptionError(
        'authentication_failed',
        `encrypted payload (key "${keyId}") failed authentication: it was altered, or "${keyId}" is not the key it was encrypted with`,
        keyId,
      );
    }
    try {
      return ProtoPayload.decode(plain);
    } catch {
      throw new PayloadDecryptionError('malformed', `decrypted payload (key "${keyId}") is not a Payload protobuf`, keyId);
    }
  }
}
