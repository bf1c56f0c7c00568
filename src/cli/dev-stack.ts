import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import type { EmbeddedDatabase } from '../audit/embedded-postgres';
import { loadOrCreateDevKeyRing } from '../codec';
import type { Config } from '../config';
import { SEARCH_ATTRIBUTES } from '../contracts';
import { LOCAL_MODEL_NAME, resolveLocalModel, spawnLocalServer } from '../llm';
import { connectClient } from '../temporal/connection';
import { resolveTemporalCli } from '../temporal/temporal-cli';
import { ownCmdline, removeStackRecord, stopLeftovers, writeStackRecord, type StackRecord } from './stack-record';

const ROOT = resolve(__dirname, '..', '..');

export interface StackOptions {
  config: Config;
  log: (line: string) => void;
  /** Facade port for the demo stack. @default 3000 */
  facadePort?: number;
  /** Port of the embedded PostgreSQL when DATABASE_URL is unset. @default 54329 */
  embeddedPgPort?: number;
  /** Extra environment for the worker and facade processes. */
  env?: Record<string, string>;
  /**
   * Serve the local language model when LLM_BASE_URL is unset. Turn it off for pipelines without `llm` stages; the
   * worker then starts its own model server only if an `llm` stage ever runs. @default true
   */
  llm?: boolean;
  /** Aborting it (Ctrl-C during start-up) stops what has started so far; `startStack` then rejects with `StackInterrupted`. */
  signal?: AbortSignal;
}

/** `startStack` was interrupted through its `signal`; everything it had started is stopped again. */
export class StackInterrupted extends Error {
  constructor() {
    super('interrupted while the stack was starting');
    this.name = 'StackInterrupted';
  }
}

export interface Stack {
  facadeUrl: string;
  uiUrl: string;
  temporalAddress: string;
  databaseUrl: string;
  redis: 'redis' | 'in-process';
  jwtSecret: string;
  logsDir: string;
  /** Which parts this stack started (the rest were reused through configuration). */
  started: string[];
  /** The LLM API the worker uses: LLM_BASE_URL, or the local model server this stack started. */
  llm: { baseUrl: string; model: string; local: boolean };
  stop(): Promise<void>;
}

function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolvePort) => {
    const socket = createConnection({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolvePort(true);
    });
    socket.once('error', () => resolvePort(false));
  });
}

/** Polls `check` every 300 ms until it answers true; fails early if `child` exits or `signal` aborts, or after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, child?: ChildProcess, logFile?: string, signal?: AbortSignal) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (signal?.aborted) throw new StackInterrupted();
    if (child && child.exitCode !== null) {
      throw new Error(`${what} exited with code ${child.exitCode} while starting; see ${logFile}`);
    }
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`${what} did not become ready within ${Math.round(timeoutMs / 1000)} s${logFile ? `; see ${logFile}` : ''}`);
}

/** SIGTERM, then SIGKILL after `graceMs` (ms); resolves once the child has exited. */
export function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  return new Promise((resolveStop) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolveStop();
    // A child tied to this process may have been unref'd: waiting for it must keep the event loop alive, or Node
    // would end this process (with exit code 0) once the SIGKILL timer has fired, before the child has exited.
    child.ref();
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolveStop();
    });
    child.kill('SIGTERM');
  });
}

const facadePortFor = (opts: StackOptions) => opts.facadePort ?? opts.config.PORT;

/** Port of the embedded PostgreSQL when DATABASE_URL is unset. */
export const EMBEDDED_PG_PORT = 54329;

/** What was thrown, as text: embedded-postgres rejects with `undefined` or a string when postgres exits early. */
export function describeThrown(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  if (err === undefined || err === null) return 'postgres exited while starting and gave no reason';
  if (typeof err === 'string') return err.trim() || 'no reason given';
  return inspect(err, { depth: 2, breakLength: Infinity });
}

/** The error `agentry demo` prints when the embedded PostgreSQL cannot start: where, why, and the two ways out. */
export function embeddedPostgresError(err: unknown, where: { port: number; dataDir: string; portInUse: boolean }): Error {
  const cause = where.portInUse
    ? `port ${where.port} is already in use`
    : `${describeThrown(err)}. Common causes: port ${where.port} taken by another program, another PostgreSQL still running on the data folder ${where.dataDir} (see its postmaster.pid), or a damaged data folder`;
  return new Error(
    `the embedded PostgreSQL could not start on 127.0.0.1:${where.port} with its data in ${where.dataDir}: ${cause}. ` +
      `Free port ${where.port} (stop what holds it; an earlier demo may still be running), or set DATABASE_URL to use a PostgreSQL of your own.`,
    { cause: err },
  );
}

