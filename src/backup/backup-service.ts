import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Pool } from 'pg';
import { migrate, type AuditStore } from '../audit';
import { SYSTEM_TENANT, type BackupSummary } from '../contracts';
import {
  BACKUP_ID,
  MANIFEST_FILE,
  MANIFEST_FORMAT,
  checkFiles,
  hashFile,
  listFiles,
  readManifest,
  sha256Of,
  type BackupManifest,
  type FileProblem,
} from './backup-manifest';
import { configWithoutSecrets } from './config-snapshot';
import { RELOADED_TABLES, dumpDatabase, readFacts, restoreDatabase } from './database-dump';
import { findExecutable } from './pg-tools';


/** A new backup id for `at`. */
export function newBackupId(at = new Date(), suffix = randomBytes(4).toString('hex')): string {
  return `${at.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z')}-${suffix}`;
}

/** A backup that cannot be made, found, verified or restored. The message says which and why. */
export class BackupError extends Error {
  override readonly name = 'BackupError';
}

export interface BackupServiceOptions {
  pool: Pool;
  databaseUrl: string;
  /** Where `backup.created` / `backup.restored` are recorded, and what verifies the chains after a restore. */
  audit: Pick<AuditStore, 'append' | 'listByRun' | 'verify'>;
  /** BACKUP_DIR: one sub-folder per backup. */
  dir: string;
  /** BACKUP_KEEP: backups kept; older ones are deleted after each new one. @default 7 */
  keep?: number;
  /** PIPELINES_DIR: the pipeline definitions to include. */
  pipelinesDir: string;
  /** The process configuration; written without its secrets. */
  config: Record<string, unknown>;
  /** pg_dump to use. @default found on PATH; `null` always writes the logical NDJSON export */
  pgDump?: string | null;
  /** psql to restore pg_dump scripts with. @default found on PATH */
  psql?: string | null;
  /** Told about backup folders that are left out because their manifest cannot be used. @default silent */
  warn?: (line: string) => void;
}

/** A backup as `create` answers it. */
export interface CreatedBackup extends BackupSummary {
  /**
   * Why the database was written as the logical NDJSON export rather than with pg_dump (`pg_dump (PostgreSQL) 15.2
   * is older than the server (PostgreSQL 17.5), which it refuses to dump`); absent for a pg_dump backup.
   */
  ndjsonReason?: string;
}

export interface BackupListing {
  id: string;
  createdAt: string;
  actor: string;
  databaseFormat: 'pg_dump' | 'ndjson';
  rows: Record<string, number>;
  files: number;
  bytes: number;
  path: string;
}

export interface BackupVerification {
  id: string;
  path: string;
  ok: boolean;
  /** Files that do not match the manifest. */
  problems: FileProblem[];
  manifestSha256?: string;
  /**
   * The manifest's sha256 against the one the `backup.created` audit event recorded: `match`, `mismatch` (the
   * manifest was rewritten), `unrecorded` (no event, e.g. after restoring an older backup), or `unchecked` (the
   * database could not be asked).
   */
  recorded: 'match' | 'mismatch' | 'unrecorded' | 'unchecked';
}

export interface RestoreResult {
  id: string;
  /** Rows per table after the restore. */
  rows: Record<string, number>;
  /** What `audit verify` found after loading. */
  tenants: number;
  events: number;
  /** Pipeline definition files written back, when asked to. */
  pipelines: string[];
}

async function copyTree(from: string, to: string): Promise<string[]> {
  const copied: string[] = [];
  await mkdir(to, { recursive: true });
  for (const entry of await readdir(from, { withFileTypes: true })) {
    if (entry.isDirectory()) copied.push(...(await copyTree(join(from, entry.name), join(to, entry.name))).map((p) => `${entry.name}/${p}`));
    else if (entry.isFile()) {
      await copyFile(join(from, entry.name), join(to, entry.name));
      copied.push(entry.name);
    }
  }
  return copied;
}

const TMP_PREFIX = '.tmp-';
/** Unfinished backup folders older than this are removed by the next backup. @format ms */
const STALE_TMP_MS = 24 * 3600_000;

/**
 * Backups to a local folder: the database (pg_dump from one snapshot, or a logical NDJSON export without it), the
 * pipeline definitions and the configuration without secrets, with a manifest of sha256 sums written last. Each
 * backup and restore is recorded in the `_system` audit chain.
 */
