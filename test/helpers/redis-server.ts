import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './processes';
import { waitUntil } from './wait';

/** A `redis-server` of the test's own, which it can stop and start again; the shared Redis is never touched. */
export interface RedisServer {
  url: string;
  port: number;
  /** Starts the server (again) and waits until it answers PING. */
  start(): Promise<void>;
  /** Stops the server (SIGKILL by default: an outage, not a shutdown) and waits until it has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Stops the server and deletes its files. */
  destroy(): Promise<void>;
}

export interface RedisServerOptions {
  /**
   * Keep the data across a restart: an append-only file, written through on every command, so what was stored
   * before a kill is there again afterwards (the test can tell a lost release from a forgotten key). @default false
   */
  persistent?: boolean;
}

/** True when a server on `port` answers PING with PONG. */
export function redisAnswers(port: number): Promise<boolean> {
  return new Promise((resolvePing) => {
    const socket = connect(port, '127.0.0.1');
    const done = (ok: boolean) => {
      socket.destroy();
      resolvePing(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

/** Creates (does not start) a server on a free loopback port, without snapshots. */
export async function createRedisServer(opts: RedisServerOptions = {}): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'agentry-redis-'));
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--save', '',
    ...(opts.persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
  ];
  let child: ChildProcess | undefined;
  const exited = () => !child || child.exitCode !== null || child.signalCode !== null;
  const stop = (signal: NodeJS.Signals = 'SIGKILL') =>
    new Promise<void>((resolveStop) => {
      const running = child;
      if (!running || exited()) return resolveStop();
      running.once('exit', () => resolveStop());
      running.kill(signal);
    });
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async start() {
      if (!exited()) throw new Error('the redis-server is already running');
      child = spawn('redis-server', args, { stdio: 'ignore' });
      await waitUntil(`redis-server on port ${port} to answer`, async () => {
        if (exited()) throw Object.assign(new Error(`redis-server exited (${child?.exitCode ?? child?.signalCode})`), { fatal: true });
        return (await redisAnswers(port)) ? true : undefined;
      }, 15_000);
    },
    stop,
    async destroy() {
      await stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
