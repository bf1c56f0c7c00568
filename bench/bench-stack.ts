import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import { parse, stringify } from 'yaml';
import { startStack, stopChild, waitFor, type Stack } from '../src/cli/dev-stack';
import { loadOrCreateDevKeyRing, payloadCodecFromConfig } from '../src/codec';
import { loadConfig } from '../src/config';
import { mintToken } from '../src/facade/auth';
import { connectClient, dataConverterFor } from '../src/temporal/connection';
import { createTestDatabase, type TestDatabase } from '../test/helpers/postgres';
import { freePort } from '../test/helpers/processes';

const ROOT = resolve(__dirname, '..');
const SOURCE_PIPELINE = resolve(ROOT, 'src/pipelines/definitions/support-triage.yaml');
/** Where the processes' logs are kept after the temporary state directory is removed. */
export const LOGS_DIR = resolve(ROOT, 'bench/results/logs');

/** `support-triage` without its `draft` stage, and a review stage that never applies. */
export const TRIAGE_PIPELINE = 'bench-triage';
/** The same stages, with a review stage that always waits for an approver. */
export const PARKED_PIPELINE = 'bench-triage-parked';

export interface BenchStack {
  stack: Stack;
  /** A Temporal client with the stack's payload codec. */
  client: Client;
  tenant: string;
  /** Starts runs (operator). */
  operatorToken: string;
  /** Decides approvals (a different subject: nobody approves their own run). */
  approverToken: string;
  /** The `route` stage's table and default, for the bare workflow. */
  route: { table: Record<string, string>; default: string };
  stop(): Promise<void>;
}

interface StageYaml {
  name: string;
  agent?: string;
  when?: unknown;
  with?: Record<string, unknown>;
  approval?: Record<string, unknown>;
}

/**
 * The bench pipelines, derived from `support-triage.yaml` at run time so they never drift from it: the `llm`
 * stage is dropped (the local model takes seconds per run and would measure nothing but itself), the review
 * stage either never applies or always does, and the concurrency cap is lifted.
 */
export function benchPipelines(sourceText: string): { files: Record<string, string>; route: BenchStack['route'] } {
  const source = parse(sourceText) as { stages: StageYaml[]; limits: Record<string, unknown> } & Record<string, unknown>;
  const stages = source.stages.filter((s) => s.agent !== 'llm');
  const routeStage = stages.find((s) => s.name === 'route');
  if (!routeStage?.with) throw new Error(`${SOURCE_PIPELINE}: no "route" stage to take the lookup table from`);
  const variant = (name: string, description: string, review: (s: StageYaml) => StageYaml) =>
    stringify({
      ...source,
      name,
      description,
      limits: { ...source.limits, maxConcurrentRuns: 1_000_000 },
      stages: stages.map((s) => (s.approval ? review(s) : s)),
    });
  return {
    files: {
      [`${TRIAGE_PIPELINE}.yaml`]: variant(TRIAGE_PIPELINE, 'support-triage for benchmarks: no draft stage, the review never applies.', (s) => ({
        ...s,
        when: { ref: 'classify.confidence', lt: -1 },
      })),
      [`${PARKED_PIPELINE}.yaml`]: variant(PARKED_PIPELINE, 'support-triage for benchmarks: no draft stage, every run waits for a review.', ({ when: _when, ...s }) => s),
    },
    route: { table: routeStage.with.table as Record<string, string>, default: String(routeStage.with.default) },
  };
}

/**
 * The project's own one-machine stack (`startStack`, as `npm run demo` uses it) on free ports and a temporary state
 * directory, with a fresh database on the machine's PostgreSQL, the bench pipelines, limits lifted, and the bare
 * worker beside the real one. Everything is removed again by `stop()`.
 */
