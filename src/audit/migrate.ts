import { resolve } from 'node:path';
import { runner } from 'node-pg-migrate';

export const MIGRATIONS_DIR = resolve(__dirname, 'migrations');

/**
 * Applies pending migrations. Safe to call from every process at start-up: node-pg-migrate serialises runners
 * with an advisory lock, so concurrent starts apply each migration once.
 */
export async function migrate(databaseUrl: string, log?: (msg: string) => void): Promise<string[]> {
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
