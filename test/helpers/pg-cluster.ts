import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './processes';

/** A PostgreSQL cluster of the test's own, which it can stop and start (an outage) without touching anyone else's. */
export interface PgCluster {
  /** `postgres://postgres@127.0.0.1:{port}/postgres`, trust auth. */
  url: string;
  port: number;
  start(): void;
  /** Fast shutdown: open connections are cut, as in a real outage. */
  stop(): void;
  /** Stops the cluster and deletes its files. */
  destroy(): void;
}

/** The newest installed server's bin folder (`/usr/lib/postgresql/<version>/bin`). */
function serverBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))) : [];
  if (versions.length === 0) throw new Error(`no PostgreSQL server binaries under ${root}`);
  return join(root, versions.sort((a, b) => Number(b) - Number(a))[0], 'bin');
}

/**
 * Creates (initdb) a throwaway cluster in a temp folder on a free port. PostgreSQL refuses to run as root, so as
 * root the server runs as the `postgres` OS user (runuser); otherwise as the current user.
 */
export async function createPgCluster(): Promise<PgCluster> {
  const bin = serverBinDir();
  const dir = mkdtempSync(join(tmpdir(), 'agentry-pg-'));
  const data = join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(dir, uid, gid);
  }
  const spawnTool = (tool: string, args: string[]) =>
    asRoot
      ? spawnSync('runuser', ['-u', 'postgres', '--', join(bin, tool), ...args], { encoding: 'utf8', timeout: 60_000 })
      : spawnSync(join(bin, tool), args, { encoding: 'utf8', timeout: 60_000 });
  const run = (tool: string, args: string[]) => {
    const res = spawnTool(tool, args);
    if (res.status !== 0) {
      const log = existsSync(join(dir, 'server.log')) ? readFileSync(join(dir, 'server.log'), 'utf8') : '';
      throw new Error(`${tool} ${args.join(' ')} failed (${res.status}): ${res.stderr}${res.stdout}\n${log}`);
    }
  };
  run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-locale', '--no-sync']);
  const port = await freePort();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    start: () => run('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-o', options, '-w', '-t', '60', 'start']),
    stop: () => run('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop']),
    destroy() {
      if (existsSync(join(data, 'postmaster.pid'))) spawnTool('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