export async function startBenchStack(log: (line: string) => void): Promise<BenchStack> {
  const stateDir = mkdtempSync(join(tmpdir(), 'agentry-bench-'));
  const pipelinesDir = join(stateDir, 'pipelines');
  mkdirSync(pipelinesDir);
  const { files, route } = benchPipelines(readFileSync(SOURCE_PIPELINE, 'utf8'));
  for (const [file, text] of Object.entries(files)) writeFileSync(join(pipelinesDir, file), text);

  let db: TestDatabase | undefined;
  let stack: Stack | undefined;
  let bare: ChildProcess | undefined;
  let client: Client | undefined;
  // Stopped once, whoever asks first (an interrupt, or the end of the run).
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= stopAll());
  const stopAll = async () => {
    await client?.connection.close().catch(() => undefined);
    if (bare) await stopChild(bare);
    await stack?.stop();
    await db?.drop().catch((err: Error) => log(`could not drop the bench database: ${err.message}`));
    const logs = join(stateDir, 'logs');
    if (existsSync(logs)) {
      rmSync(LOGS_DIR, { recursive: true, force: true });
      cpSync(logs, LOGS_DIR, { recursive: true });
    }
    rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    db = await createTestDatabase('agentry_bench');
    const [temporalPort, uiPort, facadePort, metricsPort, sdkMetricsPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
    // One subject starts thousands of runs within minutes: every rate and concurrency limit is lifted, so the
    // bench measures the work, not the limiter's refusals.
    const env: Record<string, string> = {
      AGENTRY_STATE_DIR: stateDir,
      PIPELINES_DIR: pipelinesDir,
      WORKER_METRICS_PORT: String(metricsPort),
      WORKER_SDK_METRICS_PORT: String(sdkMetricsPort),
      TEMPORAL_UI_URL: `http://127.0.0.1:${uiPort}`,
      RATE_LIMIT_PER_MINUTE: '100000000',
      TENANT_RATE_LIMIT_PER_MINUTE: '100000000',
      TENANT_MAX_ACTIVE_RUNS: '100000000',
      BACKUP_SCHEDULE: 'off',
      LOG_LEVEL: 'warn',
    };
    const config = loadConfig({ ...process.env, ...env });
    if (!process.env.TEMPORAL_ADDRESS) config.TEMPORAL_ADDRESS = `127.0.0.1:${temporalPort}`;
    config.DATABASE_URL = db.url;
    stack = await startStack({ config, log, env, facadePort, llm: false });

    // Without PAYLOAD_KEYS the stack hands its processes the state directory's development key; the bare worker and
    // this client use the same keys either way.
    const devKeys = config.PAYLOAD_KEYS ? undefined : loadOrCreateDevKeyRing(stateDir);
    const logFile = join(stack.logsDir, 'bare-worker.log');
    const out = createWriteStream(logFile, { flags: 'a' });
    let ready = false;
    bare = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'bare-worker.ts')], {
      cwd: ROOT,
      env: {
        ...process.env,
        ...env,
        DATABASE_URL: db.url,
        TEMPORAL_ADDRESS: stack.temporalAddress,
        ...(devKeys ? { PAYLOAD_KEYS: devKeys.text } : {}),
        AGENTRY_EXIT_WITH_PARENT: 'true',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    bare.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('bare worker ready')) ready = true;
      out.write(d);
    });
    bare.stderr?.pipe(out);
    log(`Bare worker: starting (log in ${logFile})`);
    await waitFor('the bare worker', async () => ready, 120_000, bare, logFile);

    client = await connectClient({
      address: stack.temporalAddress,
      namespace: config.TEMPORAL_NAMESPACE,
      dataConverter: dataConverterFor(payloadCodecFromConfig(config).codec),
    });
    const tenant = `bench-${randomBytes(3).toString('hex')}`;
    const token = (subject: string, roles: ('operator' | 'approver')[]) =>
      mintToken({ secret: stack!.jwtSecret, issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE, subject, tenant, roles, ttlS: 24 * 3600 });
    return {
      stack,
      client,
      tenant,
      operatorToken: await token('bench-operator', ['operator']),
      approverToken: await token('bench-approver', ['approver']),
      route,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
