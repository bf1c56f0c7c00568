import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyRingText, KeyRingError, parseKeyRing, type PayloadKeyRing } from './key-ring';

/** File name, inside the state directory, of the development payload key ring. */
export const DEV_KEY_FILE = 'payload-keys';

export interface DevKeyRing {
  /** The ring in `PAYLOAD_KEYS` format, to hand to child processes. */
  text: string;
  ring: PayloadKeyRing;
  path: string;
  /** True when this call generated the key (first start with this state directory). */
  created: boolean;
}

/**
 * The development key ring of a state directory: read from `{stateDir}/payload-keys`, or generated and written
 * there (mode 0600) on first use. Keeping it beside the dev server's SQLite file means a restarted stack still
 * decrypts the runs it stored earlier. Safe when several processes start at once: the file is published with
 * link(2), so exactly one generated key wins and everyone reads that one. Not for production, where
 * PAYLOAD_KEYS comes from a secret store.
 */
export function loadOrCreateDevKeyRing(stateDir: string): DevKeyRing {
  const { path, text, created } = publishDevKeyFile(stateDir, DEV_KEY_FILE, 'dev-');
  try {
    return { text, ring: parseKeyRing(text), path, created };
  } catch (err) {
    throw new KeyRingError(`${path}: ${(err as Error).message} (delete the file to generate a new development key; runs stored under the old one become unreadable)`);
  }
}

/**
 * Writes a freshly generated one-key ring to `{stateDir}/{fileName}` unless the file exists, and returns the
 * file's text. Published with link(2), so processes starting at once agree on exactly one generated key.
 */
export function publishDevKeyFile(stateDir: string, fileName: string, keyIdPrefix: string): { path: string; text: string; created: boolean } {
  mkdirSync(stateDir, { recursive: true });
  const path = join(stateDir, fileName);
  let created = false;
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, `${generateKeyRingText(keyIdPrefix + randomBytes(3).toString('hex'))}\n`, { mode: 0o600, flag: 'wx' });
  try {
    linkSync(tmp, path);
    created = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    unlinkSync(tmp);
  }
  return { path, text: readFileSync(path, 'utf8').trim(), created };
}
