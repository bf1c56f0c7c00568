import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { FailureType, type BackupSummary } from '../src/contracts';

// A dump can take a while; the activity heartbeats, so a worker lost mid-dump is noticed within a minute.
const { createBackup } = proxyActivities<Activities>({
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '30 seconds', backoffCoefficient: 2, maximumAttempts: 3, nonRetryableErrorTypes: [FailureType.BackupUnavailable] },
});

export interface BackupWorkflowInput {
  /** Recorded as the actor of `backup.created`. @default temporal:{workflowId} */
  actor?: string;
}

/**
 * Takes one backup (the backup Schedule starts this). The backup id is fixed by the workflow run, from its start
 * time and run id, so a retried activity completes the same backup rather than taking another.
 */
export async function backup(input: BackupWorkflowInput = {}): Promise<BackupSummary> {
  const { workflowId, runId, startTime } = workflowInfo();
  const stamp = startTime.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
  return createBackup({ id: `${stamp}-${runId.replace(/-/g, '').slice(0, 8).toLowerCase()}`, actor: input.actor ?? `temporal:${workflowId}` });
}
