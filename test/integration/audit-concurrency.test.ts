import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { createAuditStore } from '../../src/audit';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres';

const ROOT = resolve(__dirname, '..', '..');
const WRITER = resolve(ROOT, 'test/helpers/append-audit-events.ts');
const PER_PROCESS = 500;

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

interface Writer {
  ready: Promise<void>;
  go(): void;
  done: Promise<{ inserted: number }>;
}

/** One writer process: `ready` once connected, appends on `go()`, `done` with what it printed (its output on failure). */
function writer(tenant: string, name: string): Writer {
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, db.url, tenant, name, String(PER_PROCESS)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((r) => (onReady = r));
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.startsWith('ready\n')) onReady();
  });
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<{ inserted: number }>((resolveRun, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolveRun(JSON.parse(out.trim().split('\n').pop() ?? '{}')) : reject(new Error(`writer ${name} exited ${code}:\n${out}`))));
  });
  // A writer that dies before it is ready fails the wait instead of hanging it.
  return { ready: Promise.race([ready, done.then(() => undefined)]), go: () => child.stdin.end('go\n'), done };
}

test(`2 worker processes × ${PER_PROCESS} concurrent appends for one tenant leave one linear chain`, async () => {
  const tenant = 't-two-processes';
  const writers = [writer(tenant, 'w1'), writer(tenant, 'w2')];
  // Both start appending at the same moment, once their runtimes have loaded and connected.
  await Promise.all(writers.map((w) => w.ready));
  for (const w of writers) w.go();
  const results = await Promise.all(writers.map((w) => w.done));
  expect(results).toEqual([{ inserted: PER_PROCESS }, { inserted: PER_PROCESS }]);

  const { rows } = await db.pool.query<{ n: number; ids: number; min: number; max: number; links: number }>(
    `SELECT count(*)::int AS n, count(DISTINCT id)::int AS ids, min(chain_index)::int AS min, max(chain_index)::int AS max,
            count(DISTINCT prev_hash)::int AS links
       FROM audit_events WHERE tenant = $1`,
    [tenant],
  );
  // 1000 rows at positions 1..1000, each linking to a different predecessor: no fork, no gap, no duplicate.
  expect(rows[0]).toEqual({ n: 2 * PER_PROCESS, ids: 2 * PER_PROCESS, min: 1, max: 2 * PER_PROCESS, links: 2 * PER_PROCESS });
  // The writers really interleaved: the chain alternates between them more than a handful of times.
  const order = await db.pool.query<{ actor: string }>('SELECT actor FROM audit_events WHERE tenant = $1 ORDER BY chain_index', [tenant]);
  const switches = order.rows.filter((r, i) => i > 0 && r.actor !== order.rows[i - 1].actor).length;
  expect(switches).toBeGreaterThan(10);
  await expect(createAuditStore(db.pool).verify(tenant)).resolves.toEqual({ ok: true, tenants: 1, events: 2 * PER_PROCESS });
});
