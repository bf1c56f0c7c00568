/**
 * One writer process of the concurrency test: appends `count` events for one tenant, all at once, through
 * createAuditStore. It prints `ready` once connected and starts when a line arrives on stdin, so that several
 * processes contend for the chain together.
 *
 *   node --import tsx test/helpers/append-audit-events.ts <databaseUrl> <tenant> <writer> <count>
 *
 * Prints `{"inserted": n}` on success.
 */
import { Pool } from 'pg';
import { createAuditStore } from '../../src/audit';

async function main(): Promise<void> {
  const [url, tenant, writer, countText] = process.argv.slice(2);
  const count = Number(countText);
  const pool = new Pool({ connectionString: url, max: 10 });
  const store = createAuditStore(pool);
  await pool.query('SELECT 1');
  process.stdout.write('ready\n');
  await new Promise((r) => process.stdin.once('data', r));
  process.stdin.pause();
  const results = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      store.append({
        id: `${tenant}/${writer}#${i}`,
        tenant,
        runId: `load/${writer}-${i % 10}`,
        type: 'stage.completed',
        actor: writer,
        pipeline: 'load',
        pipelineVersion: 1,
        definitionHash: 'c'.repeat(64),
        stage: 'work',
        data: { writer, i, attempts: 1 },
        occurredAt: Date.now(),
      }),
    ),
  );
  await pool.end();
  process.stdout.write(`${JSON.stringify({ inserted: results.filter((r) => r.inserted).length })}\n`);
}

main().catch((err) => {
  process.stderr.write(`append-audit-events: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
