import type { Redis } from 'ioredis';

/**
 * Concurrency caps on active runs: per tenant and per pipeline per tenant. A run holds one slot in each from just
 * before it starts until it ends. The facade takes the slot (`acquire`); the worker frees it when the run ends
 * (`release`, from the `releaseRunSlot` activity). This module has no facade dependencies so the worker can use it.
 *
 * A slot is a member of two sorted sets whose score is the slot's expiry (epoch ms): a run that never releases
 * (a terminated workflow, a lost activity) stops counting once its definition's run timeout plus a margin has
 * passed, so a lost release cannot hold a slot for ever. Sooner than that, each start refused at a full cap makes
 * the facade look at the next batch of holders and free the slots of runs that have closed (`holders`,
 * run-admission.ts).
 */

/** How long a slot outlives its run's timeout before it expires on its own. @default 300000 @format ms */
export const RUN_SLOT_LEASE_MARGIN_MS = 5 * 60_000;

/**
 * Redis keys of one tenant's slots. The tenant is a hash tag, so both sets of one acquisition live in the same
 * cluster slot (one script touches both). Members are public run ids, `{pipeline}/{id}`.
 */
export function runSlotKeys(tenant: string, pipeline: string): { tenant: string; pipeline: string } {
  return { tenant: `agentry:runs:{${tenant}}`, pipeline: `agentry:runs:{${tenant}}:${pipeline}` };
}

export interface SlotRequest {
  tenant: string;
  /** The pipeline (definition name). */
  pipeline: string;
  /** The public run id, `{pipeline}/{id}` (`PipelineRunInput.runId`). */
  runId: string;
  /** Most runs the tenant may have active at once, over all pipelines. */
  tenantMax: number;
  /** Most runs of this pipeline the tenant may have active at once (the definition's `limits.maxConcurrentRuns`). */
  pipelineMax: number;
  /** The definition's `limits.runTimeoutMs`: the slot expires this long plus the lease margin after it was taken. @format ms */
  runTimeoutMs: number;
}

export type SlotDecision =
  | {
      ok: true;
      /** true when this call took the slot; false when the run id already held one (a retried start). */
      acquired: boolean;
      /** Active runs after the decision. */
      tenantActive: number;
      pipelineActive: number;
    }
  | {
      ok: false;
      /** The cap that is full: the tenant's, or the pipeline's within the tenant. */
      limit: 'tenant' | 'pipeline';
      max: number;
      active: number;
      /** A hint for `Retry-After`: the earliest lease expiry in the full set, at most `maxRetryAfterS`. @format s */
      retryAfterS: number;
    };

export interface RunSlots {
  /** 'redis' when the caps hold across every process sharing the Redis, 'in-process' when they hold per process. */
  readonly mode: 'redis' | 'in-process';
  /**
   * Atomically drops expired slots, checks both caps and takes a slot in both sets. Idempotent: a run id that
   * already holds a slot gets `{ ok: true, acquired: false }` and takes nothing more. Rejects when Redis is
   * unreachable.
   */
  acquire(req: SlotRequest): Promise<SlotDecision>;
  /** Frees the run's slot in both sets. Idempotent; freeing a slot that is not held does nothing. */
  release(tenant: string, pipeline: string, runId: string): Promise<void>;
  /** Active (unexpired) slots, for tests and diagnostics. */
  active(tenant: string, pipeline: string): Promise<{ tenant: number; pipeline: number }>;
  /**
   * Up to `n` run ids holding slots in the tenant's set, or in its set of `pipeline`, from position `start` in
   * order of lease expiry: callers sweep a full set a batch at a time.
   */
  holders(tenant: string, pipeline: string, scope: 'tenant' | 'pipeline', start: number, n: number): Promise<string[]>;
}

export interface RunSlotsOptions {
  /** Added to the run timeout to make a slot's lease. @default 300000 @format ms */
  leaseMarginMs?: number;
  /** Cap on the `retryAfterS` hint of a refusal: runs usually end long before their lease. @default 30 @format s */
  maxRetryAfterS?: number;
}

/*
 * KEYS[1] tenant set, KEYS[2] pipeline set.
 * ARGV[1] run id, ARGV[2] lease (ms), ARGV[3] tenant cap, ARGV[4] pipeline cap.
 * Returns {code, tenantActive, pipelineActive, msUntilEarliestExpiry}; code 1 acquired, 2 already held,
 * 0 tenant cap full, -1 pipeline cap full. Time is the Redis server's, so replicas with skewed clocks agree.
 */
const ACQUIRE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local held = redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZSCORE', KEYS[2], ARGV[1])
if held then
  redis.call('ZADD', KEYS[1], 'NX', held, ARGV[1])
  redis.call('ZADD', KEYS[2], 'NX', held, ARGV[1])
  return {2, redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]), 0}
end
local tenantActive = redis.call('ZCARD', KEYS[1])
local pipelineActive = redis.call('ZCARD', KEYS[2])
local full = nil
local code = 1
if tenantActive >= tonumber(ARGV[3]) then
  full = KEYS[1]
  code = 0
elseif pipelineActive >= tonumber(ARGV[4]) then
  full = KEYS[2]
  code = -1
end
if full then
  local first = redis.call('ZRANGE', full, 0, 0, 'WITHSCORES')
  local wait = 0
  if first[2] then wait = tonumber(first[2]) - now end
  return {code, tenantActive, pipelineActive, wait}
end
local expiry = string.format('%.0f', now + lease)
redis.call('ZADD', KEYS[1], expiry, ARGV[1])
redis.call('ZADD', KEYS[2], expiry, ARGV[1])
for i = 1, 2 do
  if redis.call('PTTL', KEYS[i]) < lease then redis.call('PEXPIRE', KEYS[i], lease) end
