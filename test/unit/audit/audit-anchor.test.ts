import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AnchorError, HEADS_FORMAT, parseAnchor, readAnchor } from '../../../src/audit/audit-anchor';

const HASH = 'ab'.repeat(32);
const FILE = 'anchors/x.json';

const heads = (chainHeads: unknown, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ format: HEADS_FORMAT, takenAt: '2026-01-01T00:00:00.000Z', chainHeads, ...extra });

/** The message parseAnchor throws for `text`. */
function problem(text: string): string {
  try {
    parseAnchor(text, FILE);
  } catch (err) {
    expect(err).toBeInstanceOf(AnchorError);
    return (err as Error).message;
  }
  throw new Error('parseAnchor accepted the text');
}

test('reads an audit heads file, hashes in lowercase', () => {
  expect(parseAnchor(heads({ acme: { chainIndex: 9, hash: HASH.toUpperCase() } }), FILE)).toEqual({
    file: FILE,
    format: HEADS_FORMAT,
    takenAt: '2026-01-01T00:00:00.000Z',
    chainHeads: { acme: { chainIndex: 9, hash: HASH } },
  });
});

test('reads the chain heads of a backup manifest and ignores the rest of it', () => {
  const manifest = {
    format: 'agentry-backup/1',
    id: '20260101T000000Z-abcd',
    createdAt: '2026-01-01T00:00:00.000Z',
    database: { format: 'ndjson', rows: { audit_events: 9 }, chainHeads: { acme: { chainIndex: 9, hash: HASH } } },
    files: [],
  };
  expect(parseAnchor(JSON.stringify(manifest), 'b/manifest.json')).toEqual({
    file: 'b/manifest.json',
    format: 'agentry-backup/1',
    takenAt: '2026-01-01T00:00:00.000Z',
    chainHeads: { acme: { chainIndex: 9, hash: HASH } },
  });
});

test('names the file and the field of a bad value', () => {
  expect(problem(heads({ acme: { chainIndex: 3, hash: 'xyz' } }))).toBe(`${FILE}: chainHeads.acme.hash: expected 64 hex characters`);
  expect(problem(heads({ acme: { chainIndex: 0, hash: HASH } }))).toBe(`${FILE}: chainHeads.acme.chainIndex: expected a whole number of at least 1`);
  expect(problem(heads({ acme: { chainIndex: '3', hash: HASH } }))).toBe(`${FILE}: chainHeads.acme.chainIndex: expected a whole number of at least 1`);
  expect(problem(heads({ acme: { hash: HASH } }))).toBe(`${FILE}: chainHeads.acme.chainIndex: missing`);
  expect(problem(heads({ 'a b': 'x' }))).toBe(`${FILE}: chainHeads["a b"]: expected an object with chainIndex and hash`);
  expect(problem(heads([]))).toBe(`${FILE}: chainHeads: expected an object with each tenant's chainIndex and hash`);
  expect(problem(heads({}, { takenAt: 'yesterday' }))).toBe(`${FILE}: takenAt: expected an ISO 8601 date and time`);
  expect(problem(JSON.stringify({ format: 'agentry-backup/1', files: [] }))).toBe(`${FILE}: database: missing`);
});

test('lists several bad fields at once, and the error carries the first', () => {
  let err: AnchorError | undefined;
  try {
    parseAnchor(heads({ a: { chainIndex: 1, hash: 'x' }, b: { chainIndex: -1, hash: HASH } }), FILE);
  } catch (e) {
    err = e as AnchorError;
  }
  expect(err?.message).toBe(`${FILE}: chainHeads.a.hash: expected 64 hex characters; chainHeads.b.chainIndex: expected a whole number of at least 1`);
  expect(err).toMatchObject({ name: 'AnchorError', file: FILE, field: 'chainHeads.a.hash' });
});

test('an unknown or missing format names the two it reads', () => {
  expect(problem(JSON.stringify({ format: 'agentry-backup/2' }))).toBe(
    `${FILE}: format: expected "agentry-audit-heads/1" (written by agentry audit heads) or "agentry-backup/1" (a backup's manifest.json); found "agentry-backup/2"`,
  );
  expect(problem('{"chainHeads": {}}')).toMatch(/^anchors\/x\.json: format: expected .*; it has none$/);
});

test('text that is not JSON is located by line and column, without the input quoted back', () => {
  expect(problem('{\n  "format": "agentry-audit-heads/1",\n  chainHeads: {}\n}')).toBe(
    `${FILE}: not JSON: expected double-quoted property name at line 3, column 3`,
  );
  expect(problem('{"format": }')).toMatch(/^anchors\/x\.json: not JSON: (unexpected character '}'|.* at line 1, column 12)$/);
  expect(problem('{"format": "agentry-audit-heads/1"')).toMatch(/^anchors\/x\.json: not JSON: /);
  expect(problem('')).toBe(`${FILE}: the file is empty; expected an audit heads file or a backup manifest`);
  expect(problem('[1, 2]')).toBe(`${FILE}: expected a JSON object (an audit heads file or a backup manifest), found an array`);
  expect(problem('"heads"')).toBe(`${FILE}: expected a JSON object (an audit heads file or a backup manifest), found a string`);
});

test('tenants named constructor or __proto__ are heads like any other', () => {
  const hash = 'a'.repeat(64);
  const text = `{"format":"agentry-audit-heads/1","takenAt":"2026-12-03T00:00:00Z","chainHeads":{"constructor":{"chainIndex":3,"hash":"${hash}"},"__proto__":{"chainIndex":2,"hash":"${hash}"}}}`;
  const anchor = parseAnchor(text, 'heads.json');
  expect(Object.entries(anchor.chainHeads)).toEqual([
    ['constructor', { chainIndex: 3, hash }],
    ['__proto__', { chainIndex: 2, hash }],
  ]);
  expect(() => parseAnchor(text.replace('"chainIndex":2', '"chainIndex":"x"'), 'heads.json')).toThrow(/heads\.json: chainHeads\.__proto__\.chainIndex: expected a whole number/);
});

test('a FIFO or a device is refused at once, not read', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'agentry-anchor-fifo-'));
  const fifo = join(dir, 'heads.json');
  execFileSync('mkfifo', [fifo]);
  await expect(readAnchor(fifo)).rejects.toThrow(`${fifo}: not a regular file`);
  await expect(readAnchor('/dev/zero')).rejects.toThrow('/dev/zero: not a regular file');
});
