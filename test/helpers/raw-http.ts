import { connect, type Socket } from 'node:net';

export interface RawReply {
  /** Everything the server sent, as text. */
  text: string;
  /** Status code of the first response line, when there is one. */
  status?: number;
  headers: Record<string, string>;
  body: string;
  /** The server closed the connection (end or close) before the deadline. */
  closed: boolean;
  /** Time from the first byte written to the connection closing (or the deadline). @format ms */
  elapsedMs: number;
}

/** Splits a raw HTTP/1.1 response into status, lower-cased headers and body. */
export function parseRawReply(text: string): Pick<RawReply, 'status' | 'headers' | 'body'> {
  const split = text.indexOf('\r\n\r\n');
  const head = split >= 0 ? text.slice(0, split) : text;
  const [statusLine, ...lines] = head.split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1];
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: status ? Number(status) : undefined, headers, body: split >= 0 ? text.slice(split + 4) : '' };
}

/** Opens a TCP connection to a loopback port. */
export function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/**
 * Writes `chunks` (bytes exactly as given, nothing added) to a fresh connection and collects what the server
 * answers until it closes the connection or `deadlineMs` passes. For requests no HTTP client would send.
 */
export async function rawExchange(port: number, chunks: (string | Buffer)[], deadlineMs = 15_000): Promise<RawReply> {
  const socket = await openSocket(port);
  const received: Buffer[] = [];
  const started = performance.now();
  const closed = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), deadlineMs);
    const done = () => {
      clearTimeout(timer);
      resolve(true);
    };
    socket.on('data', (d: Buffer) => received.push(d));
    socket.once('end', done);
    socket.once('close', done);
    // A reset after the answer still counts as closed; what arrived is kept.
    socket.on('error', () => undefined);
    for (const chunk of chunks) socket.write(chunk);
  });
  const elapsedMs = performance.now() - started;
  socket.destroy();
  const text = Buffer.concat(received).toString('utf8');
  return { text, ...parseRawReply(text), closed, elapsedMs };
}
