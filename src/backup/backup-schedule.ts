import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import { BACKUP_SCHEDULE_ID, BACKUP_WORKFLOW } from '../contracts';

export interface BackupScheduleOptions {
  /** BACKUP_SCHEDULE: cron expression, UTC. */
  cron: string;
  /** Task queue of the workers that run `createBackup`. */
  taskQueue: string;
  /** @default agentry-backup */
  scheduleId?: string;
}

/**
 * Registers the Temporal Schedule that starts the `backup` workflow, or brings an existing one in line with the
 * configuration (cron, task queue). Idempotent, so every worker calls it at start. Overlap policy SKIP: a backup
 * still running when the next is due means the next is skipped, never two at once.
 */
export async function ensureBackupSchedule(client: Client, opts: BackupScheduleOptions): Promise<{ scheduleId: string; created: boolean }> {
  const scheduleId = opts.scheduleId ?? BACKUP_SCHEDULE_ID;
  const spec = { cronExpressions: [opts.cron] };
  const action = {
    type: 'startWorkflow' as const,
    workflowType: BACKUP_WORKFLOW,
    taskQueue: opts.taskQueue,
    // Temporal appends the scheduled time, so each backup run has an id of its own.
    workflowId: scheduleId,
    args: [{ actor: `schedule:${scheduleId}` }],
  };
  const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 hour' };
  try {
    await client.schedule.create({ scheduleId, spec, action, policies });
    return { scheduleId, created: true };
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  await client.schedule.getHandle(scheduleId).update((previous) => ({ ...previous, spec, action, policies }));
  return { scheduleId, created: false };
}
