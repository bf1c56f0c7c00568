import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import type { Command } from 'commander';
import { Pool } from 'pg';
import { createAuditStore, sealContext, sealKeysFromConfig, unsealFields } from '../audit';
import { requireKeys, type Config } from '../config';
import { count } from './format';

type Say = (line: string) => void;

/** Exit codes of `agentry audit verify`, listed in its --help and the README. */
export const VERIFY_EXIT = { verified: 0, broken: 1, noEvents: 2 } as const;

/** `agentry audit verify` and `agentry audit export`. */
export function registerAuditCommands(program: Command, config: () => Config, say: Say): void {
  const audit = program.command('audit').description('read and prove the audit trail');

  audit
    .command('verify')
    .description('recompute every hash chain; exits non-zero naming the first broken link (edited, deleted, inserted or reordered)')
    .option('--tenant <tenant>', 'only this tenant')
    .addHelpText(
      'after',
      [
        '',
        'Exit codes:',
        `  ${VERIFY_EXIT.verified}  every chain checked holds (an empty audit trail, without --tenant, verifies too)`,
        `  ${VERIFY_EXIT.broken}  a chain is broken; the first broken link is named (also: any other error)`,
        `  ${VERIFY_EXIT.noEvents}  --tenant names a tenant with no events at all, so nothing was verified (a mistyped tenant?)`,
      ].join('\n'),
    )
    .action(async (opts: { tenant?: string }) => {
      const cfg = requireKeys(config(), ['DATABASE_URL']);
      const pool = new Pool({ connectionString: cfg.DATABASE_URL, max: 2 });
      try {
        const res = await createAuditStore(pool).verify(opts.tenant);
        if (res.ok && res.events === 0 && opts.tenant !== undefined) {
          // Verifying nothing is not a pass: a mistyped tenant must not read as a proven trail.
          say(`audit trail NOT verified: tenant "${opts.tenant}" has no audit events (check the tenant name); nothing was checked`);
          process.exitCode = VERIFY_EXIT.noEvents;
        } else if (res.ok && res.events === 0) {
          say('audit trail verified: it is empty (no events in any tenant), so there is nothing to check');
        } else if (res.ok) {
          say(`audit trail verified: ${count(res.events, 'event')} in ${res.tenants} tenant chain(s)`);
        } else {
          const b = res.broken!;
          say(`audit trail BROKEN (${b.kind}): tenant "${b.tenant}" event #${b.chainIndex} (${b.id}): ${b.reason}`);
          process.exitCode = VERIFY_EXIT.broken;
        }
      } finally {
        await pool.end();
      }
    });

  audit
    .command('export')
    .description('write events as NDJSON, tenant by tenant in chain order (the fields the hashes cover, so the file can be re-verified)')
    .option('--tenant <tenant>', 'only this tenant')
    .option('--out <file>', 'write to this file instead of stdout')
    .option('--unseal', 'add the opened sealed fields (ip, userAgent, comment, reason) as "unsealed"; needs AUDIT_SEAL_KEYS (or the dev key file)')
    .action(async (opts: { tenant?: string; out?: string; unseal?: boolean }) => {
      const cfg = requireKeys(config(), ['DATABASE_URL']);
      const keys = opts.unseal ? sealKeysFromConfig(cfg).keys : undefined;
      const pool = new Pool({ connectionString: cfg.DATABASE_URL, max: 2 });
      const out = opts.out ? createWriteStream(opts.out, { mode: opts.unseal ? 0o600 : 0o644 }) : process.stdout;
      // `agentry audit export | head` closes the pipe early: stop quietly, like other command-line tools.
      if (!opts.out) process.stdout.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' ? process.exit(0) : undefined));
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
          if (!out.write(`${JSON.stringify(line)}\n`)) await once(out, 'drain');
          events++;
        }
      } finally {
        await pool.end();
        if (opts.out) {
          out.end();
          await once(out, 'finish');
        }
      }
      process.stderr.write(`exported ${count(events, 'event')}${opts.out ? ` to ${opts.out}` : ''}${unopened ? `; ${count(unopened, 'sealed field')} could not be opened (unknown key id or altered)` : ''}\n`);
      if (unopened) process.exitCode = 1;
    });
}
