/**
 * The load balancer's own error answers (deploy/nginx/nginx.conf) are problem+json like the API's, and the
 * facades' error answers pass through it untouched. Runs the production configuration with Debian's nginx; the
 * "facades" here are a plain HTTP server on loopback and a port nobody listens on.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { findNginx, startNginx, type Nginx } from '../helpers/nginx';
import { freePort } from '../helpers/processes';
import { rawExchange } from '../helpers/raw-http';

const nginxBinary = findNginx();
if ('reason' in nginxBinary) process.stderr.write(`nginx error-page tests skipped: ${nginxBinary.reason}\n`);
const describeNginx = 'path' in nginxBinary ? describe : describe.skip;

/** A stand-in facade that answers every request with a problem of its own. */
async function problemServer(): Promise<Server> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '7' });
      res.end(JSON.stringify({ type: 'urn:agentry:problem:temporal_unavailable', status: 503, code: 'temporal_unavailable' }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return server;
}

const portOf = (url: string) => Number(new URL(url).port);

describeNginx('nginx error answers', () => {
  let down: Nginx;
  let up: Nginx;
  let facade: Server;

  beforeAll(async () => {
    facade = await problemServer();
    const binary = (nginxBinary as { path: string }).path;
    [down, up] = await Promise.all([startNginx(binary, [await freePort()]), startNginx(binary, [(facade.address() as AddressInfo).port])]);
  });
  afterAll(async () => {
    await Promise.all([down?.stop(), up?.stop()]);
    await new Promise((r) => facade?.close(r));
  });

  test('no facade to take the request: 502 problem+json with Retry-After, not an HTML page', async () => {
    const res = await fetch(`${down.url}/v1/pipelines`);
    expect(res.status).toBe(502);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.headers.get('retry-after')).toBe('5');
    expect(await res.json()).toMatchObject({ status: 502, code: 'facade_unavailable' });
  });

  test('a body over the load balancer limit: 413 problem+json naming the limit', async () => {
    // nginx answers from the declared length, before any of the body: nothing is sent, so nothing is cut off mid-write.
    const reply = await rawExchange(portOf(up.url), [
      `POST /v1/pipelines/support-triage/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n`,
    ]);
    expect(reply.status).toBe(413);
    expect(reply.headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(reply.body)).toMatchObject({ code: 'payload_too_large', detail: expect.stringContaining('1 MiB') });
  });

  test('a request nginx cannot read, or with headers or a request line too long for it: 400 or 414 problem+json', async () => {
    const port = portOf(up.url);
    const unreadable = await rawExchange(port, ['GET /v1/pipelines HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n']);
    expect(unreadable.status).toBe(400);
    expect(unreadable.headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(unreadable.body)).toMatchObject({ status: 400, code: 'bad_request' });
    const bigHeader = await rawExchange(port, [`GET /v1/pipelines HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`]);
    expect(bigHeader.status).toBe(400);
    expect(JSON.parse(bigHeader.body)).toMatchObject({ code: 'bad_request' });
    const longLine = await rawExchange(port, [`GET /v1/${'a'.repeat(64 * 1024)} HTTP/1.1\r\nHost: x\r\n\r\n`]);
    expect(longLine.status).toBe(414);
    expect(longLine.headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(longLine.body)).toMatchObject({ code: 'uri_too_long' });
  });

  test("a facade's own error answer passes through unchanged", async () => {
    const res = await fetch(`${up.url}/v1/pipelines`);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('7');
    expect(await res.json()).toEqual({ type: 'urn:agentry:problem:temporal_unavailable', status: 503, code: 'temporal_unavailable' });
  });
});