/**
 * Starts the embedded PostgreSQL (data in `{stateDir}/postgres`). Checks the port first; any failure, whatever
 * embedded-postgres threw, becomes an Error that names the port, the data folder and what to do.
 */
export async function startEmbeddedDatabase(opts: { stateDir: string; port: number; log: (line: string) => void }): Promise<EmbeddedDatabase> {
  const where = { port: opts.port, dataDir: join(opts.stateDir, 'postgres') };
  if (await portOpen('127.0.0.1', opts.port)) throw embeddedPostgresError(undefined, { ...where, portInUse: true });
  try {
    // Loaded only when needed: the package is ESM and large. On import it installs exit and signal hooks that
    // call process.exit() on SIGINT/SIGTERM/beforeExit, which would cut our own orderly stop short and override
    // the exit code; this stack stops the database itself, so those hooks are removed again.
    const hooked = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as NodeJS.Signals[];
    const before = new Map(hooked.map((e) => [e, process.listeners(e)]));
    const { startEmbeddedPostgres } = await import('../audit/embedded-postgres');
    for (const e of hooked) {
      for (const l of process.listeners(e)) if (!before.get(e)?.includes(l)) process.off(e, l);
    }
    return await startEmbeddedPostgres({ stateDir: opts.stateDir, port: opts.port, log: opts.log });
  } catch (err) {
    throw embeddedPostgresError(err, { ...where, portInUse: false });
  }
}

/**
 * Spawns a child in a process group of its own whose stdout and stderr are its log file itself, not pipes through
 * this process: a child that outlives this process (killed, or its terminal closed) must not block writing its
 * last log lines into a pipe nobody reads.
 */
function spawnLogged(command: string, args: string[], logFile: string, opts: { env?: NodeJS.ProcessEnv; cwd?: string; stdoutPipe?: boolean }): ChildProcess {
  const fd = openSync(logFile, 'a');
  try {
    return spawn(command, args, { env: opts.env, cwd: opts.cwd, stdio: ['ignore', opts.stdoutPipe ? 'pipe' : fd, fd], detached: true });
  } finally {
    closeSync(fd);
  }
}

/**
 * The embedded PostgreSQL in a process of its own (src/embedded-db.ts), in a process group of its own like the
 * stack's other children, so the terminal's Ctrl-C leaves it to be stopped last. Its errors name the port and folder.
 */
async function startEmbeddedDatabaseProcess(opts: { stateDir: string; port: number; logFile: string; log: (line: string) => void; signal?: AbortSignal }): Promise<EmbeddedDatabase> {
  const where = { port: opts.port, dataDir: join(opts.stateDir, 'postgres') };
  if (await portOpen('127.0.0.1', opts.port)) throw embeddedPostgresError(undefined, { ...where, portInUse: true });
  opts.log(`PostgreSQL: log in ${opts.logFile}`);
  // stdout carries the one ready line; the log file takes the rest.
  const child = spawnLogged(process.execPath, ['--import', 'tsx', join(ROOT, 'src/embedded-db.ts'), opts.stateDir, String(opts.port)], opts.logFile, {
    cwd: ROOT,
    stdoutPipe: true,
  });
  const answer = await new Promise<{ url?: string; pid?: number; error?: string }>((resolveAnswer) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const line = text.split('\n')[0];
      if (text.includes('\n')) {
        try {
          resolveAnswer(JSON.parse(line) as { url?: string; pid?: number; error?: string });
        } catch {
          resolveAnswer({ error: `unexpected output: ${line.slice(0, 200)}` });
        }
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => resolveAnswer({ error: `it exited with code ${code} while starting (see ${opts.logFile})` }));
    opts.signal?.addEventListener('abort', () => resolveAnswer({ error: 'interrupted' }), { once: true });
  });
  // Only the one line is ever written there; no pipe may hold either process afterwards.
  child.stdout!.destroy();
  if (!answer.url) {
    await stopChild(child);
    if (answer.error === 'interrupted') throw new StackInterrupted();
    throw new Error(answer.error ?? 'the embedded PostgreSQL did not start');
  }
  return { url: answer.url, pid: answer.pid, stop: () => stopChild(child, 20_000) };
}

/** A port the stack will listen on, and what to do when something else holds it. */
export interface StackPort {
  host: string;
  port: number;
  /** What listens there: `the Temporal Web UI`. */
  what: string;
  /** What to do when the port is taken, naming the setting that moves it. */
  remedy: string;
}