export function createBackupService(opts: BackupServiceOptions) {
  const keep = opts.keep ?? 7;
  const pgDump = opts.pgDump === null ? undefined : (opts.pgDump ?? findExecutable('pg_dump'));
  const psql = opts.psql === null ? undefined : (opts.psql ?? findExecutable('psql'));

  function summaryOf(manifest: BackupManifest, manifestSha256: string, existing: boolean): BackupSummary {
    return {
      id: manifest.id,
      createdAt: manifest.createdAt,
      path: join(opts.dir, manifest.id),
      databaseFormat: manifest.database.format,
      rows: manifest.database.rows,
      files: manifest.files.length,
      bytes: manifest.files.reduce((n, f) => n + f.bytes, 0),
      manifestSha256,
      existing,
    };
  }

  /** Why `manifest` holds the NDJSON export: the pg_dump found was older than the server, or none was found. */
  function ndjsonReason(manifest: BackupManifest): string | undefined {
    if (manifest.database.format !== 'ndjson') return undefined;
    // dumpDatabase records the pg_dump it turned down as `<pg_dump --version> is older than the server (<major>): ...`.
    const turnedDown = manifest.database.tool && /^(.*) is older than the server/.exec(manifest.database.tool)?.[1];
    if (turnedDown) return `${turnedDown} is older than the server (PostgreSQL ${manifest.database.serverVersion}), which it refuses to dump`;
    return opts.pgDump === null ? 'this backup service is set to write the logical export (pgDump: null)' : 'pg_dump was not found on PATH';
  }

  const withReason = (manifest: BackupManifest) => {
    const reason = ndjsonReason(manifest);
    return reason ? { ndjsonReason: reason } : {};
  };

  /** `backup.created`, under an id of the backup's own: recording it again (a retried activity) is a no-op. */
  async function recordCreated(manifest: BackupManifest, manifestSha256: string): Promise<void> {
    await opts.audit.append({
      id: `backup:created:${manifest.id}`,
      tenant: SYSTEM_TENANT,
      runId: manifest.id,
      type: 'backup.created',
      actor: manifest.actor,
      pipeline: '-',
      pipelineVersion: 0,
      definitionHash: 'none',
      data: {
        manifestSha256,
        databaseFormat: manifest.database.format,
        rows: manifest.database.rows,
        tenants: Object.keys(manifest.database.chainHeads).length,
        files: manifest.files.length,
        bytes: manifest.files.reduce((n, f) => n + f.bytes, 0),
      },
      occurredAt: Date.parse(manifest.createdAt),
    });
  }

  const folderOf = (id: string) => {
    if (!BACKUP_ID.test(id)) throw new BackupError(`"${id}" is not a backup id (expected YYYYMMDDTHHMMSSZ-suffix)`);
    return join(opts.dir, id);
  };

  const service = {
    /** Where the backups are. */
    dir: opts.dir,
    databaseFormat: (pgDump ? 'pg_dump' : 'ndjson') as 'pg_dump' | 'ndjson',

    /**
     * Takes a backup. With an `id` that is already complete (a retried activity), checks it and answers it again
     * instead of taking another.
     */
    async create(req: { id?: string; actor: string }): Promise<CreatedBackup> {
      const id = req.id ?? newBackupId();
      const folder = folderOf(id);
      await mkdir(opts.dir, { recursive: true, mode: 0o700 });
      if (existsSync(join(folder, MANIFEST_FILE))) {
        const { manifest, sha256 } = await readManifest(folder);
        const problems = await checkFiles(folder, manifest);
        if (problems.length > 0) {
          throw new BackupError(`backup ${id} already exists and does not match its manifest: ${problems.map((p) => `${p.path} ${p.problem}`).join(', ')}`);
        }
        await recordCreated(manifest, sha256);
        return { ...summaryOf(manifest, sha256, true), ...withReason(manifest) };
      }
      if (!existsSync(opts.pipelinesDir)) throw new BackupError(`PIPELINES_DIR ${opts.pipelinesDir} does not exist`);

      const tmp = join(opts.dir, `${TMP_PREFIX}${id}`);
      await rm(tmp, { recursive: true, force: true });
      await mkdir(join(tmp, 'database'), { recursive: true, mode: 0o700 });
      const createdAt = new Date().toISOString();
      const dump = await dumpDatabase({ pool: opts.pool, databaseUrl: opts.databaseUrl, outDir: join(tmp, 'database'), pgDump });
      await copyTree(opts.pipelinesDir, join(tmp, 'pipelines'));
      const cfg = configWithoutSecrets(opts.config);
      await writeFile(
        join(tmp, 'config.json'),
        `${JSON.stringify({ note: 'effective configuration at backup time; secrets removed', removed: cfg.removed, values: cfg.values }, null, 2)}\n`,
        { mode: 0o600 },
      );
      const files = [];
      for (const path of await listFiles(tmp)) files.push({ path, ...(await hashFile(join(tmp, ...path.split('/')))) });
      const manifest: BackupManifest = {
        format: MANIFEST_FORMAT,
        id,
        createdAt,
        actor: req.actor,
        database: {
          format: dump.format,
          serverVersion: dump.facts.serverVersion,
          ...(dump.tool ? { tool: dump.tool } : {}),
          rows: dump.facts.rows,
          chainHeads: dump.facts.chainHeads,
        },
        pipelinesDir: opts.pipelinesDir,
        files,
      };
      const text = `${JSON.stringify(manifest, null, 2)}\n`;
      await writeFile(join(tmp, MANIFEST_FILE), text, { mode: 0o600 });
      // The manifest is written last and the folder renamed into place: a backup folder with a manifest is complete.
      await rename(tmp, folder);
      const sha256 = sha256Of(text);
      await recordCreated(manifest, sha256);
      await service.prune();
      return { ...summaryOf(manifest, sha256, false), ...withReason(manifest) };
    },

    /** Complete backups, newest first. Folders without a usable manifest are left out (and `warn` is told), never deleted. */
    async list(): Promise<BackupListing[]> {
      if (!existsSync(opts.dir)) return [];
      const out: BackupListing[] = [];
      for (const entry of await readdir(opts.dir, { withFileTypes: true })) {
        if (!entry.isDirectory() || !BACKUP_ID.test(entry.name)) continue;
        const read = await readManifest(join(opts.dir, entry.name)).catch((err: unknown) => {
          opts.warn?.(`skipping ${join(opts.dir, entry.name)}: ${err instanceof Error ? err.message : String(err)}`);
          return undefined;
        });
        if (!read) continue;
        const s = summaryOf(read.manifest, read.sha256, true);
        out.push({ id: s.id, createdAt: s.createdAt, actor: read.manifest.actor, databaseFormat: s.databaseFormat, rows: s.rows, files: s.files, bytes: s.bytes, path: s.path });
      }
      return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
    },

    /** Deletes all but the newest `keep` backups, and unfinished folders older than a day. */
    async prune(): Promise<string[]> {
      const removed: string[] = [];
      for (const old of (await service.list()).slice(keep)) {
        await rm(old.path, { recursive: true, force: true });
        removed.push(old.id);
      }
      for (const entry of await readdir(opts.dir, { withFileTypes: true })) {
        if (!entry.isDirectory() || !entry.name.startsWith(TMP_PREFIX)) continue;
        const path = join(opts.dir, entry.name);
        const st = await stat(path).catch(() => undefined);
        if (st && Date.now() - st.mtimeMs > STALE_TMP_MS) await rm(path, { recursive: true, force: true });
      }
      return removed;
    },

    /** Recomputes every file's sha256 (of `id`, or of the newest backup) and checks the manifest against the audit trail. */
    async verify(id?: string): Promise<BackupVerification> {
      const target = id ?? (await service.list())[0]?.id;
      if (!target) throw new BackupError(`there are no backups in ${opts.dir}`);
      const folder = folderOf(target);
      if (!existsSync(folder)) throw new BackupError(`there is no backup ${target} in ${opts.dir}`);
      let read: Awaited<ReturnType<typeof readManifest>>;
      try {
        read = await readManifest(folder);
      } catch {
        const problem = existsSync(join(folder, MANIFEST_FILE)) ? 'unreadable' : 'missing';
        return { id: target, path: folder, ok: false, problems: [{ path: MANIFEST_FILE, problem }], recorded: 'unchecked' };
      }
      const problems = await checkFiles(folder, read.manifest);
      let recorded: BackupVerification['recorded'];
      try {
        const events = await opts.audit.listByRun(SYSTEM_TENANT, target);
        // A restored database lacks the backup's own backup.created (written after its dump); the backup.restored
        // recorded by that restore vouches for the manifest instead.
        const created = events.find((e) => e.type === 'backup.created');
        const restored = events.filter((e) => e.type === 'backup.restored');
        if (created) recorded = created.data.manifestSha256 === read.sha256 ? 'match' : 'mismatch';
        else if (restored.length > 0) recorded = restored.some((e) => e.data.manifestSha256 === read.sha256) ? 'match' : 'mismatch';
        else recorded = 'unrecorded';
      } catch {
        recorded = 'unchecked';
      }
      return { id: target, path: folder, ok: problems.length === 0 && recorded !== 'mismatch', problems, manifestSha256: read.sha256, recorded };
    },

    /**
     * Restores a backup into the database: checks its sums, loads the dump, applies pending migrations and the
     * application role's privileges, checks the row counts and chain heads against the manifest and verifies every
     * chain, then records `backup.restored`. With `pipelinesTo`, also writes the pipeline definitions back there.
     */
    async restore(id: string, req: { actor: string; pipelinesTo?: string; allowUnrecorded?: boolean }): Promise<RestoreResult> {
      const check = await service.verify(id);
      if (!check.ok) {
        const why = check.problems.map((p) => `${p.path} ${p.problem}`).concat(check.recorded === 'mismatch' ? ['manifest differs from the one recorded in the audit trail'] : []);
        throw new BackupError(`backup ${id} does not match its manifest (${why.join(', ')}); nothing was restored`);
      }
      // A folder whose creation a readable audit trail does not know may have been put there by anyone, and restoring
      // it runs its SQL. Legitimate cases (a new database, or a backup taken after the point an earlier restore went
      // back to) say so explicitly. With the trail unreadable (the database lost) there is nothing to check against.
      if (check.recorded === 'unrecorded' && !req.allowUnrecorded) {
        throw new BackupError(
          `backup ${id} is not recorded in the audit trail (no backup.created event); nothing was restored. If you know where it comes from (a new database, or a backup taken after an earlier restore point), restore it with --allow-unrecorded`,
        );
      }
      const folder = folderOf(id);
      const { manifest, sha256 } = await readManifest(folder);
      const load = async (dir: string, format: BackupManifest['database']['format']) => {
        await restoreDatabase({ pool: opts.pool, databaseUrl: opts.databaseUrl, dir, format, psql });
        // A dump older than the code lacks later migrations; the application role's grants are not in dumps.
        await migrate(opts.databaseUrl);
        const priv = await opts.pool.query<{ p: string | null }>("SELECT to_regprocedure('agentry_apply_app_privileges()')::text AS p");
        if (priv.rows[0].p) await opts.pool.query('SELECT agentry_apply_app_privileges()');
      };
      // The database as it is now, so a backup that loads but does not check out is undone rather than left in
      // place. None when the database cannot be read (lost, or never set up): then there is nothing to keep.
      await mkdir(opts.dir, { recursive: true, mode: 0o700 });
      const before = await mkdtemp(join(opts.dir, `${TMP_PREFIX}before-restore-`));
      let verified: Awaited<ReturnType<typeof opts.audit.verify>>;
      let facts: Awaited<ReturnType<typeof readFacts>>;
      try {
        const kept = await dumpDatabase({ pool: opts.pool, databaseUrl: opts.databaseUrl, outDir: before, pgDump }).catch(() => undefined);
        try {
          await load(join(folder, 'database'), manifest.database.format);
          facts = await readFacts(opts.pool);
          for (const table of RELOADED_TABLES) {
            const expected = manifest.database.rows[table];
            if (expected !== undefined && facts.rows[table] !== expected) {
              throw new BackupError(`restored ${table} has ${facts.rows[table]} rows, the backup ${expected}`);
            }
          }
          for (const [tenant, head] of Object.entries(manifest.database.chainHeads)) {
            const now = facts.chainHeads[tenant];
            if (now?.chainIndex !== head.chainIndex || now.hash !== head.hash) {
              throw new BackupError(`restored chain of tenant "${tenant}" ends at #${now?.chainIndex ?? 0}, the backup's at #${head.chainIndex}`);
            }
          }
          verified = await opts.audit.verify();
          if (!verified.ok) {
            const b = verified.broken!;
            throw new BackupError(`backup ${id} loads, but its audit trail does not verify: tenant "${b.tenant}" event #${b.chainIndex} (${b.id}): ${b.reason}`);
          }
        } catch (err) {
          if (!kept) throw err;
          await load(before, kept.format);
          const why = err instanceof Error ? err.message : String(err);
          throw new BackupError(`${why}; the database was put back as it was before the restore`);
        }
      } finally {
        await rm(before, { recursive: true, force: true });
      }
      const pipelines = req.pipelinesTo ? await copyTree(join(folder, 'pipelines'), req.pipelinesTo) : [];
      await opts.audit.append({
        id: `backup:restored:${id}:${randomUUID()}`,
        tenant: SYSTEM_TENANT,
        runId: id,
        type: 'backup.restored',
        actor: req.actor,
        pipeline: '-',
        pipelineVersion: 0,
        definitionHash: 'none',
        data: { manifestSha256: sha256, backupCreatedAt: manifest.createdAt, rows: facts.rows, tenants: verified.tenants, events: verified.events, pipelines: pipelines.length },
        occurredAt: Date.now(),
      });
      return { id, rows: facts.rows, tenants: verified.tenants, events: verified.events, pipelines };
    },
  };
  return service;
}
export type BackupService = ReturnType<typeof createBackupService>;
