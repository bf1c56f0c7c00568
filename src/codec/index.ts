import type { Config } from '../config';
import { AesGcmPayloadCodec } from './aes-gcm-codec';
import { loadOrCreateDevKeyRing } from './dev-key-file';

export {
  AesGcmPayloadCodec,
  ENCODING_ENCRYPTED,
  METADATA_KEY_ID,
  PayloadDecryptionError,
  type AesGcmCodecOptions,
  type PayloadDecryptionReason,
} from './aes-gcm-codec';
export { DEV_KEY_FILE, loadOrCreateDevKeyRing, publishDevKeyFile, type DevKeyRing } from './dev-key-file';
export { generateKeyRingText, KeyRingError, parseKeyRing, PAYLOAD_KEY_BYTES, PayloadKeyRing } from './key-ring';
export { payloadsFromJson, payloadsToJson, type JsonPayload } from './payload-json';

export interface PayloadCodecSetup {
  codec: AesGcmPayloadCodec;
  /** Where the keys came from, for the start-up log line (never the keys themselves). */
  keySource: 'PAYLOAD_KEYS' | 'development key file' | 'none';
  /** The development key file, when that is the source. */
  keyFile?: string;
}

/**
 * The payload codec of a facade or worker process. Keys come from PAYLOAD_KEYS; outside production, without it,
 * from the state directory's development key file, so processes sharing a state directory agree on the key.
 * Call `requirePayloadKeys(config)` first: production without PAYLOAD_KEYS is refused there.
 */
export function payloadCodecFromConfig(config: Pick<Config, 'NODE_ENV' | 'PAYLOAD_KEYS' | 'PAYLOAD_ENCRYPTION' | 'stateDir'>): PayloadCodecSetup {
  const encrypt = config.PAYLOAD_ENCRYPTION;
  if (config.PAYLOAD_KEYS) return { codec: new AesGcmPayloadCodec({ keys: config.PAYLOAD_KEYS, encrypt }), keySource: 'PAYLOAD_KEYS' };
  if (config.NODE_ENV === 'production') {
    if (encrypt) throw new Error('PAYLOAD_KEYS is required when NODE_ENV=production');
    return { codec: new AesGcmPayloadCodec({ encrypt: false }), keySource: 'none' };
  }
  const dev = loadOrCreateDevKeyRing(config.stateDir);
  return { codec: new AesGcmPayloadCodec({ keys: dev.ring, encrypt }), keySource: 'development key file', keyFile: dev.path };
}
