import type { AddressInfo } from 'node:net';
import express from 'express';
import { Registry } from 'prom-client';
import { advisory, createHealthRoutes, type ReadinessCheck } from '../../../src/facade/health-routes';

interface ReadyBody {
  status?: string | number;
  code?: string;
  detail?: string;
  checks: Record<string, { ok: boolean; detail?: string; advisory?: boolean }>;
}

/** The routes on a loopback port; answers /ready once and closes. */
async function ready(checks: Record<string, ReadinessCheck>, draining = false) {
  const app = express().use(createHealthRoutes({ checks, registry: new Registry(), isDraining: () => draining }));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  try {
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/ready`);
    return { status: res.status, type: res.headers.get('content-type') ?? '', json: (await res.json()) as ReadyBody };
  } finally {
    await new Promise((r) => server.close(r));
  }
}

const ok: ReadinessCheck = async () => ({ ok: true });
const down: ReadinessCheck = async () => ({ ok: false, detail: 'no worker polled within 120 s' });

test('a failing check makes /ready 503 problem+json naming it', async () => {
  const res = await ready({ temporal: ok, workers: down });
  expect(res.status).toBe(503);
  expect(res.type).toContain('application/problem+json');
  expect(res.json).toMatchObject({ code: 'not_ready', detail: 'failing checks: workers', checks: { workers: { ok: false } } });
});

test('an advisory check is reported but does not fail /ready, even when it throws or hangs', async () => {
  const res = await ready({ temporal: ok, workers: advisory(down) });
  expect(res.status).toBe(200);
  expect(res.json).toEqual({ status: 'ready', checks: { temporal: { ok: true }, workers: { ok: false, advisory: true, detail: 'no worker polled within 120 s' } } });
  const thrown = await ready({ workers: advisory(async () => Promise.reject(new Error('Temporal is unavailable'))) });
  expect(thrown.status).toBe(200);
  expect(thrown.json.checks.workers).toEqual({ ok: false, advisory: true, detail: 'Temporal is unavailable' });
  const hung = await ready({ workers: advisory(() => new Promise(() => undefined)) });
  expect(hung.status).toBe(200);
  expect(hung.json.checks.workers).toMatchObject({ ok: false, advisory: true, detail: 'no answer within 2000 ms' });
  // Only the gating checks are named when something else fails.
  const both = await ready({ temporal: down, workers: advisory(down) });
  expect(both.status).toBe(503);
  expect(both.json.detail).toBe('failing checks: temporal');
});

test('a throwing check counts as failed, naming the error; draining is 503 whatever the checks say', async () => {
  const thrown = await ready({ postgres: async () => Promise.reject(new Error('connection refused')) });
  expect(thrown.json.checks.postgres).toEqual({ ok: false, detail: 'connection refused' });
  const draining = await ready({ temporal: ok }, true);
  expect(draining.status).toBe(503);
  expect(draining.json.code).toBe('draining');
});
