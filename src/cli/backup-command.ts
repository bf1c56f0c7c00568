import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { Pool } from 'pg';
import { createAuditStore, sealKeysFromConfig } from '../audit';
import { createBackupService, type BackupService } from '../backup';
import { requireKeys, type Config } from '../config';
import { reachingDatabase } from './connection-error';
import { count } from './format';

type Say = (line: string) => void;

const defaultActor = () => `cli:${userInfo().username}`;
const size = (bytes: number) => (bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`);

/** Runs `fn` with the backup service of this configuration, then closes the database pool. */
async function withBackups<T>(config: () => Config, fn: (backups: BackupService) => Promise<T>): Promise<T> {
  const cfg = requireKeys(config(), ['DATABASE_URL']);
  const pool = new Pool({ connectionString: cfg.DATABASE_URL, max: 2 });
  pool.on('error', () => undefined);
  try {
    const audit = createAuditStore(pool, { sealKeys: sealKeysFromConfig(cfg).keys });
    return await reachingDatabase(cfg.DATABASE_URL, () =>
      fn(
        createBackupService({
          pool,
          databaseUrl: cfg.DATABASE_URL,
          audit,
          dir: cfg.backupDir,
          keep: cfg.BACKUP_KEEP,
          pipelinesDir: cfg.PIPELINES_DIR,
          config: cfg,
          warn: (line) => process.stderr.write(`agentry: ${line}\n`),
        }),
      ),
    );
  } finally {
    await pool.end();
  }
}

/** `agentry backup create | list | verify | restore`. The worker's Temporal Schedule runs `create` on its own. */
export function registerBackupCommands(program: Command, config: () => Config, say: Say): void {
  const backup = program.command('backup').description('back up and restore the audit database, pipeline definitions and configuration (BACKUP_DIR)');

  backup
    .command('create')
    .description('take a backup now (pg_dump when on PATH, else a logical NDJSON export) and keep the newest BACKUP_KEEP')
    .option('--actor <name>', 'who to record in backup.created', defaultActor())
    .action(async (opts: { actor: string }) => {
      const s = await withBackups(config, (b) => b.create({ actor: opts.actor }));
      say(`backup ${s.id} written to ${s.path}: ${s.databaseFormat}, ${Object.entries(s.rows).map(([t, n]) => `${t}=${n}`).join(' ')}, ${count(s.files, 'file')}, ${size(s.bytes)}`);
      say(`manifest sha256 ${s.manifestSha256} (recorded in backup.created)`);
      // Said, not left to the format name above: whoever expected a pg_dump script learns why there is none.
      if (s.ndjsonReason) say(`database written as the logical NDJSON export, not with pg_dump: ${s.ndjsonReason}`);
    });

  backup
    .command('list')
    .description('list the backups, newest first')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const list = await withBackups(config, (b) => b.list());
      if (opts.json) return say(JSON.stringify(list, null, 2));
      if (list.length === 0) return say('no backups');
      for (const b of list) say(`${b.id}  ${b.createdAt}  ${b.databaseFormat.padEnd(7)}  events=${b.rows.audit_events ?? 0}  ${size(b.bytes)}  ${b.actor}`);
    });

  backup
    .command('verify [id]')
    .description('recompute the sha256 of every file of a backup (default: the newest) and check its manifest against the audit trail')
    .action(async (id: string | undefined) => {
      const v = await withBackups(config, (b) => b.verify(id));
      for (const p of v.problems) say(`  ${p.path}: ${p.problem}`);
      if (v.recorded === 'mismatch') say('  manifest.json differs from the one recorded in backup.created');
      say(v.ok ? `backup ${v.id} verified (manifest ${v.recorded === 'match' ? 'matches the audit trail' : v.recorded})` : `backup ${v.id} FAILED verification`);
      if (!v.ok) process.exitCode = 1;
    });

  backup
    .command('restore <id>')
    .description('replace the audit database with a backup (events recorded since are lost), then verify every chain')
    .option('--yes', 'confirm: the restore replaces the tables')
    .option('--pipelines', 'also write the backed-up pipeline definitions to PIPELINES_DIR')
    .option('--actor <name>', 'who to record in backup.restored', defaultActor())
    .option('--allow-unrecorded', 'restore a backup whose creation is not in the audit trail (e.g. taken after the point an earlier restore went back to)')
    .action(async (id: string, opts: { yes?: boolean; pipelines?: boolean; actor: string; allowUnrecorded?: boolean }) => {
      if (!opts.yes) throw new Error(`restoring replaces the audit database with backup ${id}; run again with --yes to do it`);
      const r = await withBackups(config, (b) =>
        b.restore(id, { actor: opts.actor, pipelinesTo: opts.pipelines ? config().PIPELINES_DIR : undefined, allowUnrecorded: opts.allowUnrecorded }),
      );
      say(`backup ${r.id} restored: ${Object.entries(r.rows).map(([t, n]) => `${t}=${n}`).join(' ')}`);
      say(`audit trail verified: ${count(r.events, 'event')} in ${r.tenants} tenant chain(s)`);
      if (r.pipelines.length) say(`pipeline definitions written: ${r.pipelines.join(', ')}`);
    });
}
