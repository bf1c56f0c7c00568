/**
 * The two behaviours that need Temporal as well as PostgreSQL, sharing one dev server and one workflow bundle: an
 * audit write made while PostgreSQL is down lands once it is back, and the backup Schedule produces backups.
 * PostgreSQL here is a cluster of this file's own, so stopping it disturbs no other test.
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { decodeOptionalFailureToOptionalError, loadDataConverter } from '@temporalio/common/lib/internal-non-workflow';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { Pool } from 'pg';
import { createAuditStore, migrate, type AuditStore } from '../../src/audit';
import { createBackupService, ensureBackupSchedule, type BackupService } from '../../src/backup';
import { SYSTEM_TENANT, type PipelineRunResult } from '../../src/contracts';
import { testSealKeys } from '../helpers/audit-seal';
import { testDataConverter } from '../helpers/codec';
import { createPgCluster, type PgCluster } from '../helpers/pg-cluster';
import { startPipelineRun, startPipelineWorker, type PipelineWorker } from '../helpers/pipeline-worker';
import { startTemporal } from '../helpers/temporal';
import { TEST_PIPELINES } from '../helpers/test-agents';
import { waitUntil } from '../helpers/wait';

const ROOT = resolve(__dirname, '..', '..');
const taskQueue = 'it-audit-outage';

let env: TestWorkflowEnvironment;
let cluster: PgCluster;
let pool: Pool;
let audit: AuditStore;
let backups: BackupService;
let pw: PipelineWorker;

beforeAll(async () => {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  [env, cluster] = await Promise.all([startTemporal(), createPgCluster()]);
  cluster.start();
  await migrate(cluster.url);
  pool = new Pool({ connectionString: cluster.url, max: 5, connectionTimeoutMillis: 2_000 });
  // Connections cut by the outage are reported here; the store gets fresh ones once the server is back.
  pool.on('error', () => undefined);
  audit = createAuditStore(pool, { sealKeys: testSealKeys });
  backups = createBackupService({
    pool,
    databaseUrl: cluster.url,
    audit,
    dir: mkdtempSync(join(tmpdir(), 'agentry-scheduled-backups-')),
    pipelinesDir: join(ROOT, 'src/pipelines/definitions'),
    config: { DATABASE_URL: cluster.url },
  });
  pw = await startPipelineWorker(env, pool, taskQueue, { audit, backups });
});

afterAll(async () => {
  await pw?.stop();
  await pool?.end();
  cluster?.destroy();
  await env?.teardown();
});

test('an audit write during a PostgreSQL outage lands exactly once after the database returns', async () => {
  cluster.stop();
  const { handle, runId } = await startPipelineRun(env.client, pw.agents, taskQueue, TEST_PIPELINES.flaky, { text: 'written during an outage' }, 'outage-1');

  try {
    // The run's first event cannot be written: Temporal retries the recordAudit activity, the run waits.
    const pending = await waitUntil(
      'the audit write to fail and be retried',
      async () => {
        const desc = await handle.describe();
        const p = desc.raw.pendingActivities?.find((a) => a.activityType?.name === 'recordAudit');
        return p && (p.attempt ?? 0) >= 3 ? p : undefined;
      },
      60_000,
      200,
    );
    // Failure messages are stored encrypted (src/temporal/failure-converter.ts): read through the codec.
    const lastFailure = await decodeOptionalFailureToOptionalError(loadDataConverter(testDataConverter), pending.lastFailure);
    expect(lastFailure?.message).toMatch(/audit write failed/);
    expect((await handle.describe()).status.name).toBe('RUNNING');
  } finally {
    // Back whatever happened above, so the other test of this file has its database.
    cluster.start();
  }
  const result = (await handle.result()) as PipelineRunResult;
  expect(result.status).toBe('completed');
  const events = await audit.listByRun('wf-tests', runId);
  expect(events.map((e) => e.type)).toEqual(['run.started', 'stage.completed', 'run.completed']);
  const { rows } = await pool.query<{ id: string; n: number }>(
    'SELECT id, count(*)::int AS n FROM audit_events WHERE run_id = $1 GROUP BY id HAVING count(*) > 1',
    [runId],
  );
  expect(rows).toEqual([]);
  await expect(audit.verify('wf-tests')).resolves.toMatchObject({ ok: true });
});

test('the backup schedule is registered idempotently, skips overlaps, and produces a backup when triggered', async () => {
  const scheduleId = `it-backup-${Date.now()}`;
  const first = await ensureBackupSchedule(env.client, { cron: '0 3 * * *', taskQueue, scheduleId });
  // A second worker starting (here with a changed cron) updates the same schedule rather than adding one.
  const second = await ensureBackupSchedule(env.client, { cron: '30 2 * * *', taskQueue, scheduleId });
  expect([first.created, second.created]).toEqual([true, false]);
  const handle = env.client.schedule.getHandle(scheduleId);
  try {
    const desc = await handle.describe();
    expect(desc.policies.overlap).toBe(ScheduleOverlapPolicy.SKIP);
    expect(desc.action).toMatchObject({ type: 'startWorkflow', workflowType: 'backup', taskQueue });
    expect(desc.spec.calendars?.[0]).toMatchObject({ hour: [{ start: 2 }], minute: [{ start: 30 }] });

    await handle.trigger();
    const listed = await waitUntil('the scheduled backup to be written', async () => (await backups.list())[0], 90_000, 250);
    expect(readdirSync(listed.path)).toEqual(expect.arrayContaining(['manifest.json', 'database', 'pipelines', 'config.json']));
    expect(listed).toMatchObject({ actor: `schedule:${scheduleId}`, databaseFormat: 'pg_dump' });
    await expect(backups.verify(listed.id)).resolves.toMatchObject({ ok: true, recorded: 'match' });
    const recorded = await audit.listByRun(SYSTEM_TENANT, listed.id);
    expect(recorded.map((e) => [e.type, e.actor])).toEqual([['backup.created', `schedule:${scheduleId}`]]);
    expect((await handle.describe()).info.recentActions).toHaveLength(1);
  } finally {
    await handle.delete();
  }
});
