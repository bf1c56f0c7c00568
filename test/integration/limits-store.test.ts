import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import {
  createIntrusionDetector,
  createLimitsRedis,
  createMemoryRunSlots,
  createRunSlots,
  runSlotKeys,
  type RunSlots,
  type SlotRequest,
} from '../../src/security';

/** The run-slot and intrusion-detector stores, in Redis (127.0.0.1:6379) and in memory: the same rules for both. */
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
let redis: Redis;

beforeAll(async () => {
  redis = createLimitsRedis(REDIS_URL);
  await new Promise<void>((resolve, reject) => {
    redis.once('ready', resolve);
    redis.once('error', reject);
  });
});
afterAll(async () => {
  await redis?.quit();
});

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

describe.each([
  ['redis', () => createRunSlots(redis)],
  ['memory', () => createMemoryRunSlots()],
])('run slots (%s)', (_name, make: () => RunSlots) => {
  const request = (tenant: string, runId: string, over: Partial<SlotRequest> = {}): SlotRequest => ({
    tenant,
    pipeline: 'p',
    runId,
    tenantMax: 3,
    pipelineMax: 2,
    runTimeoutMs: 60_000,
    ...over,
  });

  test('holds the pipeline cap, then the tenant cap across pipelines, and frees a slot on release', async () => {
    const slots = make();
    const tenant = unique('slots');
    expect(await slots.acquire(request(tenant, 'p/1'))).toEqual({ ok: true, acquired: true, tenantActive: 1, pipelineActive: 1 });
    expect(await slots.acquire(request(tenant, 'p/2'))).toMatchObject({ ok: true, acquired: true, pipelineActive: 2 });
    const full = await slots.acquire(request(tenant, 'p/3'));
    expect(full).toMatchObject({ ok: false, limit: 'pipeline', max: 2, active: 2 });
    expect(full.ok === false && full.retryAfterS).toBeGreaterThanOrEqual(1);
    expect(full.ok === false && full.retryAfterS).toBeLessThanOrEqual(30);

    expect(await slots.acquire(request(tenant, 'q/1', { pipeline: 'q' }))).toMatchObject({ ok: true, tenantActive: 3, pipelineActive: 1 });
    expect(await slots.acquire(request(tenant, 'q/2', { pipeline: 'q' }))).toMatchObject({ ok: false, limit: 'tenant', max: 3, active: 3 });

    await slots.release(tenant, 'p', 'p/1');
    await slots.release(tenant, 'p', 'p/1');
    expect(await slots.active(tenant, 'p')).toEqual({ tenant: 2, pipeline: 1 });
    expect(await slots.acquire(request(tenant, 'p/3'))).toMatchObject({ ok: true, acquired: true });
  });

  test('a run id that already holds a slot takes no second one, even at the cap', async () => {
    const slots = make();
    const tenant = unique('slots');
    await slots.acquire(request(tenant, 'p/1'));
    await slots.acquire(request(tenant, 'p/2'));
    expect(await slots.acquire(request(tenant, 'p/1'))).toEqual({ ok: true, acquired: false, tenantActive: 2, pipelineActive: 2 });
    expect(await slots.active(tenant, 'p')).toEqual({ tenant: 2, pipeline: 2 });
  });

  test('an unreleased slot stops counting once its lease (run timeout plus margin) has passed', async () => {
    const slots = _name === 'redis' ? createRunSlots(redis, { leaseMarginMs: 0 }) : createMemoryRunSlots({ leaseMarginMs: 0 });
    const tenant = unique('slots');
    await slots.acquire(request(tenant, 'p/1', { runTimeoutMs: 200 }));
    await slots.acquire(request(tenant, 'p/2', { runTimeoutMs: 200 }));
    expect(await slots.acquire(request(tenant, 'p/3'))).toMatchObject({ ok: false, limit: 'pipeline' });
    await new Promise((r) => setTimeout(r, 300));
    expect(await slots.acquire(request(tenant, 'p/3'))).toMatchObject({ ok: true, acquired: true, pipelineActive: 1 });
  });

  test('holders pages through a set in order of lease expiry', async () => {
    const slots = make();
    const tenant = unique('slots');
    // q's lease is long: its slot sorts after p's later ones in the tenant's set.
    await slots.acquire(request(tenant, 'p/1'));
    await slots.acquire(request(tenant, 'q/1', { pipeline: 'q', runTimeoutMs: 600_000 }));
    await new Promise((r) => setTimeout(r, 5));
    await slots.acquire(request(tenant, 'p/2'));
    expect(await slots.holders(tenant, 'p', 'pipeline', 0, 10)).toEqual(['p/1', 'p/2']);
    expect(await slots.holders(tenant, 'p', 'tenant', 0, 2)).toEqual(['p/1', 'p/2']);
    expect(await slots.holders(tenant, 'p', 'tenant', 2, 2)).toEqual(['q/1']);
    expect(await slots.holders(tenant, 'p', 'tenant', 3, 2)).toEqual([]);
    await slots.release(tenant, 'p', 'p/1');
    expect(await slots.holders(tenant, 'q', 'tenant', 0, 10)).toEqual(['p/2', 'q/1']);
  });

});

