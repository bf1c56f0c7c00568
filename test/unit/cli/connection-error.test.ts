import { asDatabaseError, connectionFailure, UnreachableError, unreachableMessage } from '../../../src/cli/connection-error';

/** A socket error as Node raises it for a refused connection. */
function refused(address: string, port: number): Error {
  return Object.assign(new Error(`connect ECONNREFUSED ${address}:${port}`), { code: 'ECONNREFUSED', errno: -111, syscall: 'connect', address, port });
}

test('reads a refused, timed-out or unresolved connection, also inside an AggregateError or as a fetch cause', () => {
  expect(connectionFailure(refused('127.0.0.1', 7233))).toEqual({ code: 'ECONNREFUSED', reason: 'connection refused', host: '127.0.0.1', port: 7233 });
  const notFound = Object.assign(new Error('getaddrinfo ENOTFOUND db.invalid'), { code: 'ENOTFOUND', hostname: 'db.invalid' });
  expect(connectionFailure(notFound)).toEqual({ code: 'ENOTFOUND', reason: 'host name not found', host: 'db.invalid', port: undefined });
  const both = Object.assign(new AggregateError([refused('::1', 5432), refused('127.0.0.1', 5432)], ''), { code: 'ECONNREFUSED' });
  expect(connectionFailure(both)).toMatchObject({ host: '::1', port: 5432 });
  expect(connectionFailure(new TypeError('fetch failed', { cause: refused('127.0.0.1', 3000) }))).toMatchObject({ code: 'ECONNREFUSED', port: 3000 });
  expect(connectionFailure(new Error('relation "x" does not exist'))).toBeUndefined();
  expect(connectionFailure(Object.assign(new Error('no'), { code: 'ENOENT' }))).toBeUndefined();
  expect(connectionFailure(undefined)).toBeUndefined();
});

test('a failed connection to DATABASE_URL is named as PostgreSQL, without the password', () => {
  const err = asDatabaseError(refused('127.0.0.1', 5433), 'postgres://agentry:s3cret@127.0.0.1:5433/agentry');
  expect(err).toBeInstanceOf(UnreachableError);
  expect((err as Error).message).toBe('cannot reach PostgreSQL at 127.0.0.1:5433 (DATABASE_URL): connection refused; is PostgreSQL running there?');
  // The embedded database of the demo: the likely cause is a stopped demo.
  expect((asDatabaseError(refused('127.0.0.1', 54329), 'postgres://agentry:agentry@127.0.0.1:54329/agentry') as Error).message).toBe(
    'cannot reach PostgreSQL at 127.0.0.1:54329 (DATABASE_URL): connection refused; is the demo stack running (npm run demo -- --keep-running)?',
  );
  // A host name is matched by port (the error carries the address it resolved to); the default port is 5432.
  expect((asDatabaseError(refused('127.0.0.1', 5432), 'postgres://u@localhost/db') as Error).message).toMatch(/^cannot reach PostgreSQL at localhost:5432 \(DATABASE_URL\)/);
  const notFound = Object.assign(new Error('getaddrinfo ENOTFOUND db.invalid'), { code: 'ENOTFOUND', hostname: 'db.invalid' });
  expect((asDatabaseError(notFound, 'postgres://u:p@db.invalid:6432/db') as Error).message).toBe(
    'cannot reach PostgreSQL at db.invalid:6432 (DATABASE_URL): host name not found; check the host name in DATABASE_URL',
  );
});

test('a failed connection elsewhere is not blamed on DATABASE_URL', () => {
  const other = refused('127.0.0.1', 7233);
  expect(asDatabaseError(other, 'postgres://u@127.0.0.1:5432/db')).toBe(other);
  expect(asDatabaseError(refused('10.0.0.9', 5432), 'postgres://u@127.0.0.1:5432/db')).not.toBeInstanceOf(UnreachableError);
  const plain = new Error('permission denied for table audit_events');
  expect(asDatabaseError(plain, 'postgres://u@127.0.0.1:5432/db')).toBe(plain);
});

test('the command line names host and port of a connection it cannot attribute', () => {
  expect(unreachableMessage(refused('127.0.0.1', 7233))).toBe('cannot reach 127.0.0.1:7233: connection refused');
  expect(unreachableMessage(refused('::1', 7233))).toBe('cannot reach [::1]:7233: connection refused');
  expect(unreachableMessage(Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT', address: '10.1.2.3', port: 443 }))).toBe(
    'cannot reach 10.1.2.3:443: connection timed out',
  );
  expect(unreachableMessage(new Error('something else'))).toBeUndefined();
});
