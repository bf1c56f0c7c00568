import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join, relative, sep } from 'node:path';
import { z } from 'zod';
import type { ChainHead } from '../audit';

// The chain head type belongs to the audit trail; re-exported for the backup code that records it.
export type { ChainHead };

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = 'agentry-backup/1';

export interface ManifestFile {
  /** Relative to the backup folder, `/`-separated. */
  path: string;
  bytes: number;
  sha256: string;
}

/** `manifest.json`: what a backup holds and the sha256 of every file in it. Written last: a folder with one is complete. */
export interface BackupManifest {
  format: typeof MANIFEST_FORMAT;
  id: string;
  /** ISO 8601. */
  createdAt: string;
  actor: string;
  database: {
    format: 'pg_dump' | 'ndjson';
    /** PostgreSQL server version at the snapshot. */
    serverVersion: string;
    /** `pg_dump --version`, for the pg_dump format. */
    tool?: string;
    /** Rows per table at the snapshot. */
    rows: Record<string, number>;
    /** Each tenant's chain head at the snapshot: what `audit verify --backup` checks a later truncation or rewrite against. */
    chainHeads: Record<string, ChainHead>;
  };
  /** Where the pipeline definitions were copied from. */
  pipelinesDir: string;
  files: ManifestFile[];
}

export function sha256Of(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** sha256 and size of a file, streamed. */
export function hashFile(path: string): Promise<{ sha256: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let bytes = 0;
    createReadStream(path)
      .on('data', (chunk) => {
        const b = chunk as Buffer;
        bytes += b.length;
        hash.update(b);
      })
      .once('error', reject)
      .once('end', () => resolve({ sha256: hash.digest('hex'), bytes }));
  });
}

/** Every regular file under `root`, as `/`-separated relative paths, sorted. */
export async function listFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) out.push(relative(root, full).split(sep).join('/'));
    }
  };
  await walk(root);
  return out.sort();
}

/** Backup ids: `YYYYMMDDTHHMMSSZ-<suffix>`, so they sort by time and name a folder safely. */
export const BACKUP_ID = /^\d{8}T\d{6}Z-[a-z0-9]{1,32}$/;

/** What a manifest must hold before any of it is used to name, count or delete anything. */
const manifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  id: z.string().regex(BACKUP_ID, 'expected a backup id, YYYYMMDDTHHMMSSZ-suffix'),
  createdAt: z.iso.datetime(),
  actor: z.string(),
  database: z.object({
    format: z.enum(['pg_dump', 'ndjson']),
    serverVersion: z.string(),
    tool: z.string().optional(),
    rows: z.record(z.string(), z.number().int().min(0)),
    chainHeads: z.record(z.string(), z.object({ chainIndex: z.number().int().min(0), hash: z.string() }).loose()),
  }),
  pipelinesDir: z.string(),
  files: z.array(z.object({ path: z.string(), bytes: z.number().int().min(0), sha256: z.string().regex(/^[0-9a-f]{64}$/) })),
});

/** Largest manifest read: it lists a backup's files, a few hundred bytes each. */
const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

export async function readManifest(folder: string): Promise<{ manifest: BackupManifest; sha256: string }> {
  const path = join(folder, MANIFEST_FILE);
  // A FIFO or a device planted as manifest.json would block or exhaust the reader: regular files of sane size only.
  const info = await stat(path);
  if (!info.isFile()) throw new Error(`${path} is not a regular file`);
  if (info.size > MAX_MANIFEST_BYTES) throw new Error(`${path} is ${info.size} bytes, more than a manifest can be`);
  const text = await readFile(path);
  let json: unknown;
  try {
    json = JSON.parse(text.toString('utf8'));
  } catch {
    throw new Error(`${path} is not JSON`);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new Error(`${path} is not an ${MANIFEST_FORMAT} manifest: /${first.path.join('/')}: ${first.message}`);
  }
  // The id names the folder that list, prune and restore act on: a manifest that names another one is not this backup.
  if (parsed.data.id !== basename(folder)) {
    throw new Error(`${path} is not an ${MANIFEST_FORMAT} manifest: /id: "${parsed.data.id}" is not its folder's name "${basename(folder)}"`);
  }
  return { manifest: parsed.data as BackupManifest, sha256: sha256Of(text) };
}

/** One file of a backup that does not match its manifest. */
export interface FileProblem {
  path: string;
  problem: 'missing' | 'unreadable' | 'size differs' | 'sha256 differs' | 'not in the manifest' | 'outside the backup folder';
}

/** Recomputes every file's sha256 against the manifest; extra files are problems too. */
export async function checkFiles(folder: string, manifest: BackupManifest): Promise<FileProblem[]> {
  const problems: FileProblem[] = [];
  const listed = new Set<string>();
  for (const f of manifest.files) {
    listed.add(f.path);
    // A manifest names files inside its own folder only: `a/b.sql`, never `/etc/x`, `../x` or `a\\b`.
    const segments = typeof f.path === 'string' ? f.path.split('/') : [];
    if (segments.length === 0 || segments.some((p) => p === '' || p === '.' || p === '..' || p.includes('\\'))) {
      problems.push({ path: String(f.path), problem: 'outside the backup folder' });
      continue;
    }
    const full = join(folder, ...segments);
    const st = await stat(full).catch(() => undefined);
    if (!st?.isFile()) {
      problems.push({ path: f.path, problem: 'missing' });
      continue;
    }
    const { sha256, bytes } = await hashFile(full);
    if (bytes !== f.bytes) problems.push({ path: f.path, problem: 'size differs' });
    else if (sha256 !== f.sha256) problems.push({ path: f.path, problem: 'sha256 differs' });
  }
  for (const path of await listFiles(folder)) {
    if (path !== MANIFEST_FILE && !listed.has(path)) problems.push({ path, problem: 'not in the manifest' });
  }
  return problems;
}
