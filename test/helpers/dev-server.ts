import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../../src/contracts';
import { resolveTemporalCli } from '../../src/temporal/temporal-cli';
import { freePort } from './processes';
import { waitUntil } from './wait';

/**
 * A Temporal dev server the test runs as a plain child process, so it can take it down and bring it back on the
 * same port with the same SQLite file (a restart that keeps every run), unlike `startTemporal`, whose server lives
 * and dies with its test environment.
 */
export interface DevServer {
  /** `127.0.0.1:{port}`, for TEMPORAL_ADDRESS and `Connection.connect`. */
  address: string;
  port: number;
  /** The SQLite file that holds the server's state across restarts. */
  dbFile: string;
  /** Starts the server (again) and waits until the namespace answers with the project's search attributes. */
  start(): Promise<void>;
  /** Stops the server: SIGTERM for an orderly stop, SIGKILL for a crash. Resolves once the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** What the server printed since it was last started, to explain a failed start. */
  output(): string;
  /** Stops the server and deletes its files. */
  destroy(): Promise<void>;
}

export interface DevServerOptions {
  /** Namespace to serve and probe. @default default */
  namespace?: string;
  /** How long one start may take before it counts as failed. @default 60000 @format ms */
  startTimeoutMs?: number;
}

function exited(child: ChildProcess | undefined): boolean {
  return !child || child.exitCode !== null || child.signalCode !== null;
}

/** Creates (does not start) a dev server on a free port, with its SQLite file in a fresh temp folder. */
export async function createDevServer(opts: DevServerOptions = {}): Promise<DevServer> {
  const cli = resolveTemporalCli({ install: false, explicitPath: process.env.TEMPORAL_CLI_PATH });
  const namespace = opts.namespace ?? 'default';
  const dir = mkdtempSync(join(tmpdir(), 'agentry-devserver-'));
  const dbFile = join(dir, 'temporal.sqlite');
  const [port, uiPort] = await Promise.all([freePort(), freePort()]);
  const address = `127.0.0.1:${port}`;
  const args = [
    'server', 'start-dev',
    '--headless',
    '--ip', '127.0.0.1',
    '--port', String(port),
    '--ui-port', String(uiPort),
    '--db-filename', dbFile,
    '--namespace', namespace,
    '--log-level', 'error',
    // As the demo runs it: WAL survives the crash of the server process, so a killed server keeps its runs.
    '--sqlite-pragma', 'journal_mode=wal',
    '--sqlite-pragma', 'synchronous=normal',
    ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]),
  ];
  let child: ChildProcess | undefined;
  let out = '';

  const answers = async (): Promise<true | undefined> => {
    if (exited(child)) throw Object.assign(new Error(`the dev server exited (${child?.exitCode ?? child?.signalCode}):\n${out}`), { fatal: true });
    const connection = await Connection.connect({ address, connectTimeout: 1000 });
    try {
      await connection.workflowService.describeNamespace({ namespace });
      const attrs = await connection.operatorService.listSearchAttributes({ namespace });
      const present = Object.keys(attrs.customAttributes ?? {});
      return Object.keys(SEARCH_ATTRIBUTES).every((name) => present.includes(name)) ? true : undefined;
    } finally {
      await connection.close();
    }
  };

  const stop = (signal: NodeJS.Signals = 'SIGTERM') =>
    new Promise<void>((resolveStop) => {
      const running = child;
      if (!running || exited(running)) return resolveStop();
      const kill = setTimeout(() => running.kill('SIGKILL'), 20_000);
      running.once('exit', () => {
        clearTimeout(kill);
        resolveStop();
      });
      running.kill(signal);
    });

  return {
    address,
    port,
    dbFile,
    async start() {
      if (!exited(child)) throw new Error('the dev server is already running');
      out = '';
      child = spawn(cli, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
      await waitUntil(`the dev server on ${address}`, answers, opts.startTimeoutMs ?? 60_000, 250);
    },
    stop,
    output: () => out,
    async destroy() {
      await stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
