import { call, type Reply } from '../helpers/http';
import { createPgCluster, type PgCluster } from '../helpers/pg-cluster';
import type { Service } from '../helpers/processes';
import { createRedisServer, type RedisServer } from '../helpers/redis-server';
import { startStack, type Stack } from '../helpers/stack';
import { waitUntil } from '../helpers/wait';

let stack: Stack;
let cluster: PgCluster;
let redis: RedisServer;
let facade: Service;
let base: string;

/** Polls `/ready` until it answers `status`, and answers that reply. */
const readyAnswers = (status: number, what: string, timeoutMs = 30_000): Promise<Reply> =>
  waitUntil(
    `/ready to answer ${status} (${what})`,
    async () => {
      if (facade.child.exitCode !== null) throw Object.assign(new Error(`the facade exited:\n${facade.output()}`), { fatal: true });
      const r = await call(base, 'GET', '/ready');
      return r.status === status ? r : undefined;
    },
    timeoutMs,
    200,
  );

beforeAll(async () => {
  [cluster, redis] = await Promise.all([createPgCluster(), createRedisServer()]);
  cluster.start();
  await redis.start();
  // A worker on the queue, so that every check the facade makes can pass.
  stack = await startStack({ label: 'ro', databaseUrl: cluster.url, redis: redis.url });
  ({ base } = stack);
  facade = stack.facades[0].service;
});

afterAll(async () => {
  await stack?.stop();
  await redis?.destroy();
  cluster?.destroy();
});

function expectNotReady(reply: Reply, failing: 'postgres' | 'limiter', healthy: 'postgres' | 'limiter') {
  expect(reply.type).toContain('application/problem+json');
  expect(reply.json).toMatchObject({ status: 503, code: 'not_ready' });
  expect(reply.json.detail).toContain(failing);
  expect(reply.json.checks[failing].ok).toBe(false);
  expect(typeof reply.json.checks[failing].detail).toBe('string');
  expect(reply.json.checks[failing].detail.length).toBeGreaterThan(0);
  expect(reply.json.checks[healthy].ok).toBe(true);
  expect(reply.text).not.toMatch(/\n\s+at\s|\/src\/|node_modules/);
}

test('/ready answers 503 while PostgreSQL is down and 200 once it is back, without a restart', async () => {
  const ready = await call(base, 'GET', '/ready');
  expect(ready.status).toBe(200);
  expect(ready.json.checks).toMatchObject({ postgres: { ok: true }, limiter: { ok: true, mode: 'redis' } });
  const pid = facade.child.pid;

  cluster.stop();
  expectNotReady(await readyAnswers(503, 'PostgreSQL stopped'), 'postgres', 'limiter');
  // Liveness is not readiness: the process stays up and says so.
  expect((await call(base, 'GET', '/health')).status).toBe(200);

  cluster.start();
  const back = await readyAnswers(200, 'PostgreSQL started again');
  expect(back.json.checks.postgres).toMatchObject({ ok: true });
  expect(facade.child.exitCode).toBeNull();
  expect(facade.child.pid).toBe(pid);
});

test('/ready answers 503 with the limiter failing while Redis is down and 200 once it is back', async () => {
  expect((await readyAnswers(200, 'all up')).json.checks.limiter).toMatchObject({ ok: true, mode: 'redis' });

  await redis.stop();
  expectNotReady(await readyAnswers(503, 'redis-server killed'), 'limiter', 'postgres');

  await redis.start();
  const back = await readyAnswers(200, 'redis-server started again');
  expect(back.json.checks.limiter).toMatchObject({ ok: true, mode: 'redis' });
  expect(facade.child.exitCode).toBeNull();
});
