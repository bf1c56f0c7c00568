import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { mintToken } from '../../src/facade/auth';
import { call } from '../helpers/http';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres';
import { exitOf, freePort, spawnService, waitForHttp, type Service } from '../helpers/processes';
import { startTemporal } from '../helpers/temporal';

const secret = randomBytes(32).toString('hex');
const tenant = `tp-${randomBytes(3).toString('hex')}`;
const MAX_FAILURES = 3;
/** Documentation addresses (RFC 5737): what a caller might claim to be. */
const CLAIMED = '203.0.113.7';
const OTHER = '198.51.100.9';

let env: TestWorkflowEnvironment;
let db: TestDatabase;
let common: Record<string, string>;
const services: Service[] = [];

const token = () => mintToken({ secret, issuer: 'agentry', audience: 'agentry-api', subject: 'tp-user', tenant, roles: ['viewer'] });

async function startFacade(extra: Record<string, string>): Promise<string> {
  const port = await freePort();
  // No REDIS_URL: each facade keeps its own intrusion detector, so a block here touches no other test.
  const service = spawnService('src/server.ts', { ...common, PORT: String(port), IDS_MAX_FAILURES: String(MAX_FAILURES), ...extra });
  services.push(service);
  const base = `http://127.0.0.1:${port}`;
  await waitForHttp(`${base}/health`, service);
  return base;
}

/** Fails authentication MAX_FAILURES times, each request claiming to come from `address`. */
async function failAs(base: string, address: string) {
  for (let i = 0; i < MAX_FAILURES; i++) {
    const r = await call(base, 'GET', '/v1/pipelines', { token: 'not.a.token', headers: { 'X-Forwarded-For': address } });
    expect(r.status).toBe(401);
  }
}

beforeAll(async () => {
  [env, db] = await Promise.all([startTemporal(), createTestDatabase()]);
  common = {
    DATABASE_URL: db.url,
    TEMPORAL_ADDRESS: env.address,
    TEMPORAL_TASK_QUEUE: `e2e-${tenant}`,
    JWT_SECRET: secret,
    AGENTRY_STATE_DIR: mkdtempSync(join(tmpdir(), 'agentry-tp-')),
  };
});

afterAll(async () => {
  await Promise.all(services.map((s) => s.stop()));
  await db?.drop();
  await env?.teardown();
});

test('without TRUST_PROXY a spoofed X-Forwarded-For does not choose the address the intrusion detector blocks', async () => {
  // Loopback not exempt, so the block that the failures earn is visible: it lands on the real peer, 127.0.0.1.
  const base = await startFacade({ IDS_EXEMPT_LOOPBACK: 'false' });
  await failAs(base, CLAIMED);
  const blocked = await call(base, 'GET', '/v1/pipelines', { token: await token(), headers: { 'X-Forwarded-For': OTHER } });
  expect(blocked.status).toBe(403);
  expect(blocked.type).toContain('application/problem+json');
  expect(blocked.json.code).toBe('temporarily_blocked');
  expect(blocked.json.detail).toContain('client address');
});

test('with TRUST_PROXY=loopback the forwarded address is the one blocked, and only that one', async () => {
  const base = await startFacade({ TRUST_PROXY: 'loopback' });
  await failAs(base, CLAIMED);
  const tk = await token();
  const blocked = await call(base, 'GET', '/v1/pipelines', { token: tk, headers: { 'X-Forwarded-For': CLAIMED } });
  expect(blocked.status).toBe(403);
  expect(blocked.json.code).toBe('temporarily_blocked');
  expect((await call(base, 'GET', '/v1/pipelines', { token: tk, headers: { 'X-Forwarded-For': OTHER } })).status).toBe(200);
  // The proxy itself (loopback, exempt) is not blocked for its other clients.
  expect((await call(base, 'GET', '/v1/pipelines', { token: tk })).status).toBe(200);
});

test.each([
  ['true', 'trusting every hop'],
  ['10.0.0.0/99', 'not an IP address'],
  ['proxy.internal', 'not an IP address'],
  ['0', 'hop count from 1 to 10'],
])('TRUST_PROXY=%s is refused at start-up, naming the key', async (value, message) => {
  const service = spawnService('src/server.ts', { ...common, PORT: String(await freePort()), TRUST_PROXY: value });
  services.push(service);
  const exit = await exitOf(service, 60_000);
  expect(exit.code).not.toBe(0);
  expect(exit.output).toContain('TRUST_PROXY');
  expect(exit.output).toContain(message);
});
