export {
  createBackupService,
  newBackupId,
  BackupError,
  BACKUP_ID,
  type BackupService,
  type BackupServiceOptions,
  type BackupListing,
  type BackupVerification,
  type RestoreResult,
} from './backup-service';
export { ensureBackupSchedule, type BackupScheduleOptions } from './backup-schedule';
export { readManifest, checkFiles, MANIFEST_FILE, type BackupManifest, type FileProblem, type ChainHead } from './backup-manifest';
export { configWithoutSecrets } from './config-snapshot';
export { PgToolError, findExecutable } from './pg-tools';
