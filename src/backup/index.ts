export {
  createBackupService,
  newBackupId,
  BackupError,
  type BackupService,
  type BackupServiceOptions,
  type BackupListing,
  type BackupVerification,
  type RestoreResult,
} from './backup-service';
export { ensureBackupSchedule, type BackupScheduleOptions } from './backup-schedule';
export { readManifest, checkFiles, BACKUP_ID, MANIFEST_FILE, type BackupManifest, type FileProblem, type ChainHead } from './backup-manifest';
export { configWithoutSecrets } from './config-snapshot';
export { PgToolError, findExecutable } from './pg-tools';
