import { resolve } from 'node:path';
import { runner } from 'node-pg-migrate';

export const MIGRATIONS_DIR = resolve(__dirname, 'migrations');

/**
 * Applies pending migrations. Safe to call from every process at start-up: node-pg-migrate serialises runners
 * with an advisory lock, so concurrent starts apply each migration once. Its lock is try-only (a second runner
 * fails with "Another migration is already running"), so a process that finds it taken waits and tries again
 * until `deadlineMs` has passed.
 */
export async function migrate(databaseUrl: string, log?: (msg: string) => void, deadlineMs = 120_000): Promise<string[]> {
  const until = Date.now() + deadlineMs;
  for (let delay = 100; ; delay = Math.min(delay * 2, 2000)) {
    try {
      return await runOnce(databaseUrl, log);
    } catch (err) {
      if (!/another migration is already running/i.test((err as Error).message) || Date.now() + delay > until) throw err;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

async function runOnce(databaseUrl: string, log?: (msg: string) => void): Promise<string[]> {
  const applied = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    direction: 'up',
    migrationsTable: 'agentry_migrations',
    count: Infinity,
    checkOrder: true,
    singleTransaction: true,
    logger: {
      debug: () => undefined,
      info: (m: string) => log?.(m),
      warn: (m: string) => log?.(m),
      error: (m: string) => log?.(m),
    },
  });
  return applied.map((m) => m.name);
}
