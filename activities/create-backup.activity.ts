import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType, type BackupRequest, type BackupSummary } from '../src/contracts';
import type { Logger } from '../src/telemetry';

/** What the activity needs of the backup service (`createBackupService` in src/backup). */
export interface BackupCreator {
  create(req: BackupRequest): Promise<BackupSummary>;
}

/** How often the activity heartbeats while pg_dump runs. @format ms */
const HEARTBEAT_MS = 5_000;

/**
 * Takes the backup the `backup` workflow asks for. The backup id comes from the workflow run, so a retry after a
 * lost completion answers the finished backup instead of taking a second one. Heartbeats while it works, so a
 * worker that dies mid-dump is noticed within the heartbeat timeout.
 */
export function createCreateBackupActivity(deps: { backups?: BackupCreator; logger: Logger }) {
  return async function createBackup(req: BackupRequest): Promise<BackupSummary> {
    if (!deps.backups) {
      throw ApplicationFailure.create({
        type: FailureType.BackupUnavailable,
        message: 'this worker was started without a backup service',
        nonRetryable: true,
      });
    }
    const ctx = Context.current();
    const beat = setInterval(() => ctx.heartbeat(), HEARTBEAT_MS);
    try {
      const summary = await deps.backups.create(req);
      deps.logger.info({ backupId: summary.id, existing: summary.existing, bytes: summary.bytes }, 'backup written');
      return summary;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      deps.logger.error({ backupId: req.id, err: message }, 'backup failed');
      throw ApplicationFailure.create({ type: FailureType.BackupFailed, message: `backup ${req.id} failed: ${message}` });
    } finally {
      clearInterval(beat);
    }
  };
}
