import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';

export interface TemporalTarget {
  address: string;
  namespace: string;
}

async function withRetry<T>(what: string, fn: () => Promise<T>, deadlineMs: number): Promise<T> {
  const until = Date.now() + deadlineMs;
  let delay = 250;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() + delay > until) {
        throw new Error(`could not connect to ${what} within ${Math.round(deadlineMs / 1000)} s: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 2000);
    }
  }
}

/** A client connection, retried while the server comes up (processes may start before Temporal does). */
export async function connectClient(target: TemporalTarget, deadlineMs = 60_000): Promise<Client> {
  const connection = await withRetry(`Temporal at ${target.address}`, () => Connection.connect({ address: target.address }), deadlineMs);
  return new Client({ connection, namespace: target.namespace });
}

/** The worker's native connection, retried the same way. */
export function connectWorker(target: TemporalTarget, deadlineMs = 60_000): Promise<NativeConnection> {
  return withRetry(`Temporal at ${target.address}`, () => NativeConnection.connect({ address: target.address }), deadlineMs);
}
