import { randomBytes } from 'node:crypto';
import { mintToken, type Role } from '../../src/facade/auth';
import { openSocket, rawExchange } from '../helpers/raw-http';
import { startStack, type Stack } from '../helpers/stack';
import { waitUntil } from '../helpers/wait';

/**
 * Requests Node's HTTP parser refuses never reach Express; the real facade must still answer them as
 * problem+json and close the connection. Its header and request timeouts are short here (1 s), so the test can
 * also show they bound receiving a request only: an event stream lives on well past them.
 */
const secret = randomBytes(32).toString('hex');
const tenant = `raw-${randomBytes(3).toString('hex')}`;
const SHORT_TIMEOUT_MS = 1000;
const HELD = `
name: held
version: 1
description: redacts, then waits for an approval
input: { type: object, required: [text], properties: { text: { type: string } } }
limits: { runTimeout: 10m }
stages:
  - name: redact
    agent: pii-redact
    with: { text: "\${input.text}" }
  - name: hold
    approval:
      roles: [approver]
      timeout: 5m
`;

let stack: Stack;
let port: number;
let base: string;

const token = (sub: string, roles: Role[]) => mintToken({ secret, issuer: 'agentry', audience: 'agentry-api', subject: sub, tenant, roles });

beforeAll(async () => {
  stack = await startStack({
    label: 'raw',
    secret,
    redis: false,
    pipelines: { 'held.yaml': HELD },
    facadeEnv: {
      HTTP_HEADERS_TIMEOUT_MS: String(SHORT_TIMEOUT_MS),
      HTTP_REQUEST_TIMEOUT_MS: String(SHORT_TIMEOUT_MS),
      HTTP_KEEP_ALIVE_TIMEOUT_MS: String(SHORT_TIMEOUT_MS),
    },
  });
  ({ base } = stack);
  ({ port } = stack.facades[0]);
});

afterAll(async () => {
  await stack?.stop();
});

function expectProblem(reply: Awaited<ReturnType<typeof rawExchange>>, status: number, code: string) {
  expect(reply.status).toBe(status);
  expect(reply.headers['content-type']).toBe('application/problem+json');
  expect(reply.headers.connection).toBe('close');
  expect(Number(reply.headers['content-length'])).toBe(Buffer.byteLength(reply.body));
  expect(JSON.parse(reply.body)).toEqual({ type: `urn:agentry:problem:${code}`, title: expect.any(String), status, detail: expect.any(String), code });
  expect(reply.closed).toBe(true);
}

test('a malformed request line is answered 400 malformed_request as problem+json, and the connection closed', async () => {
  expectProblem(await rawExchange(port, ['GARBAGE\r\n\r\n']), 400, 'malformed_request');
  expectProblem(await rawExchange(port, ['GET /health HTTP/9.9\r\nHost: x\r\n\r\n']), 400, 'malformed_request');
  expectProblem(await rawExchange(port, ['GET /he alth HTTP/1.1\r\nHost: x\r\n\r\n']), 400, 'malformed_request');
});

test('bad headers and bad framing are answered 400 malformed_request', async () => {
  // A space inside a header name; a header line without a colon; both Content-Length and chunked (smuggling).
  expectProblem(await rawExchange(port, ['GET /health HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n']), 400, 'malformed_request');
  expectProblem(await rawExchange(port, ['GET /health HTTP/1.1\r\nHost: x\r\nno-colon-here\r\n\r\n']), 400, 'malformed_request');
  expectProblem(
    await rawExchange(port, ['POST /v1/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n']),
    400,
    'malformed_request',
  );
});

test('CONNECT and an HTTP/1.1 request without Host are answered as problems too', async () => {
  expectProblem(await rawExchange(port, ['CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n']), 405, 'method_not_allowed');
  const noHost = await rawExchange(port, ['GET /health HTTP/1.1\r\nConnection: close\r\n\r\n']);
  expect(noHost.status).toBe(400);
  expect(noHost.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(JSON.parse(noHost.body)).toMatchObject({ status: 400, code: 'missing_host' });
  // HTTP/1.0 had no Host header: still served.
  expect((await rawExchange(port, ['GET /health HTTP/1.0\r\n\r\n'])).status).toBe(200);
});

test('headers over the size limit are answered 431 headers_too_large', async () => {
  const big = `GET /health HTTP/1.1\r\nHost: x\r\nX-Filler: ${'a'.repeat(20_000)}\r\n\r\n`;
  expectProblem(await rawExchange(port, [big]), 431, 'headers_too_large');
});

test('headers or a body sent too slowly are answered 408 request_timeout', async () => {
  const slowHeaders = await rawExchange(port, ['GET /health HTTP/1.1\r\nHost: x\r\n']);
  expectProblem(slowHeaders, 408, 'request_timeout');
  // Generous: the timeout is 1 s and is checked every 250 ms.
  expect(slowHeaders.elapsedMs).toBeLessThan(10_000);

  const tk = await token('slow-body', ['operator']);
  const slowBody = await rawExchange(port, [
    `POST /v1/pipelines/held/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tk}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"input":`,
  ]);
  expectProblem(slowBody, 408, 'request_timeout');
});

test('well-formed requests still work, and keep-alive connections are reused', async () => {
  const socket = await openSocket(port);
  const replies: string[] = [];
  socket.on('data', (d: Buffer) => replies.push(d.toString()));
  socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitUntil('the first answer', async () => (replies.join('').includes('\r\n\r\n') ? true : undefined), 10_000, 20);
  socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitUntil('the second answer on the same connection', async () => (replies.join('').match(/HTTP\/1\.1 200/g)?.length === 2 ? true : undefined), 10_000, 20);
  socket.destroy();
});

test('an event stream stays open well past the request timeout and delivers the end of the run', async () => {
  const operator = await token('starter', ['operator', 'viewer']);
  const started = await fetch(`${base}/v1/pipelines/held/runs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/json' },
    body: JSON.stringify({ input: { text: 'hold this for me' } }),
  });
  expect(started.status).toBe(202);
  const { runId } = (await started.json()) as { runId: string };

  const socket = await openSocket(port);
  let stream = '';
  let closed = false;
  socket.on('data', (d: Buffer) => (stream += d.toString()));
  socket.once('close', () => (closed = true));
  socket.write(`GET /v1/runs/${runId}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${operator}\r\nAccept: text/event-stream\r\n\r\n`);
  await waitUntil('the run to wait for its approval', async () => (/"stage":"hold"[^\n]*"awaiting-approval"|"awaiting-approval"[^\n]*"stage":"hold"/.test(stream) ? true : undefined), 60_000, 100);
  expect(stream).toMatch(/^HTTP\/1\.1 200/);

  // Four request timeouts (and many timeout checks) later, the stream is still open.
  await new Promise((r) => setTimeout(r, 4 * SHORT_TIMEOUT_MS));
  expect(closed).toBe(false);
  expect(stream).not.toContain('request_timeout');

  const approver = await token('reviewer', ['approver']);
  const decided = await fetch(`${base}/v1/runs/${runId}/approvals`, {
    method: 'POST',
    headers: { authorization: `Bearer ${approver}`, 'content-type': 'application/json' },
    body: JSON.stringify({ stage: 'hold', decision: 'approve' }),
  });
  expect(decided.status).toBe(200);
  await waitUntil('the end event on the same stream', async () => (stream.includes('event: end') ? true : undefined), 60_000, 100);
  expect(stream).toMatch(/event: end\ndata: \{[^\n]*"status":"completed"/);
  socket.destroy();
});
