import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createTestDatabase, type TestDatabase } from './postgres';
import { freePort, spawnService, waitForHttp, type Service } from './processes';
import { startTemporal } from './temporal';

const ROOT = resolve(__dirname, '..', '..');
const SHIPPED_PIPELINES = join(ROOT, 'src/pipelines/definitions');

/** The machine's Redis, shared by test files; each test keeps to tenants and task queues of its own. */
export const SHARED_REDIS_URL = 'redis://127.0.0.1:6379';

export interface StackOptions {
  /** A short name for the test file: part of the task queue and temporary folder names, so leftovers are traceable. */
  label: string;
  /** JWT_SECRET of the processes (tests mint their tokens with it). @default 32 random bytes, hex */
  secret?: string;
  /** Added to the environment of every process, after the stack's own keys (so it may replace them). @default none */
  env?: Record<string, string>;
  /** Added to the environment of the facades only, after `env`. @default none */
  facadeEnv?: Record<string, string>;
  /** Added to the environment of the workers only, after `env`. @default none */
  workerEnv?: Record<string, string>;
  /**
   * Pipeline definitions (file name → YAML) written to a PIPELINES_DIR of the stack's own. @default none: the
   * processes load the shipped definitions from src/pipelines/definitions
   */
  pipelines?: Record<string, string>;
  /** With `pipelines`, copy the shipped definitions next to them (a test's file of the same name wins). @default false */
  withShippedPipelines?: boolean;
  /** REDIS_URL of the processes, or false for none (each facade then limits in process). @default SHARED_REDIS_URL */
  redis?: string | false;
  /**
   * DATABASE_URL of a database the test owns (the processes migrate it; the stack never drops it). The stack then has
   * no `db` of its own. @default a fresh, migrated test database, dropped by `stop()`
   */
  databaseUrl?: string;
  /** Keep the Temporal dev server's state in this SQLite file. @default in memory */
  temporalDbFilename?: string;
  /** Facade processes started at once; with workers they must answer /ready, without only /health. @default 1 */
  facades?: number;
  /** Worker processes started at once. @default 1 */
  workers?: number;
}

/** One facade or worker process of the stack. */
export interface StackProcess {
  service: Service;
  /** The facade's PORT, or the worker's WORKER_METRICS_PORT (its /metrics and /health). */
  port: number;
  /** `http://127.0.0.1:{port}`. */
  url: string;
}

export interface Stack {
  temporal: TestWorkflowEnvironment;
  /** The stack's test database; reading it throws when the test brought its own (`databaseUrl`). */
  readonly db: TestDatabase;
  secret: string;
  taskQueue: string;
  /** The environment every process starts from (before facadeEnv or workerEnv), for processes a test runs itself. */
  common: Record<string, string>;
  /** The facades started so far, in order (stopped ones included). */
  facades: StackProcess[];
  /** The workers started so far, in order (stopped ones included). */
  workers: StackProcess[];
  /** Every process started so far; `stop()` stops them all (a test may add the ones it spawns itself). */
  services: Service[];
  /** URL of the first facade; reading it throws when none was started. */
  readonly base: string;
  /** `/metrics` URL of the first worker; reading it throws when none was started. */
  readonly workerMetricsUrl: string;
  /**
   * Starts one more facade with `env` added and waits until it answers `waitFor` (/ready needs a polling worker).
   * @default waitFor '/health'
   */
  startFacade(env?: Record<string, string>, waitFor?: '/health' | '/ready'): Promise<StackProcess>;
  /** Starts one more worker with `env` added and waits until its /health answers. */
  startWorker(env?: Record<string, string>): Promise<StackProcess>;
  /** Stops every process (SIGTERM by default), drops the test database, stops Temporal and deletes the temporary files. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * The real facade and worker processes of one e2e test file on a Temporal dev server and a PostgreSQL database of
 * its own, with a task queue and temporary folders of its own. If any part fails to start, what did start is
 * stopped again before the error is thrown, so a failed `beforeAll` leaves nothing running.
 */
export async function startStack(opts: StackOptions): Promise<Stack> {
  const id = `${opts.label}-${randomBytes(3).toString('hex')}`;
  const secret = opts.secret ?? randomBytes(32).toString('hex');
  const taskQueue = `e2e-${id}`;
  const dir = mkdtempSync(join(tmpdir(), `agentry-${opts.label}-`));
  const services: Service[] = [];
  const facades: StackProcess[] = [];
  const workers: StackProcess[] = [];
  let temporal: TestWorkflowEnvironment | undefined;
  let db: TestDatabase | undefined;

  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    // Every step runs even when one fails (a process that will not stop must not leave the database and Temporal
    // behind); the first failure is reported afterwards.
    const results: PromiseSettledResult<unknown>[] = await Promise.allSettled(services.map((s) => s.stop(signal)));
    results.push(...(await Promise.allSettled([db?.drop(), temporal?.teardown()])));
    rmSync(dir, { recursive: true, force: true });
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  };