test('run-slot keys expire with their longest lease, so an idle tenant leaves nothing behind in Redis', async () => {
  const slots = createRunSlots(redis, { leaseMarginMs: 1000 });
  const tenant = unique('slots');
  await slots.acquire({ tenant, pipeline: 'p', runId: 'p/1', tenantMax: 5, pipelineMax: 5, runTimeoutMs: 5000 });
  const keys = runSlotKeys(tenant, 'p');
  for (const key of [keys.tenant, keys.pipeline]) {
    const ttl = await redis.pttl(key);
    expect(ttl).toBeGreaterThan(5000);
    expect(ttl).toBeLessThanOrEqual(6000);
  }
});

test('concurrent acquisitions from many clients never exceed the cap', async () => {
  const clients = Array.from({ length: 4 }, () => createLimitsRedis(REDIS_URL));
  try {
    await Promise.all(clients.map((c) => new Promise((r) => c.once('ready', r))));
    const stores = clients.map((c) => createRunSlots(c));
    const tenant = unique('slots');
    const decisions = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        stores[i % stores.length].acquire({ tenant, pipeline: 'p', runId: `p/${i}`, tenantMax: 1000, pipelineMax: 7, runTimeoutMs: 60_000 }),
      ),
    );
    expect(decisions.filter((d) => d.ok)).toHaveLength(7);
  } finally {
    await Promise.all(clients.map((c) => c.quit()));
  }
});

describe.each(['redis', 'memory'])('intrusion detector (%s)', (name) => {
  const make = (opts: { windowS?: number; blockS?: number } = {}) =>
    createIntrusionDetector({ windowS: opts.windowS ?? 60, maxFailures: 3, blockS: opts.blockS ?? 60, redis: name === 'redis' ? redis : undefined });

  test('the Nth failure in a window starts a block, reported once; unblock lifts it', async () => {
    const ids = make();
    const who = { kind: 'subject' as const, tenant: unique('ids'), subject: 'mallory' };
    expect(await ids.recordFailure(who)).toBe(false);
    expect(await ids.recordFailure(who)).toBe(false);
    expect(await ids.blockedFor(who)).toBe(0);
    expect(await ids.recordFailure(who)).toBe(true);
    expect(await ids.blockedFor(who)).toBeGreaterThan(59_000);
    expect(await ids.recordFailure(who)).toBe(false);
    // Another subject of the same tenant, and the same name in another tenant, are not affected.
    expect(await ids.blockedFor({ ...who, subject: 'alice' })).toBe(0);
    expect(await ids.blockedFor({ ...who, tenant: `${who.tenant}-x` })).toBe(0);
    await ids.unblock(who);
    expect(await ids.blockedFor(who)).toBe(0);
  });

  test('failures spread over more than one window do not block, and a block ends by itself', async () => {
    const ids = make({ windowS: 1, blockS: 1 });
    const who = { kind: 'address' as const, address: `198.51.100.${randomBytes(1)[0]}-${unique('a')}` };
    await ids.recordFailure(who);
    await ids.recordFailure(who);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await ids.recordFailure(who)).toBe(false);
    expect(await ids.recordFailure(who)).toBe(false);
    expect(await ids.recordFailure(who)).toBe(true);
    expect(await ids.blockedFor(who)).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await ids.blockedFor(who)).toBe(0);
  });
});

test('concurrent failures across clients start exactly one block', async () => {
  const clients = Array.from({ length: 3 }, () => createLimitsRedis(REDIS_URL));
  try {
    await Promise.all(clients.map((c) => new Promise((r) => c.once('ready', r))));
    const detectors = clients.map((c) => createIntrusionDetector({ windowS: 60, maxFailures: 10, blockS: 60, redis: c }));
    const who = { kind: 'address' as const, address: unique('203.0.113') };
    const started = await Promise.all(Array.from({ length: 60 }, (_, i) => detectors[i % 3].recordFailure(who)));
    expect(started.filter(Boolean)).toHaveLength(1);
  } finally {
    await Promise.all(clients.map((c) => c.quit()));
  }
});
