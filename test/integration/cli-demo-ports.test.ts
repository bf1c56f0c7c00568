import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, runCli } from '../helpers/processes';

let dir: string;
const servers: Server[] = [];

/** A port something else already listens on. */
async function takenPort(): Promise<number> {
  const srv = createServer();
  servers.push(srv);
  await new Promise<void>((resolveListen) => srv.listen(0, '127.0.0.1', resolveListen));
  return (srv.address() as { port: number }).port;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'agentry-demo-ports-'));
});
afterAll(async () => {
  await Promise.all(servers.map((srv) => new Promise((closed) => srv.close(closed))));
  rmSync(dir, { recursive: true, force: true });
});

test('the demo names every taken port (Web UI, local model, worker metrics) and the setting that moves it, before starting anything', async () => {
  const [ui, llm, metrics, facade] = await Promise.all([takenPort(), takenPort(), takenPort(), freePort()]);
  const run = await runCli(['demo', '--limit', '1', '--port', String(facade)], {
    AGENTRY_STATE_DIR: join(dir, 'state'),
    TEMPORAL_UI_URL: `http://127.0.0.1:${ui}`,
    LLM_LOCAL_PORT: String(llm),
    WORKER_METRICS_PORT: String(metrics),
    WORKER_SDK_METRICS_PORT: 'off',
  });

  expect(run.code).toBe(1);
  // Other ports of this shared machine (7233, 54329) may be taken too: each taken port gets a line of its own.
  expect(run.stderr).toMatch(/^agentry: (port \d+ |\d+ ports the stack needs are in use; nothing was started:\n)/);
  expect(run.stderr).toContain(`port ${ui} (the Temporal Web UI) is already in use: stop what holds it, or move the Web UI with TEMPORAL_UI_URL (e.g. TEMPORAL_UI_URL=http://127.0.0.1:${ui + 1}).`);
  expect(run.stderr).toContain(`port ${llm} (the local model server) is already in use: if a local model server runs there, reuse it with LLM_BASE_URL=http://127.0.0.1:${llm}/v1; otherwise stop what holds it, or set LLM_LOCAL_PORT (0 picks a free port).`);
  expect(run.stderr).toContain(`port ${metrics} (the worker metrics endpoint) is already in use: stop what holds it, or set WORKER_METRICS_PORT.`);
  expect(run.stderr).not.toContain(`port ${facade} `);
  // Nothing started: no stack lines, no child logs.
  expect(run.stdout).not.toMatch(/Temporal:|PostgreSQL:|LLM:/);
  expect(existsSync(join(dir, 'state', 'logs'))).toBe(false);
});
