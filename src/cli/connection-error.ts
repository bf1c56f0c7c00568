import { isIP } from 'node:net';
import { EMBEDDED_PG_PORT } from './dev-stack';

/** The network errors that mean "could not reach it", as plain words. */
const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ETIMEDOUT: 'connection timed out',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'no route to host',
  ENETUNREACH: 'network unreachable',
};

/** A connection that could not be made: why, and to where as far as the error says. */
export interface ConnectionFailure {
  code: string;
  /** `connection refused`, `host name not found`, ... */
  reason: string;
  /** The address tried, or the name that did not resolve. */
  host?: string;
  port?: number;
}

/**
 * The failed connection behind `err`, if it is one. Node reports a connection tried on several addresses (a name
 * with IPv4 and IPv6 addresses) as an AggregateError of them, and fetch as a TypeError whose cause is the socket's
 * error; both are looked into.
 */
export function connectionFailure(err: unknown, depth = 0): ConnectionFailure | undefined {
  if (typeof err !== 'object' || err === null || depth > 3) return undefined;
  const e = err as { code?: unknown; address?: unknown; hostname?: unknown; port?: unknown; errors?: unknown; cause?: unknown };
  const inner = Array.isArray(e.errors) ? connectionFailure(e.errors[0], depth + 1) : undefined;
  const code = typeof e.code === 'string' ? e.code : inner?.code;
  if (code === undefined || !(code in REASONS)) return e.cause !== undefined ? connectionFailure(e.cause, depth + 1) : undefined;
  return {
    code,
    reason: REASONS[code],
    host: typeof e.address === 'string' ? e.address : typeof e.hostname === 'string' ? e.hostname : inner?.host,
    port: typeof e.port === 'number' ? e.port : inner?.port,
  };
}

const hostPort = (host: string, port: number | undefined) => {
  const shown = isIP(host) === 6 ? `[${host}]` : host;
  return port === undefined ? shown : `${shown}:${port}`;
};

/** A service a command could not connect to, named with the setting that points at it. */
export class UnreachableError extends Error {
  override readonly name = 'UnreachableError';
  constructor(
    readonly service: string,
    readonly setting: string,
    readonly target: string,
    readonly failure: ConnectionFailure,
    hint: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(`cannot reach ${service} at ${target} (${setting}): ${failure.reason}${hint ? `; ${hint}` : ''}`, options);
  }
}

/** Host and port of a postgres:// URL as libpq reads them (port 5432 when the URL has none). */
function postgresTarget(databaseUrl: string): { host: string; port: number } | undefined {
  try {
    const url = new URL(databaseUrl);
    return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port ? Number(url.port) : 5432 };
  } catch {
    return undefined;
  }
}

/**
 * `err` as an `UnreachableError` naming PostgreSQL and DATABASE_URL, when it is a failed connection to the server
 * `databaseUrl` names; otherwise `err` itself. The error gives the address a name resolved to, so a named host
 * (`localhost`) is matched by port.
 */
export function asDatabaseError(err: unknown, databaseUrl: string): unknown {
  const failure = connectionFailure(err);
  const target = postgresTarget(databaseUrl);
  if (!failure || !target) return err;
  const same = failure.port !== undefined ? failure.port === target.port && (failure.host === target.host || isIP(target.host) === 0) : failure.host === target.host;
  if (!same) return err;
  let hint: string;
  if (failure.code === 'ENOTFOUND' || failure.code === 'EAI_AGAIN') hint = 'check the host name in DATABASE_URL';
  else if (failure.code === 'ECONNREFUSED' && target.port === EMBEDDED_PG_PORT) hint = 'is the demo stack running (npm run demo -- --keep-running)?';
  else if (failure.code === 'ECONNREFUSED') hint = 'is PostgreSQL running there?';
  else hint = 'check that the host is up and the port open to this machine';
  // Host and port only: DATABASE_URL may carry a password.
  return new UnreachableError('PostgreSQL', 'DATABASE_URL', hostPort(target.host, target.port), failure, hint, { cause: err });
}

/** Runs a command's database work; a failed connection to DATABASE_URL's server becomes an `UnreachableError`. */
export async function reachingDatabase<T>(databaseUrl: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw asDatabaseError(err, databaseUrl);
  }
}

/**
 * What the command line prints for a failed connection it cannot attribute to a setting: `cannot reach
 * 127.0.0.1:7233: connection refused`. Undefined when `err` is not a failed connection or does not say where to.
 */
export function unreachableMessage(err: unknown): string | undefined {
  if (err instanceof UnreachableError) return err.message;
  const failure = connectionFailure(err);
  if (!failure?.host) return undefined;
  return `cannot reach ${hostPort(failure.host, failure.port)}: ${failure.reason}`;
}
