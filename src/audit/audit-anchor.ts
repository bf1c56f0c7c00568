import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
// Not the backup index: it loads the backup service, which loads this folder's index again.
import { MANIFEST_FILE, MANIFEST_FORMAT } from '../backup/backup-manifest';
import type { ChainHead } from './audit-chain';

/** Largest anchor file read: a head per tenant is under 150 bytes, so this holds several hundred thousand tenants. */
const MAX_ANCHOR_BYTES = 64 * 1024 * 1024;

/** Format of the file `agentry audit heads` writes. */
export const HEADS_FORMAT = 'agentry-audit-heads/1';

/** What `agentry audit heads` writes: every tenant's chain head (or one tenant's) at `takenAt`. */
export interface HeadsFile {
  format: typeof HEADS_FORMAT;
  /** ISO 8601. */
  takenAt: string;
  chainHeads: Record<string, ChainHead>;
}

/** Chain heads recorded outside the database, read from a heads file or a backup manifest. */
export interface Anchor {
  /** The file they were read from, as given (a backup folder's `manifest.json`). */
  file: string;
  format: typeof HEADS_FORMAT | typeof MANIFEST_FORMAT;
  /** When the heads were taken (ISO 8601): a heads file's `takenAt`, a manifest's `createdAt`, when it has one. */
  takenAt?: string;
  chainHeads: Record<string, ChainHead>;
}

/** An anchor that cannot be read. The message names the file and, for a bad value, the field. */
export class AnchorError extends Error {
  override readonly name = 'AnchorError';
  constructor(
    readonly file: string,
    /** The first field at fault, as `chainHeads.acme.hash`; undefined when the file as a whole is. */
    readonly field: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** A zod message that tells a missing value from a wrong one. */
const expected = (what: string) => (iss: { input?: unknown }) => (iss.input === undefined ? 'missing' : `expected ${what}`);

const HEX64 = /^[0-9a-fA-F]{64}$/;
const chainHeadSchema = z.object(
  {
    chainIndex: z.int({ error: expected('a whole number of at least 1') }).min(1, { error: 'expected a whole number of at least 1' }),
    // Hashes are written lowercase; an anchor copied by hand in capitals still means the same hash.
    hash: z
      .string({ error: expected('64 hex characters') })
      .regex(HEX64, { error: 'expected 64 hex characters' })
      .transform((h) => h.toLowerCase()),
  },
  { error: expected('an object with chainIndex and hash') },
);
/**
 * Tenant → head. Checked entry by entry rather than with z.record, which refuses an object with an own
 * `constructor` key and drops `__proto__`: both are tenant names a heads file may hold.
 */
const chainHeadsSchema = z
  .custom<Record<string, unknown>>((v) => typeof v === 'object' && v !== null && !Array.isArray(v), {
    error: expected("an object with each tenant's chainIndex and hash"),
  })
  .transform((heads, ctx) => {
    const out: [string, ChainHead][] = [];
    for (const [tenant, head] of Object.entries(heads)) {
      const parsed = chainHeadSchema.safeParse(head);
      if (parsed.success) out.push([tenant, parsed.data]);
      else for (const issue of parsed.error.issues) ctx.addIssue({ ...issue, path: [tenant, ...issue.path] } as Parameters<typeof ctx.addIssue>[0]);
    }
    return Object.fromEntries(out) as Record<string, ChainHead>;
  });

const headsFileSchema = z.object({
  format: z.literal(HEADS_FORMAT),
  takenAt: z.iso.datetime({ offset: true, error: expected('an ISO 8601 date and time') }),
  chainHeads: chainHeadsSchema,
});

/** The part of a backup manifest an anchor needs; the backup commands check the rest. */
const manifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  createdAt: z.string().optional(),
  database: z.object({ chainHeads: chainHeadsSchema }, { error: expected('an object with chainHeads') }),
});

/** A data path as people write it: `chainHeads.acme.hash`, `chainHeads["a b"].hash`. */
function fieldOf(path: readonly PropertyKey[]): string {
  return path
    .map((k, i) => {
      if (typeof k === 'number') return `[${k}]`;
      const key = String(k);
      if (/^[A-Za-z_$][\w$-]*$/.test(key)) return i === 0 ? key : `.${key}`;
      return `[${JSON.stringify(key)}]`;
    })
    .join('');
}

/** Line and column (from 1) of a character position in `text`. */
function lineAndColumn(text: string, position: number): { line: number; column: number } {
  const before = text.slice(0, position).split('\n');
  return { line: before.length, column: before[before.length - 1].length + 1 };
}

