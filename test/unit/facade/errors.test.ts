import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import { ServiceError } from '@temporalio/client';
import { errorHandler } from '../../../src/facade/errors';
import { createLogger } from '../../../src/telemetry';

/** What the gRPC client throws: an Error with a status code, a details string and metadata. */
function grpcError(code: number, details: string): Error {
  return Object.assign(new Error(`${code} ${details}`), { code, details, metadata: {} });
}

let server: Server;
let base: string;
const thrown = new Map<string, unknown>();

beforeAll(async () => {
  const app = express();
  app.get('/throw/:name', (req) => {
    throw thrown.get(String(req.params.name));
  });
  app.use(errorHandler(createLogger({ level: 'silent', name: 'test' })));
  await new Promise<void>((resolve) => {
    server = app.listen(0, '127.0.0.1', () => resolve());
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

async function answer(name: string, err: unknown) {
  thrown.set(name, err);
  const res = await fetch(`${base}/throw/${name}`);
  return { status: res.status, type: res.headers.get('content-type'), retryAfter: res.headers.get('retry-after'), json: (await res.json()) as { code: string; detail: string } };
}

test('a run whose workflow task is failing answers 503 run_task_failing, not 500', async () => {
  const err = new ServiceError('Failed to query Workflow', { cause: grpcError(9, 'Workflow Task in failed state.') });
  const res = await answer('stuck', err);
  expect(res).toMatchObject({ status: 503, retryAfter: '60', json: { code: 'run_task_failing' } });
  expect(res.type).toMatch(/application\/problem\+json/);
});

test('Temporal and PostgreSQL outages answer 503 with Retry-After', async () => {
  expect(await answer('temporal', new ServiceError('Failed to start Workflow', { cause: grpcError(14, 'connection refused') }))).toMatchObject({
    status: 503,
    json: { code: 'temporal_unavailable' },
  });
  expect(await answer('pg', Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }))).toMatchObject({
    status: 503,
    json: { code: 'database_unavailable' },
  });
});

test('other failed preconditions and unknown errors stay 500, with a correlation id and no internals', async () => {
  const res = await answer('other', new ServiceError('Failed', { cause: grpcError(9, 'something else') }));
  expect(res.status).toBe(500);
  expect(res.json.code).toBe('internal_error');
  expect(res.json.detail).toMatch(/correlation id [0-9a-f-]{36}$/);
  expect(JSON.stringify(res.json)).not.toMatch(/something else|\/work|at /);
});
