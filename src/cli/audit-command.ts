import { existsSync } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import type { Command } from 'commander';
import { Pool } from 'pg';
import { createAuditStore, HEADS_FORMAT, readAnchor, sealContext, sealKeysFromConfig, unsealFields, type Anchor, type HeadsFile } from '../audit';
import { BACKUP_ID, MANIFEST_FILE } from '../backup';
import { requireKeys, type Config } from '../config';
import { asDatabaseError, connectionFailure } from './connection-error';
import { count } from './format';

type Say = (line: string) => void;

/** Exit codes of `agentry audit verify`, listed in its --help and the README. */
export const VERIFY_EXIT = { verified: 0, broken: 1, noEvents: 2 } as const;

/** An anchor to check, with the name the output gives it: its file, or `backup <id>`. */
interface NamedAnchor {
  source: string;
  anchor: Anchor;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** `a`, `a and b`, `a, b and c`. */
const listOf = (items: string[]) => (items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`);

/** The anchors of `--anchor` and `--backup`, read (and refused, naming file and field) before the database is asked. */
async function readAnchors(paths: string[], backupIds: string[], backupDir: string): Promise<NamedAnchor[]> {
  const anchors: NamedAnchor[] = [];
  for (const path of paths) {
    const anchor = await readAnchor(path);
    anchors.push({ source: anchor.file, anchor });
  }
  for (const id of backupIds) {
    // An id names a folder inside BACKUP_DIR, never a path elsewhere.
    if (!BACKUP_ID.test(id)) throw new Error(`--backup: "${id}" is not a backup id (expected YYYYMMDDTHHMMSSZ-suffix, as agentry backup list shows them)`);
    const manifest = join(backupDir, id, MANIFEST_FILE);
    if (!existsSync(manifest)) {
      throw new Error(`--backup: there is no backup ${id}: looked for ${manifest} (BACKUP_DIR is ${backupDir}); agentry backup list shows the backups there`);
    }
    anchors.push({ source: `backup ${id}`, anchor: await readAnchor(join(backupDir, id)) });
  }
  return anchors;
}

/** What the success line says about the anchors checked: `; 2 anchored heads from x.json still in place`. */
function anchorsLine(anchors: NamedAnchor[], matched: number, tenant: string | undefined): string {
  if (anchors.length === 0) return '';
  const sources = listOf(anchors.map((a) => a.source));
  if (matched > 0) return `; ${count(matched, 'anchored head')} from ${sources} still in place`;
  const records = anchors.length === 1 ? 'records' : 'record';
  return tenant !== undefined ? `; ${sources} ${records} no head for tenant "${tenant}", so no anchor was checked` : `; ${sources} ${records} no chain heads, so no anchor was checked`;
}

/** A command action that talks to DATABASE_URL: a failed connection is reported as PostgreSQL's, naming the setting. */
function databaseAction<A extends unknown[]>(config: () => Config, action: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args) => {
    try {
      await action(...args);
    } catch (err) {
      // Only a failed connection needs the URL, and a connection was tried only after the configuration was read.
      const url = connectionFailure(err) ? config().DATABASE_URL : undefined;
      throw url ? asDatabaseError(err, url) : err;
    }
  };
}

/** `agentry audit verify`, `agentry audit heads` and `agentry audit export`. */
/** `--out: cannot write FILE: why`, in words for the usual reasons. */
function cannotWrite(file: string, err: NodeJS.ErrnoException): Error {
  const reasons: Record<string, string> = {
    ENOENT: 'its folder does not exist',
    EACCES: 'permission denied',
    EISDIR: 'it is a folder',
    ENOSPC: 'no space left on the device',
    EROFS: 'the file system is read-only',
  };
  return new Error(`--out: cannot write ${file}: ${reasons[err.code ?? ''] ?? err.message}`);
}

export function registerAuditCommands(program: Command, config: () => Config, say: Say): void {
  const audit = program.command('audit').description('read and prove the audit trail');

  audit
    .command('verify')
    .description(
      'recompute every hash chain; exits non-zero naming the first broken link (edited, deleted, inserted or reordered), or, with --anchor or --backup, the first chain head recorded there that is no longer in place (truncated or rewritten)',
    )
    .option('--tenant <tenant>', 'only this tenant')
    .option('--anchor <path>', 'also check the chain heads recorded in a file from audit heads, a backup manifest.json or a backup folder (repeatable)', collect)
    .option('--backup <id>', 'also check the chain heads recorded in the manifest of backup <id> in BACKUP_DIR (repeatable)', collect)
    .addHelpText(
      'after',
      [
        '',
        'The chains are recomputed first; then each anchored head must still be in the chain at its position with its',
        'hash. That catches what recomputing alone cannot: a chain cut short at its end, or rewritten from some point',
        'with correctly computed hashes. Events appended since the heads were recorded are fine.',
        '',
        'Exit codes:',
        `  ${VERIFY_EXIT.verified}  every chain checked holds (an empty audit trail, without --tenant, verifies too) and every anchored head is in place`,
        `  ${VERIFY_EXIT.broken}  a chain is broken, or an anchored head is no longer in place; the first break is named (also: any other error, such as an unreadable anchor)`,
        `  ${VERIFY_EXIT.noEvents}  --tenant names a tenant with no events at all, so nothing was verified (a mistyped tenant?)`,
      ].join('\n'),
    )
    .action(databaseAction(config, async (opts: { tenant?: string; anchor?: string[]; backup?: string[] }) => {
      const cfg = requireKeys(config(), ['DATABASE_URL']);
      const anchors = await readAnchors(opts.anchor ?? [], opts.backup ?? [], cfg.backupDir);
      const pool = new Pool({ connectionString: cfg.DATABASE_URL, max: 2 });
      try {
        const store = createAuditStore(pool);
        const res = await store.verify(opts.tenant);
        if (!res.ok) {
          const b = res.broken!;
          say(`audit trail BROKEN (${b.kind}): tenant "${b.tenant}" event #${b.chainIndex} (${b.id}): ${b.reason}`);
          process.exitCode = VERIFY_EXIT.broken;
          return;
        }
        // Checked even when no events are left: deleting a whole chain is the longest truncation.
        let matched = 0;
        for (const { source, anchor } of anchors) {
          const check = await store.checkAnchors(anchor.chainHeads, opts.tenant, source);
          if (!check.ok) {
            const b = check.broken!;
            say(`audit trail BROKEN (${b.kind}): tenant "${b.tenant}": ${b.reason}`);
            process.exitCode = VERIFY_EXIT.broken;
            return;
          }
          matched += check.checked;
        }
        if (res.events === 0 && opts.tenant !== undefined) {
          // Verifying nothing is not a pass: a mistyped tenant must not read as a proven trail.
          say(`audit trail NOT verified: tenant "${opts.tenant}" has no audit events (check the tenant name); nothing was checked`);
          process.exitCode = VERIFY_EXIT.noEvents;
        } else if (res.events === 0) {
          say(`audit trail verified: it is empty (no events in any tenant), so there is nothing to check${anchorsLine(anchors, matched, opts.tenant)}`);
        } else {
          say(`audit trail verified: ${count(res.events, 'event')} in ${res.tenants} tenant chain(s)${anchorsLine(anchors, matched, opts.tenant)}`);
        }
      } finally {
        await pool.end();
      }
    }));

  audit
    .command('heads')
    .description("print each tenant chain's head (position and hash of its last event) as JSON, for audit verify --anchor to check the chains against later")
    .option('--tenant <tenant>', 'only this tenant')
    .option('--out <file>', 'write to this file instead of stdout')
    .addHelpText(
      'after',
      [
        '',
        "Keep the file somewhere the database's operators cannot rewrite (another machine, write-once storage): whoever",
        'can rewrite both the database and the file can hide a truncated or rewritten chain. A head vouches for the chain',
        'as it was when taken, so run audit verify first. Each backup manifest records the heads too (audit verify --backup <id>).',
      ].join('\n'),
    )
    .action(databaseAction(config, async (opts: { tenant?: string; out?: string }) => {
      const cfg = requireKeys(config(), ['DATABASE_URL']);
      const pool = new Pool({ connectionString: cfg.DATABASE_URL, max: 2 });
      const takenAt = new Date().toISOString();
      let chainHeads: HeadsFile['chainHeads'];
      try {
        chainHeads = await createAuditStore(pool).heads(opts.tenant);
      } finally {
        await pool.end();
      }
      if (opts.tenant !== undefined && !chainHeads[opts.tenant]) {
        throw new Error(`tenant "${opts.tenant}" has no audit events (check the tenant name); no heads were written`);
      }
      const file: HeadsFile = { format: HEADS_FORMAT, takenAt, chainHeads };
      const text = `${JSON.stringify(file, null, 2)}\n`;
      const tenants = Object.keys(chainHeads).length;
      if (opts.out) {
        const out = opts.out;
        await writeFile(out, text).catch((err: NodeJS.ErrnoException) => {
          throw cannotWrite(out, err);
        });
      } else process.stdout.write(text);
      const empty = tenants === 0 ? ' (the audit trail is empty: these heads anchor nothing)' : '';
      process.stderr.write(`heads of ${tenants} tenant chain(s)${opts.out ? ` written to ${opts.out}` : ''}${empty}\n`);
    }));

  audit
    .command('export')
    .description('write events as NDJSON, tenant by tenant in chain order (the fields the hashes cover, so the file can be re-verified)')
    .option('--tenant <tenant>', 'only this tenant')
    .option('--out <file>', 'write to this file instead of stdout')
    .option('--unseal', 'add the opened sealed fields (ip, userAgent, comment, reason) as "unsealed"; needs AUDIT_SEAL_KEYS (or the dev key file)')
    .action(databaseAction(config, async (opts: { tenant?: string; out?: string; unseal?: boolean }) => {
      const cfg = requireKeys(config(), ['DATABASE_URL']);
      const keys = opts.unseal ? sealKeysFromConfig(cfg).keys : undefined;
      const pool = new Pool({ connectionString: cfg.DATABASE_URL, max: 2 });
      // Opened before anything is read, so a path that cannot be written is said at once; every write is awaited,
      // so a full disk fails the command instead of ending it 'exported' with a short file.
      const file = opts.out;
      const handle = file ? await open(file, 'w', opts.unseal ? 0o600 : 0o644).catch((err: NodeJS.ErrnoException) => Promise.reject(cannotWrite(file, err))) : undefined;
      let pending = '';
      const flush = async () => {
        const chunk = pending;
        pending = '';
        if (!chunk) return;
        if (!handle) {
          if (!process.stdout.write(chunk)) await once(process.stdout, 'drain');
          return;
        }
        await handle.write(chunk).catch((err: NodeJS.ErrnoException) => Promise.reject(new Error(`${cannotWrite(file!, err).message}; the file is incomplete`)));
      };
      let events = 0;
      let unopened = 0;
      try {
        for await (const event of createAuditStore(pool).exportEvents(opts.tenant)) {
          let line: Record<string, unknown> = event as unknown as Record<string, unknown>;
          if (keys) {
            const opened = unsealFields(event.data, keys, sealContext(event));
            const unsealed = Object.fromEntries(Object.keys(event.data).filter((k) => opened.data[k] !== event.data[k]).map((k) => [k, opened.data[k]]));
            unopened += opened.failures.length;
            line = {
              ...line,
              ...(Object.keys(unsealed).length ? { unsealed } : {}),
              ...(opened.failures.length ? { sealFailures: opened.failures.map((f) => ({ field: f.field, reason: f.reason, keyId: f.keyId })) } : {}),
            };
          }
          pending += `${JSON.stringify(line)}\n`;
          if (pending.length >= 64 * 1024) await flush();
          events++;
        }
        await flush();
        await handle?.sync().catch(() => undefined);
      } finally {
        await pool.end();
        await handle?.close();
      }
      if (opts.tenant && events === 0) throw new Error(`tenant "${opts.tenant}" has no audit events (check the tenant name)`);
      process.stderr.write(`exported ${count(events, 'event')}${opts.out ? ` to ${opts.out}` : ''}${unopened ? `; ${count(unopened, 'sealed field')} could not be opened (unknown key id or altered)` : ''}\n`);
      if (unopened) process.exitCode = 1;
    }));
}