/** JSON.parse's complaint as a sentence, located by line and column when it gives a position. */
function jsonProblem(text: string, err: Error): string {
  const at = /^(.*?) in JSON at position (\d+)/s.exec(err.message);
  if (at) {
    const { line, column } = lineAndColumn(text, Number(at[2]));
    return `${at[1].charAt(0).toLowerCase()}${at[1].slice(1)} at line ${line}, column ${column}`;
  }
  // Some messages quote the whole input after the token: name the token only.
  const token = /^Unexpected token (.+?), .* is not valid JSON$/s.exec(err.message);
  if (token) return `unexpected character ${token[1]}`;
  return `${err.message.charAt(0).toLowerCase()}${err.message.slice(1)}`;
}

/**
 * Reads an anchor from the text of `file`: an `agentry audit heads` file (`agentry-audit-heads/1`) or a backup's
 * manifest (`agentry-backup/1`, its `database.chainHeads`). Throws AnchorError naming the file and the field.
 */
export function parseAnchor(text: string, file: string): Anchor {
  const body = text.replace(/^\uFEFF/, '');
  if (body.trim() === '') throw new AnchorError(file, undefined, `${file}: the file is empty; expected an audit heads file or a backup manifest`);
  let data: unknown;
  try {
    data = JSON.parse(body);
  } catch (err) {
    throw new AnchorError(file, undefined, `${file}: not JSON: ${jsonProblem(body, err as Error)}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new AnchorError(file, undefined, `${file}: expected a JSON object (an audit heads file or a backup manifest), found ${Array.isArray(data) ? 'an array' : typeof data === 'object' ? 'null' : `a ${typeof data}`}`);
  }
  const format = (data as { format?: unknown }).format;
  const schema = format === HEADS_FORMAT ? headsFileSchema : format === MANIFEST_FORMAT ? manifestSchema : undefined;
  if (!schema) {
    const found = format === undefined ? 'it has none' : `found ${JSON.stringify(format)}`;
    throw new AnchorError(
      file,
      'format',
      `${file}: format: expected "${HEADS_FORMAT}" (written by agentry audit heads) or "${MANIFEST_FORMAT}" (a backup's ${MANIFEST_FILE}); ${found}`,
    );
  }
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({ field: fieldOf(i.path), message: i.message }));
    const shown = issues.slice(0, 5).map((i) => `${i.field ? `${i.field}: ` : ''}${i.message}`);
    if (issues.length > shown.length) shown.push(`and ${issues.length - shown.length} more`);
    throw new AnchorError(file, issues[0]?.field || undefined, `${file}: ${shown.join('; ')}`);
  }
  const anchor = parsed.data;
  return 'database' in anchor
    ? { file, format: anchor.format, ...(anchor.createdAt !== undefined ? { takenAt: anchor.createdAt } : {}), chainHeads: anchor.database.chainHeads }
    : { file, format: anchor.format, takenAt: anchor.takenAt, chainHeads: anchor.chainHeads };
}

/** Reads an anchor from `path`: a heads file, a backup's `manifest.json`, or a backup folder (its manifest). */
export async function readAnchor(path: string): Promise<Anchor> {
  const unreadable = (file: string, err: unknown) => {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file or folder' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a folder' : (err as Error).message;
    return new AnchorError(file, undefined, `${file}: cannot read the anchor: ${why}`);
  };
  const st = await stat(path).catch((err: unknown) => {
    throw unreadable(path, err);
  });
  let file = path;
  if (st.isDirectory()) {
    file = join(path, MANIFEST_FILE);
    const inside = await stat(file).catch(() => undefined);
    if (!inside?.isFile()) {
      throw new AnchorError(file, undefined, `${path}: a folder without ${MANIFEST_FILE}, so not a backup folder (or an unfinished one); give a backup folder, a ${MANIFEST_FILE} or an audit heads file`);
    }
  }
  // Only a regular file of a sane size: a FIFO would block the read for ever, a device could be endless.
  const info = file === path ? st : await stat(file).catch((err: unknown) => {
    throw unreadable(file, err);
  });
  if (!info.isFile()) throw new AnchorError(file, undefined, `${file}: not a regular file; give a heads file, a ${MANIFEST_FILE} or a backup folder`);
  if (info.size > MAX_ANCHOR_BYTES) throw new AnchorError(file, undefined, `${file}: ${info.size} bytes, more than an anchor can be (${MAX_ANCHOR_BYTES})`);
  const text = await readFile(file, 'utf8').catch((err: unknown) => {
    throw unreadable(file, err);
  });
  return parseAnchor(text, file);
}
