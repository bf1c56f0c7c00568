import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { TEST_PAYLOAD_KEYS } from './codec';
import { waitUntil } from './wait';

const ROOT = resolve(__dirname, '..', '..');

/** A free TCP port on loopback (bound and released; good enough for one test process). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolvePort(port));
    });
  });
}

export interface Service {
  child: ChildProcess;
  /** Everything the process printed, for assertions and for diagnosing a failed start. */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Runs one of the project's entry files (`src/server.ts`, `src/worker.ts`) as a real process. PAYLOAD_KEYS defaults
 * to the test key ring, so the processes and the test's own `env.client` read each other's payloads. The worker's
 * Temporal SDK metrics exporter is off (`WORKER_SDK_METRICS_PORT`) unless `env` names a port.
 */
export function spawnService(entry: string, env: Record<string, string>): Service {
  let out = '';
  const child = spawn(process.execPath, ['--import', 'tsx', resolve(ROOT, entry)], {
    cwd: ROOT,
    // The SDK metrics exporter is off unless a test asks for it: its fixed default port would clash between workers.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', LOG_LEVEL: 'warn', PAYLOAD_KEYS: TEST_PAYLOAD_KEYS, WORKER_SDK_METRICS_PORT: 'off', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return {
    child,
    output: () => out,
    stop(signal = 'SIGTERM') {
      return new Promise((resolveStop) => {
        // Already gone (also when a signal ended it: no second 'exit' will come).
        if (child.exitCode !== null || child.signalCode !== null) return resolveStop(child.exitCode);
        const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
        child.once('exit', (code) => {
          clearTimeout(kill);
          resolveStop(code);
        });
        child.kill(signal);
      });
    },
  };
}

/** Waits until `url` answers 200, failing early (with the process output) if the process exits. */
export async function waitForHttp(url: string, service: Service, timeoutMs = 90_000): Promise<void> {
  await waitUntil(
    `${url} to answer 200`,
    async () => {
      if (service.child.exitCode !== null) {
        throw Object.assign(new Error(`process exited with ${service.child.exitCode}:\n${service.output()}`), { fatal: true });
      }
      const res = await fetch(url).catch(() => undefined);
      return res?.ok ? true : undefined;
    },
    timeoutMs,
    250,
  ).catch((err) => {
    throw new Error(`${(err as Error).message}\n--- process output ---\n${service.output()}`);
  });
}

/**
 * Waits for the process to exit on its own (after a signal the test sent, or bad configuration) and answers its exit
 * code (null when a signal ended it) and output; past the deadline it is killed and the wait fails.
 */
export async function exitOf(service: Service, timeoutMs = 60_000): Promise<{ code: number | null; output: string }> {
  const exited = () => service.child.exitCode !== null || service.child.signalCode !== null;
  await waitUntil('the process to exit', async () => (exited() ? true : undefined), timeoutMs, 50).catch(async (err: Error) => {
    await service.stop('SIGKILL');
    throw new Error(`${err.message}\n--- process output ---\n${service.output()}`);
  });
  return { code: service.child.exitCode, output: service.output() };
}

/**
 * The environment of an `agentry` command under test: its database, and a state folder and backup folder of its
 * own (runCli adds PATH and HOME).
 */
export function cliEnv(databaseUrl: string, label: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    AGENTRY_STATE_DIR: mkdtempSync(join(tmpdir(), `agentry-${label}-state-`)),
    BACKUP_DIR: mkdtempSync(join(tmpdir(), `agentry-${label}-backups-`)),
    ...extra,
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the `agentry` command line (`src/cli.ts`) to its end with a minimal environment: PATH, HOME and `env`
 * (a state folder of the test's own, say), so the developer's configuration never leaks in.
 */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', resolve(ROOT, 'src/cli.ts'), ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', fail);
    child.once('exit', (code) => done({ code, stdout, stderr }));
  });
}
