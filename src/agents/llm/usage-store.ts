/**
 * Where LLM usage is kept, and where budgets are enforced: every call reserves its worst case before it is made,
 * under a per-tenant lock, so concurrent stages and workers cannot overspend together.
 */
import type { Pool } from 'pg';
import { checkOut } from '../../storage/pg-client';
import { LlmBudgetExceededError } from './llm-errors';

/** One call: the stage's idempotency key, the activity attempt, and the call within it (2 is the repair). */
export interface UsageKey {
  idempotencyKey: string;
  attempt: number;
  call: number;
}

export interface UsageReservation extends UsageKey {
  tenant: string;
  runId: string;
  stage: string;
  model: string;
  /** UTC day, `YYYY-MM-DD`. */
  day: string;
  /** Worst case: prompt estimate plus max_tokens. @format tokens */
  tokens: number;
  /** Worst-case cost. @format USD */
  costUsd: number;
}

export interface BudgetLimits {
  /** @format tokens */
  runTokens: number;
  /** @format tokens */
  tenantDayTokens: number;
  /** Absent: no cost budget. @format USD */
  tenantDayCostUsd?: number;
}

/** Spend counted against the budgets (reservations of calls still running included). */
export interface SpendTotals {
  /** @format tokens */
  runTokens: number;
  /** @format tokens */
  tenantDayTokens: number;
  /** @format USD */
  tenantDayCostUsd: number;
}

export interface RecordedUsage {
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
}

export interface UsageStore {
  /**
   * Checks the budgets with this call's worst case added, and holds that worst case until `record` or `release`.
   * Throws `LlmBudgetExceededError` naming the first budget it would break. Returns the spend before this call.
   * Reserving the same key again replaces the earlier reservation rather than adding to it.
   */
  reserve(reservation: UsageReservation, limits: BudgetLimits): Promise<SpendTotals>;
  /** Replaces the reservation by what the call used. */
  record(key: UsageKey, used: RecordedUsage): Promise<void>;
  /** Drops the reservation of a call that used nothing (refused, failed or cancelled before an answer). */
  release(key: UsageKey): Promise<void>;
  totals(tenant: string, runId: string, day: string): Promise<SpendTotals>;
}

/** Reservations older than this are treated as left behind by a crashed worker and no longer count. @format ms */
export const DEFAULT_STALE_RESERVATION_MS = 60 * 60 * 1000;

/** The UTC day of `now`, as the usage rows store it. */
export function utcDay(now = new Date()): string {
  return now.toISOString().slice(0, 10);
}

/** Throws when `before` plus the worst case breaks a limit; run first, then tenant tokens, then tenant cost. */
export function checkBudgets(before: SpendTotals, r: Pick<UsageReservation, 'tokens' | 'costUsd'>, limits: BudgetLimits): void {
  if (before.runTokens + r.tokens > limits.runTokens) {
    throw new LlmBudgetExceededError('run-tokens', limits.runTokens, before.runTokens, r.tokens);
  }
  if (before.tenantDayTokens + r.tokens > limits.tenantDayTokens) {
    throw new LlmBudgetExceededError('tenant-day-tokens', limits.tenantDayTokens, before.tenantDayTokens, r.tokens);
  }
  if (limits.tenantDayCostUsd !== undefined && before.tenantDayCostUsd + r.costUsd > limits.tenantDayCostUsd) {
    throw new LlmBudgetExceededError('tenant-day-cost', limits.tenantDayCostUsd, before.tenantDayCostUsd, r.costUsd);
  }
}

const SUMS = `
  SELECT COALESCE(SUM(tokens) FILTER (WHERE run_id = $2), 0)::bigint AS run_tokens,
         COALESCE(SUM(tokens) FILTER (WHERE day = $3), 0)::bigint AS day_tokens,
         COALESCE(SUM(cost_usd) FILTER (WHERE day = $3), 0)::float8 AS day_cost
    FROM llm_usage
   WHERE tenant = $1 AND (run_id = $2 OR day = $3)`;

function toTotals(row: { run_tokens: string; day_tokens: string; day_cost: number }): SpendTotals {
  return { runTokens: Number(row.run_tokens), tenantDayTokens: Number(row.day_tokens), tenantDayCostUsd: Number(row.day_cost) };
}

