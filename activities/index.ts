import type { AgentRegistry } from '../src/agents';
import type { AuditStore } from '../src/audit';
import type { InputChecker } from '../src/security';
import type { Logger, RunMetrics } from '../src/telemetry';
import { createCheckInputActivity } from './check-input.activity';
import { createCreateBackupActivity, type BackupCreator } from './create-backup.activity';
import { createRecordAuditActivity } from './record-audit.activity';
import { createReleaseRunSlotActivity, type RunSlotReleaser } from './release-run-slot.activity';
import { createRunAgentActivity } from './run-agent.activity';
import { createScreenInputActivity } from './screen-input.activity';
import type { ClaimStore } from '../src/storage/claim-store';

export interface ActivityDeps {
  agents: AgentRegistry;
  audit: AuditStore;
  checker: InputChecker;
  metrics: RunMetrics;
  logger: Logger;
  claims: ClaimStore;
  /** Stage outputs larger than this are stored out of band and passed by reference. @format bytes */
  inlineMaxBytes: number;
  /** Concurrency slots to release when a run ends (Redis); absent without Redis. */
  slots?: RunSlotReleaser;
  /** Takes backups for the `backup` workflow; absent in workers (and tests) that do not back up. */
  backups?: BackupCreator;
}

/** Every activity the pipeline workflow calls, bound to the clients the worker wires in. */
export function createActivities(deps: ActivityDeps) {
  return {
    runAgent: createRunAgentActivity(deps),
    checkInput: createCheckInputActivity(deps),
    recordAudit: createRecordAuditActivity(deps),
    screenInput: createScreenInputActivity(deps),
    releaseRunSlot: createReleaseRunSlotActivity(deps),
    createBackup: createCreateBackupActivity(deps),
  };
}
export type Activities = ReturnType<typeof createActivities>;
export type { RunAgentArgs, RunAgentResult } from './run-agent.activity';
export type { CheckInputArgs, CheckInputResult } from './check-input.activity';
export type { RunSlotReleaser } from './release-run-slot.activity';
export type { BackupCreator } from './create-backup.activity';