/** The stack starts its own Temporal dev server unless TEMPORAL_ADDRESS names one to reuse. */
const reusesTemporal = (env: NodeJS.ProcessEnv) => Boolean(env.TEMPORAL_ADDRESS);

/**
 * Every port `startStack` will listen on with these options, each with the setting that moves it. The parts reused
 * through configuration (TEMPORAL_ADDRESS, DATABASE_URL, LLM_BASE_URL) are left out, and so are ports set to 0 (the
 * system picks a free one).
 */
export function stackPorts(opts: StackOptions, env: NodeJS.ProcessEnv = process.env): StackPort[] {
  const { config } = opts;
  const ports: StackPort[] = [];
  if (!reusesTemporal(env)) {
    const [host, portText] = config.TEMPORAL_ADDRESS.split(':');
    const uiPort = Number(new URL(config.TEMPORAL_UI_URL).port || '8233');
    ports.push(
      {
        host,
        port: Number(portText),
        what: 'the Temporal dev server',
        remedy: `if a Temporal server runs there, reuse it with TEMPORAL_ADDRESS=${config.TEMPORAL_ADDRESS}; otherwise stop what holds it.`,
      },
      {
        // The dev server serves its Web UI on the frontend's address.
        host,
        port: uiPort,
        what: 'the Temporal Web UI',
        remedy: `stop what holds it, or move the Web UI with TEMPORAL_UI_URL (e.g. TEMPORAL_UI_URL=http://${host}:${uiPort === 65535 ? uiPort - 1 : uiPort + 1}).`,
      },
    );
  }
  if (!config.DATABASE_URL) {
    ports.push({
      host: '127.0.0.1',
      port: opts.embeddedPgPort ?? EMBEDDED_PG_PORT,
      what: 'the embedded PostgreSQL',
      remedy: 'stop what holds it (an earlier demo may still be running), or set DATABASE_URL to use a PostgreSQL of your own.',
    });
  }
  if (!config.LLM_BASE_URL && opts.llm !== false) {
    const { LLM_LOCAL_HOST: host, LLM_LOCAL_PORT: port } = config;
    ports.push({
      host,
      port,
      what: 'the local model server',
      remedy: `if a local model server runs there, reuse it with LLM_BASE_URL=http://${host}:${port}/v1; otherwise stop what holds it, or set LLM_LOCAL_PORT (0 picks a free port).`,
    });
  }
  ports.push(
    { host: '127.0.0.1', port: facadePortFor(opts), what: 'the facade', remedy: 'stop what holds it, or choose another port with --port (or PORT).' },
    { host: '127.0.0.1', port: config.WORKER_METRICS_PORT, what: 'the worker metrics endpoint', remedy: 'stop what holds it, or set WORKER_METRICS_PORT.' },
  );
  if (config.WORKER_SDK_METRICS_PORT !== 'off') {
    ports.push({
      host: '127.0.0.1',
      port: config.WORKER_SDK_METRICS_PORT,
      what: 'the worker SDK metrics endpoint',
      remedy: 'stop what holds it, or set WORKER_SDK_METRICS_PORT (off turns that endpoint off).',
    });
  }
  return ports.filter((p) => p.port !== 0);
}

/** `port 8233 (the Temporal Web UI) is already in use: <remedy>`, one line per taken port. */
export function portsInUseError(taken: readonly StackPort[]): Error {
  const lines = taken.map((p) => `port ${p.port} (${p.what}) is already in use: ${p.remedy}`);
  return new Error(lines.length === 1 ? lines[0] : [`${lines.length} ports the stack needs are in use; nothing was started:`, ...lines.map((l) => `  ${l}`)].join('\n'));
}

/**
 * Checks every port of `stackPorts` before anything starts: a taken port found later would cost a Temporal start-up,
 * and a server that fails to bind names the cause only in its log.
 */
export async function checkStackPorts(opts: StackOptions, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const ports = stackPorts(opts, env);
  const open = await Promise.all(ports.map((p) => portOpen(p.host, p.port)));
  const taken = ports.filter((_, i) => open[i]);
  if (taken.length > 0) throw portsInUseError(taken);
}

/**
 * Starts, or reuses through configuration, every part of a one-machine stack: the Temporal dev server (SQLite
 * file, Web UI), PostgreSQL (DATABASE_URL or an embedded server), Redis (REDIS_URL or the in-process limiter),
 * one worker and one facade. Child output goes to `{stateDir}/logs/`.
 */
