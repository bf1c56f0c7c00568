import type { Pool, PoolClient } from 'pg';

/**
 * Checks a client out of the pool, safe against its connection being cut while it is checked out.
 *
 * node-postgres's pool listens for connection errors on idle clients only; a connection dropped while a client is
 * checked out, between two queries (PostgreSQL shutting down, say), is an 'error' event nobody handles, which ends
 * the process. With this listener it only fails the client's next query, which the caller handles or retries, and
 * the pool discards the client on release.
 */
export async function checkOut(pool: Pool): Promise<PoolClient> {
  const client = await pool.connect();
  const ignore = () => undefined;
  client.on('error', ignore);
  // The pool gives every checkout its own release function; wrapping this one affects this checkout only.
  const release = client.release.bind(client);
  client.release = (err?: Error | boolean) => {
    client.off('error', ignore);
    release(err);
  };
  return client;
}