end
return {1, tenantActive + 1, pipelineActive + 1, 0}
`;

const ACQUIRE_COMMAND = 'agentryAcquireRunSlot';

type AcquireReply = [number, number, number, number];
type WithAcquire = Redis & { [ACQUIRE_COMMAND](tenantKey: string, pipelineKey: string, ...args: string[]): Promise<AcquireReply> };

function decide(req: SlotRequest, reply: AcquireReply, maxRetryAfterS: number): SlotDecision {
  const [code, tenantActive, pipelineActive, waitMs] = reply.map(Number) as AcquireReply;
  if (code === 1 || code === 2) return { ok: true, acquired: code === 1, tenantActive, pipelineActive };
  const limit = code === 0 ? 'tenant' : 'pipeline';
  return {
    ok: false,
    limit,
    max: limit === 'tenant' ? req.tenantMax : req.pipelineMax,
    active: limit === 'tenant' ? tenantActive : pipelineActive,
    retryAfterS: Math.min(maxRetryAfterS, Math.max(1, Math.ceil(waitMs / 1000))),
  };
}

/**
 * Run slots in Redis, atomic across every facade replica (one Lua script per acquisition). The worker needs only
 * `release`:
 *
 * ```ts
 * const slots = createRunSlots(createLimitsRedis(config.REDIS_URL));
 * await slots.release(principal.tenant, definition.name, runId); // runId = PipelineRunInput.runId
 * ```
 */
export function createRunSlots(redis: Redis, opts: RunSlotsOptions = {}): RunSlots {
  const margin = opts.leaseMarginMs ?? RUN_SLOT_LEASE_MARGIN_MS;
  const maxRetryAfterS = opts.maxRetryAfterS ?? 30;
  redis.defineCommand(ACQUIRE_COMMAND, { numberOfKeys: 2, lua: ACQUIRE_LUA });
  const client = redis as WithAcquire;
  return {
    mode: 'redis',
    async acquire(req) {
      const keys = runSlotKeys(req.tenant, req.pipeline);
      const reply = await client[ACQUIRE_COMMAND](
        keys.tenant,
        keys.pipeline,
        req.runId,
        String(req.runTimeoutMs + margin),
        String(req.tenantMax),
        String(req.pipelineMax),
      );
      return decide(req, reply, maxRetryAfterS);
    },
    async release(tenant, pipeline, runId) {
      const keys = runSlotKeys(tenant, pipeline);
      await redis.multi().zrem(keys.tenant, runId).zrem(keys.pipeline, runId).exec();
    },
    async active(tenant, pipeline) {
      const keys = runSlotKeys(tenant, pipeline);
      const now = Date.now();
      const [t, p] = await Promise.all([redis.zcount(keys.tenant, `(${now}`, '+inf'), redis.zcount(keys.pipeline, `(${now}`, '+inf')]);
      return { tenant: t, pipeline: p };
    },
    async holders(tenant, pipeline, scope, start, n) {
      return redis.zrange(runSlotKeys(tenant, pipeline)[scope], start, start + n - 1);
    },
  };
}

/**
 * Run slots in this process's memory, for a single facade without Redis (development, the demo). The same rules
 * as `createRunSlots`; another process (the worker) cannot release them, so the facade frees a slot itself when it
 * sees the run close.
 */
export function createMemoryRunSlots(opts: RunSlotsOptions & { now?: () => number } = {}): RunSlots {
  const margin = opts.leaseMarginMs ?? RUN_SLOT_LEASE_MARGIN_MS;
  const maxRetryAfterS = opts.maxRetryAfterS ?? 30;
  const now = opts.now ?? Date.now;
  const sets = new Map<string, Map<string, number>>();
  const live = (key: string, at: number): Map<string, number> => {
    let set = sets.get(key);
    if (!set) sets.set(key, (set = new Map()));
    for (const [member, expiry] of set) if (expiry <= at) set.delete(member);
    return set;
  };
  const earliest = (set: Map<string, number>) => Math.min(...set.values());
  return {
    mode: 'in-process',
    async acquire(req) {
      const at = now();
      const keys = runSlotKeys(req.tenant, req.pipeline);
      const t = live(keys.tenant, at);
      const p = live(keys.pipeline, at);
      const held = t.get(req.runId) ?? p.get(req.runId);
      if (held !== undefined) {
        t.set(req.runId, held);
        p.set(req.runId, held);
        return decide(req, [2, t.size, p.size, 0], maxRetryAfterS);
      }
      if (t.size >= req.tenantMax) return decide(req, [0, t.size, p.size, earliest(t) - at], maxRetryAfterS);
      if (p.size >= req.pipelineMax) return decide(req, [-1, t.size, p.size, earliest(p) - at], maxRetryAfterS);
      const expiry = at + req.runTimeoutMs + margin;
      t.set(req.runId, expiry);
      p.set(req.runId, expiry);
      return decide(req, [1, t.size, p.size, 0], maxRetryAfterS);
    },
    async release(tenant, pipeline, runId) {
      const keys = runSlotKeys(tenant, pipeline);
      for (const key of [keys.tenant, keys.pipeline]) {
        const set = sets.get(key);
        set?.delete(runId);
        if (set?.size === 0) sets.delete(key);
      }
    },
    async active(tenant, pipeline) {
      const keys = runSlotKeys(tenant, pipeline);
      const at = now();
      return { tenant: live(keys.tenant, at).size, pipeline: live(keys.pipeline, at).size };
    },
    async holders(tenant, pipeline, scope, start, n) {
      const set = live(runSlotKeys(tenant, pipeline)[scope], now());
      return [...set.entries()].sort((a, b) => a[1] - b[1]).slice(start, start + n).map(([runId]) => runId);
    },
  };
}
