import { Client, Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor, type ClientInterceptors } from '@temporalio/client';
import type { DataConverter, PayloadCodec } from '@temporalio/common';
import { NativeConnection } from '@temporalio/worker';

/** The module exporting our failure converter (failure messages and stack traces go through the codec). */
export const FAILURE_CONVERTER_PATH = require.resolve('./failure-converter');

/**
 * The data converter of every worker and client: payloads and failure messages through `codec`. Readers without the
 * codec (the Temporal CLI or Web UI without the codec endpoint) see encrypted payloads and "Encoded failure".
 */
export function dataConverterFor(codec: PayloadCodec): DataConverter {
  return { payloadCodecs: [codec], failureConverterPath: FAILURE_CONVERTER_PATH };
}

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

export interface ClientTarget extends TemporalTarget {
  /**
   * How payloads are converted and encoded; pass `{ payloadCodecs: [codec] }` so the client encrypts what it sends
   * and decrypts what it reads, like the workers do. @default the SDK's plain JSON conversion
   */
  dataConverter?: DataConverter;
  /** Client interceptors, such as the tracing ones that carry the trace into each workflow it starts. @default none */
  interceptors?: ClientInterceptors;
  /** Attempts of a call that fails with a retryable gRPC status, backoff included. @default the SDK's (10) */
  rpcAttempts?: number;
}

/** A client connection, retried while the server comes up (processes may start before Temporal does). */
export async function connectClient(target: ClientTarget, deadlineMs = 60_000): Promise<Client> {
  const retries = target.rpcAttempts === undefined ? {} : { interceptors: [makeGrpcRetryInterceptor(defaultGrpcRetryOptions({ maxAttempts: target.rpcAttempts }))] };
  const connection = await withRetry(`Temporal at ${target.address}`, () => Connection.connect({ address: target.address, ...retries }), deadlineMs);
  return new Client({ connection, namespace: target.namespace, dataConverter: target.dataConverter, interceptors: target.interceptors });
}

/** The worker's native connection, retried the same way. */
export function connectWorker(target: TemporalTarget, deadlineMs = 60_000): Promise<NativeConnection> {
  return withRetry(`Temporal at ${target.address}`, () => NativeConnection.connect({ address: target.address }), deadlineMs);
}
