import { KeyRingError, parseKeyRing, publishDevKeyFile } from '../codec';
import { ConfigError, type Config } from '../config';
import type { SealKeyRing } from './audit-seal';

/** File name, inside the state directory, of the development audit seal keys. */
export const DEV_SEAL_KEY_FILE = 'audit-seal-keys';

export interface SealKeySetup {
  keys: SealKeyRing;
  /** Where the keys came from, for the start-up log line (never the keys themselves). */
  source: 'AUDIT_SEAL_KEYS' | 'development key file';
  keyFile?: string;
}

/**
 * The development seal keys of a state directory: `{stateDir}/audit-seal-keys`, generated on first use (32 random
 * bytes, mode 0600, key id `dev-seal-<hex>`), in AUDIT_SEAL_KEYS format. Every process sharing the state directory
 * (the demo's facade, worker and CLI) seals and opens with the same key. Published with link(2), so processes
 * starting at once agree on one generated key.
 */
export function loadOrCreateDevSealKeys(stateDir: string): { keys: SealKeyRing; path: string; created: boolean } {
  const { path, text, created } = publishDevKeyFile(stateDir, DEV_SEAL_KEY_FILE, 'dev-seal-');
  try {
    return { keys: parseKeyRing(text), path, created };
  } catch (err) {
    throw new KeyRingError(`${path}: ${(err as Error).message} (fields sealed under this file's key stay sealed if you replace it)`);
  }
}

/**
 * The audit seal keys of a process: AUDIT_SEAL_KEYS, or outside production the state directory's development key
 * file. Production without AUDIT_SEAL_KEYS is refused: a generated key would leave each process sealing with a key
 * nobody else holds.
 */
export function sealKeysFromConfig(config: Pick<Config, 'NODE_ENV' | 'AUDIT_SEAL_KEYS' | 'stateDir'>): SealKeySetup {
  if (config.AUDIT_SEAL_KEYS) return { keys: config.AUDIT_SEAL_KEYS, source: 'AUDIT_SEAL_KEYS' };
  if (config.NODE_ENV === 'production') {
    throw new ConfigError([{ key: 'AUDIT_SEAL_KEYS', message: 'required when NODE_ENV=production' }]);
  }
  const dev = loadOrCreateDevSealKeys(config.stateDir);
  return { keys: dev.keys, source: 'development key file', keyFile: dev.path };
}