  try {
    const [t, d] = await Promise.allSettled([
      startTemporal({ dbFilename: opts.temporalDbFilename }),
      opts.databaseUrl ? Promise.resolve(undefined) : createTestDatabase(),
    ]);
    if (t.status === 'fulfilled') temporal = t.value;
    if (d.status === 'fulfilled') db = d.value;
    if (t.status === 'rejected') throw t.reason;
    if (d.status === 'rejected') throw d.reason;
    const started = t.value;

    const common: Record<string, string> = {
      DATABASE_URL: opts.databaseUrl ?? db!.url,
      TEMPORAL_ADDRESS: started.address,
      TEMPORAL_TASK_QUEUE: taskQueue,
      ...(opts.redis === false ? {} : { REDIS_URL: opts.redis ?? SHARED_REDIS_URL }),
      JWT_SECRET: secret,
      AGENTRY_STATE_DIR: join(dir, 'state'),
      ...(opts.pipelines ? { PIPELINES_DIR: writePipelines(join(dir, 'pipelines'), opts.pipelines, opts.withShippedPipelines ?? false) } : {}),
      ...opts.env,
    };
    mkdirSync(common.AGENTRY_STATE_DIR, { recursive: true });

    const startFacade: Stack['startFacade'] = async (env = {}, waitFor = '/health') => {
      const port = await freePort();
      const service = spawnService('src/server.ts', { ...common, ...opts.facadeEnv, ...env, PORT: String(port) });
      services.push(service);
      const facade = { service, port, url: `http://127.0.0.1:${port}` };
      facades.push(facade);
      await waitForHttp(`${facade.url}${waitFor}`, service);
      return facade;
    };
    const startWorker: Stack['startWorker'] = async (env = {}) => {
      const port = await freePort();
      const service = spawnService('src/worker.ts', { ...common, ...opts.workerEnv, ...env, WORKER_METRICS_PORT: String(port) });
      services.push(service);
      const worker = { service, port, url: `http://127.0.0.1:${port}` };
      workers.push(worker);
      await waitForHttp(`${worker.url}/health`, service);
      return worker;
    };

    const workerCount = opts.workers ?? 1;
    // All at once (the processes serialise their start-up migrations themselves); settled, not raced, so that a
    // failure is cleaned up only once no process is left half started.
    const starts = await Promise.allSettled([
      ...Array.from({ length: workerCount }, () => startWorker()),
      ...Array.from({ length: opts.facades ?? 1 }, () => startFacade({}, workerCount > 0 ? '/ready' : '/health')),
    ]);
    for (const s of starts) if (s.status === 'rejected') throw s.reason;

    return {
      temporal: started,
      get db() {
        if (!db) throw new Error('this stack runs on the database the test brought (databaseUrl); it has no test database of its own');
        return db;
      },
      secret,
      taskQueue,
      common,
      facades,
      workers,
      services,
      get base() {
        if (!facades[0]) throw new Error('this stack has no facade: start one with startFacade()');
        return facades[0].url;
      },
      get workerMetricsUrl() {
        if (!workers[0]) throw new Error('this stack has no worker: start one with startWorker()');
        return `${workers[0].url}/metrics`;
      },
      startFacade,
      startWorker,
      stop,
    };
  } catch (err) {
    await stop('SIGKILL').catch(() => undefined);
    throw err;
  }
}

/** Writes the test's pipeline files (after the shipped ones, when asked for) and answers the folder. */
function writePipelines(folder: string, pipelines: Record<string, string>, withShipped: boolean): string {
  mkdirSync(folder, { recursive: true });
  if (withShipped) for (const f of readdirSync(SHIPPED_PIPELINES)) copyFileSync(join(SHIPPED_PIPELINES, f), join(folder, f));
  for (const [file, text] of Object.entries(pipelines)) writeFileSync(join(folder, file), text);
  return folder;
}
