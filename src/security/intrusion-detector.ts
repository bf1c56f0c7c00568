import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * Blocks a caller that keeps failing authentication or authorisation. Failures are counted per identity (a
 * subject of a tenant, or a client address) in a fixed window; the failure that reaches the threshold starts a
 * block of fixed length, during which every request of that identity is refused. Counters live in Redis, shared
 * by every facade replica, or in memory for a single process.
 */

/** Who failed: an authenticated subject of one tenant, or a client address. */
export type Identity = { kind: 'subject'; tenant: string; subject: string } | { kind: 'address'; address: string };

export interface IntrusionDetectorOptions {
  /** Length of the window failures are counted in (fixed, from the first failure). @format s */
  windowS: number;
  /** Failures within one window that start a block: the Nth failure blocks, request N+1 is refused. */
  maxFailures: number;
  /** How long a block lasts. @format s */
  blockS: number;
}

export interface IntrusionDetector {
  readonly mode: 'redis' | 'in-process';
  /** Time left on the identity's block, 0 when it is not blocked. Rejects when Redis is unreachable. @format ms */
  blockedFor(identity: Identity): Promise<number>;
  /**
   * Counts one failure. Resolves true when this failure started a block: across every replica exactly one caller
   * sees true for one block, so the block is reported once. Failures during a block are not counted.
   */
  recordFailure(identity: Identity): Promise<boolean>;
  /** Lifts a block and forgets the failures (an operator's decision). */
  unblock(identity: Identity): Promise<void>;
}

/** A stable, printable description of an identity, for logs and the audit trail. */
export function describeIdentity(identity: Identity): string {
  return identity.kind === 'subject' ? `subject ${identity.tenant}/${identity.subject}` : `address ${identity.address}`;
}

/**
 * Redis keys of one identity. The identity is hashed: subjects and addresses stay out of key names, and a subject
 * containing `{` cannot change the cluster hash tag that keeps both keys in one slot.
 */
export function intrusionKeys(identity: Identity): { failures: string; block: string } {
  const raw = identity.kind === 'subject' ? `${identity.tenant}\n${identity.subject}` : identity.address;
  const tag = `${identity.kind}:${createHash('sha256').update(raw).digest('base64url').slice(0, 22)}`;
  return { failures: `agentry:ids:{${tag}}:failures`, block: `agentry:ids:{${tag}}:block` };
}

/* KEYS[1] failures, KEYS[2] block; ARGV[1] window (ms), ARGV[2] max failures, ARGV[3] block (ms). */
const RECORD_LUA = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if n >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  return 1
end
return 0
`;
const RECORD_COMMAND = 'agentryRecordFailure';
type WithRecord = Redis & { [RECORD_COMMAND](failures: string, block: string, ...args: string[]): Promise<number> };

export function createIntrusionDetector(opts: IntrusionDetectorOptions & { redis?: Redis; now?: () => number }): IntrusionDetector {
  return opts.redis ? redisDetector(opts.redis, opts) : memoryDetector(opts, opts.now ?? Date.now);
}

function redisDetector(redis: Redis, opts: IntrusionDetectorOptions): IntrusionDetector {
  redis.defineCommand(RECORD_COMMAND, { numberOfKeys: 2, lua: RECORD_LUA });
  const client = redis as WithRecord;
  return {
    mode: 'redis',
    async blockedFor(identity) {
      const ttl = await redis.pttl(intrusionKeys(identity).block);
      return ttl > 0 ? ttl : 0;
    },
    async recordFailure(identity) {
      const keys = intrusionKeys(identity);
      const started = await client[RECORD_COMMAND](
        keys.failures,
        keys.block,
        String(opts.windowS * 1000),
        String(opts.maxFailures),
        String(opts.blockS * 1000),
      );
      return Number(started) === 1;
    },
    async unblock(identity) {
      const keys = intrusionKeys(identity);
      await redis.del(keys.failures, keys.block);
    },
  };
}

function memoryDetector(opts: IntrusionDetectorOptions, now: () => number): IntrusionDetector {
  const failures = new Map<string, { count: number; until: number }>();
  const blocks = new Map<string, number>();
  let calls = 0;
  // Expired entries are swept now and then, so many one-off addresses cannot grow the maps without bound.
  const sweep = (at: number) => {
    if (++calls % 1000 !== 0) return;
    for (const [k, v] of failures) if (v.until <= at) failures.delete(k);
    for (const [k, until] of blocks) if (until <= at) blocks.delete(k);
  };
  return {
    mode: 'in-process',
    async blockedFor(identity) {
      const until = blocks.get(intrusionKeys(identity).block);
      return until === undefined ? 0 : Math.max(0, until - now());
    },
    async recordFailure(identity) {
      const at = now();
      sweep(at);
      const keys = intrusionKeys(identity);
      if ((blocks.get(keys.block) ?? 0) > at) return false;
      let entry = failures.get(keys.failures);
      if (!entry || entry.until <= at) failures.set(keys.failures, (entry = { count: 0, until: at + opts.windowS * 1000 }));
      entry.count += 1;
      if (entry.count < opts.maxFailures) return false;
      failures.delete(keys.failures);
      blocks.set(keys.block, at + opts.blockS * 1000);
      return true;
    },
    async unblock(identity) {
      const keys = intrusionKeys(identity);
      failures.delete(keys.failures);
      blocks.delete(keys.block);
    },
  };
}
