import type { Socket } from 'node:net';
import {
  clientErrorHandler,
  clientErrorResponse,
  connectionsCheckingIntervalMs,
  DEFAULT_SERVER_TIMEOUTS,
  problemForClientError,
} from '../../../src/facade/client-error';

/** The parts of a socket the handler touches, recording what it did. */
function fakeSocket(state: { writable?: boolean; headersSent?: boolean } = {}) {
  const calls: string[] = [];
  let written = '';
  const socket = {
    writable: state.writable ?? true,
    remoteAddress: '127.0.0.1',
    _httpMessage: state.headersSent === undefined ? null : { headersSent: state.headersSent },
    end(chunk?: string) {
      calls.push('end');
      written += chunk ?? '';
    },
    destroy() {
      calls.push('destroy');
    },
    setTimeout() {
      calls.push('setTimeout');
    },
  };
  return { socket: socket as unknown as Socket, calls, written: () => written };
}

const err = (code?: string) => Object.assign(new Error('parse error'), { code }) as NodeJS.ErrnoException;

test.each([
  ['HPE_INVALID_METHOD', 400, 'malformed_request'],
  ['HPE_INVALID_HEADER_TOKEN', 400, 'malformed_request'],
  [undefined, 400, 'malformed_request'],
  ['HPE_HEADER_OVERFLOW', 431, 'headers_too_large'],
  ['ERR_HTTP_REQUEST_TIMEOUT', 408, 'request_timeout'],
])('maps the parser error %s to %d %s', (code, status, name) => {
  expect(problemForClientError(code)).toMatchObject({ status, code: name });
});

test('writes a complete problem+json response with a matching Content-Length, then closes', () => {
  const fake = fakeSocket();
  clientErrorHandler()(err('HPE_INVALID_METHOD'), fake.socket);
  expect(fake.calls).toEqual(['end', 'setTimeout']);
  const [head, body] = fake.written().split('\r\n\r\n');
  expect(head.split('\r\n')).toEqual([
    'HTTP/1.1 400 Bad Request',
    'Content-Type: application/problem+json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Cache-Control: no-store',
    'X-Content-Type-Options: nosniff',
    'Connection: close',
  ]);
  expect(JSON.parse(body)).toMatchObject({ status: 400, code: 'malformed_request', type: 'urn:agentry:problem:malformed_request' });
  expect(clientErrorResponse(problemForClientError('HPE_HEADER_OVERFLOW'))).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
});

test.each([
  ['the peer reset the connection', err('ECONNRESET'), {}],
  ['the socket is no longer writable', err('HPE_INVALID_METHOD'), { writable: false }],
  ['a response on this connection has begun', err('HPE_INVALID_METHOD'), { headersSent: true }],
])('writes nothing and destroys the socket when %s', (_why, e, state) => {
  const fake = fakeSocket(state);
  clientErrorHandler()(e, fake.socket);
  expect(fake.calls).toEqual(['destroy']);
  expect(fake.written()).toBe('');
});

test('answers when a response exists on the connection but has not sent its headers (slow body)', () => {
  const fake = fakeSocket({ headersSent: false });
  clientErrorHandler()(err('ERR_HTTP_REQUEST_TIMEOUT'), fake.socket);
  expect(fake.written()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
});

test('timeouts are checked often enough to fire near their value', () => {
  expect(connectionsCheckingIntervalMs(DEFAULT_SERVER_TIMEOUTS)).toBe(5_000);
  expect(connectionsCheckingIntervalMs({ headersTimeoutMs: 1000, requestTimeoutMs: 1000, keepAliveTimeoutMs: 1000 })).toBe(250);
});