/** The PostgreSQL store (table `llm_usage`, migration 0004). */
export function createPgUsageStore(pool: Pool, opts: { staleReservationMs?: number } = {}): UsageStore {
  const staleSeconds = (opts.staleReservationMs ?? DEFAULT_STALE_RESERVATION_MS) / 1000;
  return {
    async reserve(r, limits) {
      const client = await checkOut(pool);
      try {
        await client.query('BEGIN');
        // One tenant's reservations take turns, so two calls cannot both fit into the same remaining budget.
        await client.query(`SELECT pg_advisory_xact_lock(hashtextextended('agentry:llm-usage:' || $1, 0))`, [r.tenant]);
        const { rows } = await client.query(
          `${SUMS}
             AND NOT (idempotency_key = $4 AND attempt = $5 AND call = $6)
             AND NOT (status = 'reserved' AND updated_at < now() - make_interval(secs => $7))`,
          [r.tenant, r.runId, r.day, r.idempotencyKey, r.attempt, r.call, staleSeconds],
        );
        const before = toTotals(rows[0]);
        checkBudgets(before, r, limits);
        await client.query(
          `INSERT INTO llm_usage (idempotency_key, attempt, call, tenant, run_id, stage, model, day, status, reserved_tokens, tokens, cost_usd)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'reserved', $9, $9, $10)
           ON CONFLICT (idempotency_key, attempt, call) DO UPDATE
             SET status = 'reserved', reserved_tokens = EXCLUDED.reserved_tokens, tokens = EXCLUDED.tokens,
                 cost_usd = EXCLUDED.cost_usd, updated_at = now()`,
          [r.idempotencyKey, r.attempt, r.call, r.tenant, r.runId, r.stage, r.model, r.day, r.tokens, r.costUsd],
        );
        await client.query('COMMIT');
        return before;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },
    async record(key, used) {
      await pool.query(
        `UPDATE llm_usage
            SET status = 'recorded', prompt_tokens = $4, completion_tokens = $5, tokens = $6, cost_usd = $7, updated_at = now()
          WHERE idempotency_key = $1 AND attempt = $2 AND call = $3`,
        [key.idempotencyKey, key.attempt, key.call, used.promptTokens, used.completionTokens, used.promptTokens + used.completionTokens, used.costUsd],
      );
    },
    async release(key) {
      await pool.query(
        `UPDATE llm_usage SET status = 'released', tokens = 0, cost_usd = 0, updated_at = now()
          WHERE idempotency_key = $1 AND attempt = $2 AND call = $3 AND status = 'reserved'`,
        [key.idempotencyKey, key.attempt, key.call],
      );
    },
    async totals(tenant, runId, day) {
      const { rows } = await pool.query(
        `${SUMS} AND NOT (status = 'reserved' AND updated_at < now() - make_interval(secs => $4))`,
        [tenant, runId, day, staleSeconds],
      );
      return toTotals(rows[0]);
    },
  };
}

/**
 * An in-process store with the same rules, for processes without PostgreSQL (tests, a single local worker). Budgets
 * hold per process only.
 */
export function createMemoryUsageStore(): UsageStore {
  type Row = UsageReservation & { status: 'reserved' | 'recorded' | 'released' };
  const rows = new Map<string, Row>();
  const id = (k: UsageKey) => `${k.idempotencyKey}\u0000${k.attempt}\u0000${k.call}`;
  const sum = (tenant: string, runId: string, day: string, except?: string): SpendTotals => {
    const totals = { runTokens: 0, tenantDayTokens: 0, tenantDayCostUsd: 0 };
    for (const [key, row] of rows) {
      if (key === except || row.tenant !== tenant) continue;
      if (row.runId === runId) totals.runTokens += row.tokens;
      if (row.day === day) {
        totals.tenantDayTokens += row.tokens;
        totals.tenantDayCostUsd += row.costUsd;
      }
    }
    return totals;
  };
  return {
    async reserve(r, limits) {
      const before = sum(r.tenant, r.runId, r.day, id(r));
      checkBudgets(before, r, limits);
      rows.set(id(r), { ...r, status: 'reserved' });
      return before;
    },
    async record(key, used) {
      const row = rows.get(id(key));
      if (row) Object.assign(row, { status: 'recorded', tokens: used.promptTokens + used.completionTokens, costUsd: used.costUsd });
    },
    async release(key) {
      const row = rows.get(id(key));
      if (row?.status === 'reserved') Object.assign(row, { status: 'released', tokens: 0, costUsd: 0 });
    },
    async totals(tenant, runId, day) {
      return sum(tenant, runId, day);
    },
  };
}
