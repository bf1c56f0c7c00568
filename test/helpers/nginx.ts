import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { resolveNginx } from '../../src/cli/test-tools';
import { freePort } from './processes';
import { waitUntil } from './wait';

const ROOT = resolve(__dirname, '..', '..');

/** The nginx binary (PATH, else the Debian package `npm run setup` extracted), or why there is none. */
export function findNginx(): { path: string } | { reason: string } {
  try {
    return { path: resolveNginx() };
  } catch (err) {
    return { reason: (err as Error).message };
  }
}

export interface Nginx {
  /** Base URL of the load balancer, e.g. http://127.0.0.1:41234. */
  url: string;
  /** The configuration it runs: deploy/nginx/nginx.conf with the compose names and paths mapped. */
  config: string;
  output(): string;
  stop(): Promise<void>;
}

/**
 * Runs nginx in the foreground with the production configuration (deploy/nginx/nginx.conf), changed only where
 * the compose network does not exist here: the facades are the given loopback ports instead of facade-1 and
 * facade-2, it listens on a free loopback port instead of 8080, and its temporary files live in a folder of its own.
 */
export async function startNginx(binary: string, facadePorts: number[]): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), 'agentry-nginx-'));
  // nginx's workers drop to an unprivileged user when started as root; they must reach the temporary folders.
  chmodSync(dir, 0o755);
  const port = await freePort();
  const original = readFileSync(join(ROOT, 'deploy/nginx/nginx.conf'), 'utf8');
  const upstream = /^(\s*)server facade-\d+:3000( [^;]*)?;\n/gm;
  const first = upstream.exec(original);
  if (!first) throw new Error('deploy/nginx/nginx.conf has no `server facade-N:3000` upstream lines');
  const servers = facadePorts.map((p) => `${first[1]}server 127.0.0.1:${p}${first[2] ?? ''};\n`).join('');
  let replaced = false;
  const config = original
    .replace(upstream, () => (replaced ? '' : ((replaced = true), servers)))
    .replace(/^(\s*)listen 8080;/m, `$1listen 127.0.0.1:${port};`)
    .replaceAll('/tmp/', `${dir}/`)
    // Node's pipes to a child are sockets, which cannot be reopened through /dev/std*: nginx's own stderr, and a
    // file for the access log.
    .replace(/^(\s*error_log) \/dev\/stderr/m, '$1 stderr')
    .replace(/^(\s*access_log) \/dev\/stdout/m, `$1 ${dir}/access.log`);
  if (!config.includes(`listen 127.0.0.1:${port};`)) throw new Error('deploy/nginx/nginx.conf no longer listens on 8080');
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, config);

  let out = '';
  const child = spawn(binary, ['-p', dir, '-c', file, '-e', 'stderr', '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(
    'nginx to answer /nginx-health',
    async () => {
      if (child.exitCode !== null) throw Object.assign(new Error(`nginx exited with ${child.exitCode}:\n${out}`), { fatal: true });
      const res = await fetch(`${url}/nginx-health`).catch(() => undefined);
      return res?.ok ? true : undefined;
    },
    20_000,
    100,
  );
  return {
    url,
    config,
    output: () => out,
    stop: () =>
      new Promise((resolveStop) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolveStop();
        child.once('exit', () => resolveStop());
        // SIGQUIT: graceful shutdown, the workers finish their open requests.
        child.kill('SIGQUIT');
        setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
      }),
  };
}
