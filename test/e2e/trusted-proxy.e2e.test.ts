import { randomBytes } from 'node:crypto';
import { mintToken } from '../../src/facade/auth';
import { call } from '../helpers/http';
import { exitOf, freePort, spawnService } from '../helpers/processes';
import { startStack, type Stack } from '../helpers/stack';

const secret = randomBytes(32).toString('hex');
const tenant = `tp-${randomBytes(3).toString('hex')}`;
const MAX_FAILURES = 3;
/** Documentation addresses (RFC 5737): what a caller might claim to be. */
const CLAIMED = '203.0.113.7';
const OTHER = '198.51.100.9';

let stack: Stack;

const token = () => mintToken({ secret, issuer: 'agentry', audience: 'agentry-api', subject: 'tp-user', tenant, roles: ['viewer'] });

async function startFacade(extra: Record<string, string>): Promise<string> {
  return (await stack.startFacade({ IDS_MAX_FAILURES: String(MAX_FAILURES), ...extra })).url;
}

/** Fails authentication MAX_FAILURES times, each request claiming to come from `address`. */
async function failAs(base: string, address: string) {
  for (let i = 0; i < MAX_FAILURES; i++) {
    const r = await call(base, 'GET', '/v1/pipelines', { token: 'not.a.token', headers: { 'X-Forwarded-For': address } });
    expect(r.status).toBe(401);
  }
}

beforeAll(async () => {
  // No Redis: each facade keeps its own intrusion detector, so a block here touches no other test. No processes
  // yet: each test starts the facade it needs.
  stack = await startStack({ label: 'tp', secret, redis: false, facades: 0, workers: 0 });
});

afterAll(async () => {
  await stack?.stop();
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
  // Not through the stack: this facade is expected to exit, not to answer.
  const service = spawnService('src/server.ts', { ...stack.common, PORT: String(await freePort()), TRUST_PROXY: value });
  stack.services.push(service);
  const exit = await exitOf(service, 60_000);
  expect(exit.code).not.toBe(0);
  expect(exit.output).toContain('TRUST_PROXY');
  expect(exit.output).toContain(message);
});
