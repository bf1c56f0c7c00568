import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../telemetry';

/** Time limits of the facade's HTTP server. */
export interface ServerTimeouts {
  /** Longest time a client may take to send the request line and headers. @format ms */
  headersTimeoutMs: number;
  /**
   * Longest time a client may take to send the whole request, body included. It covers receiving only: a response
   * that streams for hours (`GET /v1/runs/:pipeline/:id/events`) is not cut by it. @format ms
   */
  requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open; above a proxy's own idle timeout (nginx: 60 s). @format ms */
  keepAliveTimeoutMs: number;
}

/** @default headers 20 s, whole request 60 s, idle keep-alive 65 s */
export const DEFAULT_SERVER_TIMEOUTS: ServerTimeouts = { headersTimeoutMs: 20_000, requestTimeoutMs: 60_000, keepAliveTimeoutMs: 65_000 };

/**
 * How often Node checks requests against the header and request timeouts. Node's own default (30 s) would let a
 * 20 s header timeout fire only after up to 50 s. @format ms
 */
export function connectionsCheckingIntervalMs(t: ServerTimeouts): number {
  return Math.max(250, Math.min(5_000, Math.floor(Math.min(t.headersTimeoutMs, t.requestTimeoutMs) / 4)));
}

export interface ClientErrorProblem {
  status: number;
  code: 'malformed_request' | 'headers_too_large' | 'request_timeout' | 'payload_too_large' | 'method_not_allowed';
  title: string;
  detail: string;
}

/** The problem a request Node's HTTP parser refused gets, by the parser's error code. */
export function problemForClientError(code: string | undefined): ClientErrorProblem {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, code: 'headers_too_large', title: 'Request headers too large', detail: 'the request line and headers exceed the size the server accepts' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, code: 'request_timeout', title: 'Request timeout', detail: 'the request was not received in time' };
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return { status: 413, code: 'payload_too_large', title: 'Payload too large', detail: 'the chunk extensions exceed the size the server accepts' };
    default:
      return { status: 400, code: 'malformed_request', title: 'Malformed request', detail: 'the request is not valid HTTP/1.1 (request line, headers or framing)' };
  }
}

/** A complete HTTP/1.1 response carrying the problem as `application/problem+json`, closing the connection. */
export function clientErrorResponse(problem: ClientErrorProblem): string {
  const body = JSON.stringify({ type: `urn:agentry:problem:${problem.code}`, title: problem.title, status: problem.status, detail: problem.detail, code: problem.code });
  return [
    `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status] ?? 'Error'}`,
    'Content-Type: application/problem+json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Cache-Control: no-store',
    'X-Content-Type-Options: nosniff',
    'Connection: close',
    '',
    body,
  ].join('\r\n');
}

/** Time the peer gets to read the answer before the socket is destroyed. @format ms */
const CLOSE_GRACE_MS = 2_000;

/**
 * The `clientError` listener: a request Node's parser refused (malformed, headers too large, too slow) is answered
 * with a problem+json body instead of Node's bare text, then the connection is closed. Nothing is written to a
 * socket the peer already reset, that is no longer writable, or that has begun another response: that would
 * corrupt what the peer reads.
 */
export function clientErrorHandler(logger?: Logger): (err: NodeJS.ErrnoException, socket: Socket) => void {
  return (err, socket) => {
    // The response in flight on this connection, if any (a keep-alive connection that sent a second, bad request).
    const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    const problem = problemForClientError(err.code);
    logger?.debug({ code: err.code, status: problem.status, remoteAddress: socket.remoteAddress }, 'request refused by the HTTP parser');
    socket.end(clientErrorResponse(problem));
    // A peer that neither reads nor closes does not keep the socket.
    socket.setTimeout(CLOSE_GRACE_MS, () => socket.destroy());
  };
}

/**
 * The `connect` listener: CONNECT (proxy tunnelling) is not something this API offers. Node hands such requests to
 * this event instead of the app, and without a listener it drops the connection without an answer.
 */
export function connectMethodHandler(): (req: unknown, socket: Socket) => void {
  return (_req, socket) => {
    if (!socket.writable) return socket.destroy();
    socket.end(
      clientErrorResponse({ status: 405, code: 'method_not_allowed', title: 'Method not allowed', detail: 'CONNECT is not supported: this is an API, not a proxy' }),
    );
    setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
  };
}
