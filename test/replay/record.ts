/**
 * Records workflow histories from real runs for the replay corpus: `npm run replay:record`. Starts its own dev
 * server and test database, runs one pipeline per interpreter path, and writes each history to
 * test/replay/histories/<name>.json. Re-record only when a workflow change is meant to be incompatible (and
 * guarded by patched()); otherwise the old histories are exactly what must keep replaying.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { startPipelineRun, startPipelineWorker } from '../helpers/pipeline-worker';
import { createTestDatabase } from '../helpers/postgres';
import { startTemporal } from '../helpers/temporal';
import { TEST_PIPELINES } from '../helpers/test-agents';

const ROOT = resolve(__dirname, '..', '..');
const OUT = join(__dirname, 'histories');

const scenarios: { name: string; yaml: string; input: Record<string, unknown> }[] = [
  {
    name: 'support-triage-completed',
    yaml: readFileSync(join(ROOT, 'src/pipelines/definitions/support-triage.yaml'), 'utf8'),
    input: { text: 'My card was charged twice, card 4111 1111 1111 1111, reach me at kim@example.net', ticketId: 'R-1' },
  },
  { name: 'agent-retried-then-ok', yaml: TEST_PIPELINES.flaky, input: { text: 'hello' } },
  { name: 'agent-failed-after-retries', yaml: TEST_PIPELINES.flaky.replace('maximumAttempts: 3', 'maximumAttempts: 2'), input: { text: 'hello' } },
  { name: 'agent-output-invalid', yaml: TEST_PIPELINES.liar, input: { text: 'x' } },
  { name: 'stage-skipped-by-when', yaml: TEST_PIPELINES.conditional, input: { text: 'hi', urgent: false } },
  { name: 'stage-run-by-when', yaml: TEST_PIPELINES.conditional, input: { text: 'hi', urgent: true } },
  { name: 'input-rejected', yaml: TEST_PIPELINES.flaky, input: { text: 42 } },
];

async function main() {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const [env, db] = await Promise.all([startTemporal(), createTestDatabase('agentry_record')]);
  const taskQueue = 'replay-record';
  const pw = await startPipelineWorker(env, db.pool, taskQueue);
  mkdirSync(OUT, { recursive: true });
  try {
    for (const s of scenarios) {
      const { handle } = await startPipelineRun(env.client, pw.agents, taskQueue, s.yaml, s.input, s.name);
      await handle.result().catch(() => undefined);
      const history = await handle.fetchHistory();
      writeFileSync(join(OUT, `${s.name}.json`), `${historyToJSON(history)}\n`);
      process.stdout.write(`recorded ${s.name} (${history.events?.length ?? 0} events)\n`);
    }
  } finally {
    await pw.stop();
    await db.drop();
    await env.teardown();
  }
}

main().catch((err) => {
  process.stderr.write(`replay:record: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