export async function startStack(opts: StackOptions): Promise<Stack> {
  const { config, log } = opts;
  const stateDir = config.stateDir;
  // What a killed stack left running holds the ports this one needs: stop it first (or refuse, if it still runs).
  await stopLeftovers(stateDir, log);
  await checkStackPorts(opts);
  const logsDir = join(stateDir, 'logs');
  mkdirSync(logsDir, { recursive: true });
  const children: ChildProcess[] = [];
  const started: string[] = [];
  let embedded: EmbeddedDatabase | undefined;
  let temporalServer: ChildProcess | undefined;
  const record: StackRecord = { owner: { pid: process.pid, cmdline: ownCmdline() }, children: [] };
  const remember = (child: StackRecord['children'][number]) => {
    record.children.push(child);
    writeStackRecord(stateDir, record);
  };
  writeStackRecord(stateDir, record);

  // In dependency order: the facade (no new runs), the worker (drains its in-flight activities, which may still
  // call the model and write the audit trail), the model server, then Temporal and PostgreSQL. The terminal's
  // Ctrl-C reaches only this process: the children run in process groups of their own (the model server ignores
  // SIGINT while a parent owns it), so none of them ends before its turn. The embedded PostgreSQL is the exception:
  // embedded-postgres starts it in this process group, where the terminal's Ctrl-C reaches it directly.
  const stop = async () => {
    for (const child of children.reverse()) await stopChild(child);
    if (temporalServer) await stopChild(temporalServer);
    if (embedded) await embedded.stop().catch(() => undefined);
    removeStackRecord(stateDir);
  };
  const checkInterrupted = () => {
    if (opts.signal?.aborted) throw new StackInterrupted();
  };

  try {
    // Temporal
    const temporalAddress = config.TEMPORAL_ADDRESS;
    const [tHost, tPortText] = temporalAddress.split(':');
    const uiUrl = config.TEMPORAL_UI_URL;
    if (reusesTemporal(process.env)) {
      log(`Temporal: reusing ${temporalAddress} (TEMPORAL_ADDRESS)`);
    } else {
      const cli = resolveTemporalCli({ explicitPath: config.TEMPORAL_CLI_PATH, log });
      const uiPort = new URL(uiUrl).port || '8233';
      const dbFile = join(stateDir, 'temporal.sqlite');
      const args = [
        'server', 'start-dev',
        '--db-filename', dbFile,
        '--ip', tHost,
        '--port', tPortText,
        '--ui-port', uiPort,
        '--namespace', config.TEMPORAL_NAMESPACE,
        '--log-level', 'error',
        // WAL with synchronous=NORMAL survives a crash of any process (not of the machine) and cuts the per-write
        // fsync that otherwise dominates stage latency on the dev server.
        '--sqlite-pragma', 'journal_mode=wal',
        '--sqlite-pragma', 'synchronous=normal',
        ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([k, t]) => ['--search-attribute', `${k}=${t}`]),
        // The Web UI asks the facade's codec endpoint to decrypt payloads (the request needs a bearer token).
        ...(facadePortFor(opts) ? ['--ui-codec-endpoint', `http://127.0.0.1:${facadePortFor(opts)}/codec`] : []),
      ];
      const logFile = join(logsDir, 'temporal.log');
      temporalServer = spawnLogged(cli, args, logFile, {});
      if (temporalServer.pid) remember({ what: 'the Temporal dev server', pid: temporalServer.pid, marker: dbFile });
      log(`Temporal: starting the dev server (state in ${dbFile}, Web UI on ${uiUrl})`);
      await waitFor('the Temporal dev server', async () => {
        const client = await connectClient({ address: temporalAddress, namespace: config.TEMPORAL_NAMESPACE }, 1000);
        try {
          await client.workflowService.describeNamespace({ namespace: config.TEMPORAL_NAMESPACE });
          return true;
        } finally {
          await client.connection.close();
        }
      }, 90_000, temporalServer, logFile, opts.signal);
      started.push('temporal');
    }

    checkInterrupted();

    // PostgreSQL
    let databaseUrl = config.DATABASE_URL;
    if (databaseUrl) {
      log('PostgreSQL: using DATABASE_URL');
    } else {
      log('PostgreSQL: DATABASE_URL unset, starting an embedded PostgreSQL');
      embedded = await startEmbeddedDatabaseProcess({ stateDir, port: opts.embeddedPgPort ?? EMBEDDED_PG_PORT, logFile: join(logsDir, 'postgres.log'), log, signal: opts.signal });
      if (embedded.pid) remember({ what: 'the embedded PostgreSQL', pid: embedded.pid, marker: join(stateDir, 'postgres'), signal: 'SIGINT' });
      databaseUrl = embedded.url;
      started.push('postgres');
    }

    checkInterrupted();
    log(config.REDIS_URL ? 'Redis: using REDIS_URL' : 'Redis: REDIS_URL unset, limits are in-process (single facade)');

    // LLM: a configured provider, or the embedded model served on loopback for the worker.
    let llmBaseUrl = config.LLM_BASE_URL;
    if (llmBaseUrl) {
      log(`LLM: using LLM_BASE_URL (model ${config.LLM_MODEL})`);
    } else if (opts.llm === false) {
      log('LLM: no local model server (not needed by these pipelines)');
    } else {
      const modelPath = resolveLocalModel({ explicitPath: config.LLM_LOCAL_MODEL_PATH, log });
      const logFile = join(logsDir, 'llm.log');
      log(`LLM: LLM_BASE_URL unset, starting the local model ${modelPath.split('/').pop()} (log in ${logFile})`);
      // Tied to this process: the server ends with the demo however the demo ends.
      const server = await spawnLocalServer({ port: config.LLM_LOCAL_PORT, logFile, tiedToParent: true, env: { ...process.env, ...opts.env } });
      children.push(server.child);
      llmBaseUrl = server.baseUrl;
      started.push('llm');
    }
    checkInterrupted();

    const jwtSecret = config.JWT_SECRET ?? randomBytes(32).toString('base64url');
    // PAYLOAD_KEYS when set; otherwise the state directory's own key, kept beside temporal.sqlite so a restarted
    // stack still decrypts the runs stored there.
    const devKeys = config.PAYLOAD_KEYS || opts.env?.PAYLOAD_KEYS ? undefined : loadOrCreateDevKeyRing(stateDir);
    if (!config.PAYLOAD_ENCRYPTION) log('Payloads: PAYLOAD_ENCRYPTION=false, new runs are stored in plaintext');
    else if (devKeys) log(`Payloads: encrypted with the development key in ${devKeys.path}${devKeys.created ? ' (generated now)' : ''}`);
    else log('Payloads: encrypted with PAYLOAD_KEYS');
    const facadePort = facadePortFor(opts);
    const childEnv: NodeJS.ProcessEnv = {
      ...process.env,
      ...(devKeys ? { PAYLOAD_KEYS: devKeys.text } : {}),
      ...opts.env,
      DATABASE_URL: databaseUrl,
      TEMPORAL_ADDRESS: temporalAddress,
      JWT_SECRET: jwtSecret,
      // The demo mints its own HS256 tokens; production key settings in the caller's shell would refuse them.
      JWT_ALGORITHMS: 'HS256',
      JWT_PUBLIC_KEY: undefined,
      JWT_JWKS_URL: undefined,
      PORT: String(facadePort),
      HOST: '127.0.0.1',
      LLM_BASE_URL: llmBaseUrl,
      // The children stop by themselves if this process is killed before it can stop them.
      AGENTRY_EXIT_WITH_PARENT: 'true',
    };
    const spawnProcess = (name: string, entry: string) => {
      const logFile = join(logsDir, `${name}.log`);
      const child = spawnLogged(process.execPath, ['--import', 'tsx', join(ROOT, entry)], logFile, { env: childEnv, cwd: ROOT });
      children.push(child);
      return { child, logFile };
    };
    const worker = spawnProcess('worker', 'src/worker.ts');
    const facade = spawnProcess('facade', 'src/server.ts');
    started.push('worker', 'facade');
    const facadeUrl = `http://127.0.0.1:${facadePort}`;
    log(`Worker and facade: starting (logs in ${logsDir})`);
    await waitFor('the facade', async () => (await fetch(`${facadeUrl}/ready`)).ok, 120_000, facade.child, facade.logFile, opts.signal);
    const workerMetrics = `http://${config.WORKER_METRICS_HOST}:${config.WORKER_METRICS_PORT}/health`;
    await waitFor('the worker', async () => (await fetch(workerMetrics)).ok, 120_000, worker.child, worker.logFile, opts.signal);

    return {
      facadeUrl,
      uiUrl,
      temporalAddress,
      databaseUrl,
      redis: config.REDIS_URL ? 'redis' : 'in-process',
      jwtSecret,
      logsDir,
      started,
      llm: { baseUrl: llmBaseUrl ?? '', model: config.LLM_BASE_URL ? config.LLM_MODEL : LOCAL_MODEL_NAME, local: !config.LLM_BASE_URL && opts.llm !== false },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
