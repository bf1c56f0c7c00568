import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { call, type Reply } from '../helpers/http';
import { createPgCluster, type PgCluster } from '../helpers/pg-cluster';
import { freePort, spawnService, waitForHttp, type Service } from '../helpers/processes';
import { createRedisServer, type RedisServer } from '../helpers/redis-server';
import { startTemporal } from '../helpers/temporal';
import { waitUntil } from '../helpers/wait';

const tenant = `ro-${randomBytes(3).toString('hex')}`;

let env: TestWorkflowEnvironment;
let cluster: PgCluster;
let redis: RedisServer;
let facade: Service;
let worker: Service;
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
  [env, cluster, redis] = await Promise.all([startTemporal(), createPgCluster(), createRedisServer()]);
  cluster.start();
  await redis.start();
  const [port, metricsPort] = await Promise.all([freePort(), freePort()]);
  const common = {
    DATABASE_URL: cluster.url,
    TEMPORAL_ADDRESS: env.address,
    TEMPORAL_TASK_QUEUE: `e2e-${tenant}`,
    REDIS_URL: redis.url,
    JWT_SECRET: randomBytes(32).toString('hex'),
    AGENTRY_STATE_DIR: mkdtempSync(join(tmpdir(), 'agentry-ro-')),
  };
  // A worker on the queue, so that every check the facade makes can pass.
  worker = spawnService('src/worker.ts', { ...common, WORKER_METRICS_PORT: String(metricsPort) });
  facade = spawnService('src/server.ts', { ...common, PORT: String(port) });
  base = `http://127.0.0.1:${port}`;
  await Promise.all([waitForHttp(`${base}/ready`, facade), waitForHttp(`http://127.0.0.1:${metricsPort}/health`, worker)]);
});

afterAll(async () => {
  await Promise.all([facade?.stop(), worker?.stop()]);
  await redis?.destroy();
  cluster?.destroy();
  await env?.teardown();
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
