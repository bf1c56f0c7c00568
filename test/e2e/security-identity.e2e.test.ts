import { randomBytes } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { base64url, exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres';
import * as http from '../helpers/http';
import type { Reply } from '../helpers/http';
import { exitOf, freePort, spawnService, waitForHttp, type Service } from '../helpers/processes';
import { startTemporal } from '../helpers/temporal';
import { waitUntil } from '../helpers/wait';

/**
 * Identity and request hygiene against the real facade process: one facade per way of verifying tokens (RS256 PEM
 * text, ES256 PEM file, JWKS URL, HS256 secret), facades that must refuse to start, and one worker for the
 * Unicode round trip.
 */

const tenant = `sec-${randomBytes(3).toString('hex')}`;
const ISS = 'agentry';
const AUD = 'agentry-api';
const TOLERANCE_S = 10;
const hsSecret = randomBytes(32).toString('hex');

type KeyPair = { publicKey: CryptoKey; privateKey: CryptoKey };
let env: TestWorkflowEnvironment;
let db: TestDatabase;
let worker: Service;
let rsaKeys: KeyPair;
let ecKeys: KeyPair;
let rsaPem: string;
const facades: Record<'rsa' | 'ec' | 'jwks' | 'hs', { service: Service; base: string }> = {} as never;
let common: Record<string, string>;

// The JWKS endpoint the `jwks` facade reads. `mode` simulates an identity provider that is down or hangs.
const jwks = { keys: [] as JWK[], mode: 'ok' as 'ok' | 'error' | 'hang', fetches: 0, server: undefined as Server | undefined, url: '' };
const jwksKeys: Record<string, KeyPair & { alg: string }> = {};
const hanging: ServerResponse[] = [];
const sockets = new Set<Socket>();

/** Every token sent to a facade, so the logs can be searched for them. */
const sentTokens: string[] = [];

interface Claims {
  iss?: string;
  aud?: string;
  exp?: number;
  nbf?: number;
  sub?: string;
}

async function sign(key: CryptoKey | Uint8Array, alg: string, claims: Claims = {}, header: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const all = { iss: ISS, aud: AUD, exp: now + 600, sub: `user-${alg.toLowerCase()}`, ...claims };
  const jwt = new SignJWT({ tenant, roles: ['operator', 'viewer'] }).setProtectedHeader({ alg, typ: 'JWT', ...header }).setIssuedAt();
  if (all.iss !== undefined) jwt.setIssuer(all.iss);
  if (all.aud !== undefined) jwt.setAudience(all.aud);
  if (all.exp !== undefined) jwt.setExpirationTime(all.exp);
  if (all.nbf !== undefined) jwt.setNotBefore(all.nbf);
  if (all.sub !== undefined) jwt.setSubject(all.sub);
  return jwt.sign(key);
}

/** `alg: none`: a header, a payload and an empty signature. */
function unsigned(alg = 'none'): string {
  const enc = (v: object) => base64url.encode(JSON.stringify(v));
  return `${enc({ alg, typ: 'JWT' })}.${enc({ iss: ISS, aud: AUD, sub: 'mallory', tenant, roles: ['admin'], exp: Math.floor(Date.now() / 1000) + 600 })}.`;
}

/**
 * One request to a facade. Every error answer is checked here, so all tests hold it: problem+json with a stable
 * code, and no stack trace or file path.
 */
async function call(
  facade: keyof typeof facades,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; raw?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<Reply> {
  if (opts.token) sentTokens.push(opts.token);
  const reply = await http.call(facades[facade].base, method, path, opts);
  if (reply.status >= 400) {
    expect(reply.type).toContain('application/problem+json');
    expect(reply.json).toMatchObject({ status: reply.status, code: expect.any(String), title: expect.any(String) });
    expect(reply.text).not.toMatch(/\n\s+at\s|\bat [\w.<>]+ \(|\/src\/|\/work\/|node_modules|\.ts:\d+/);
  }
  return reply;
}

/**
 * Tokens carry whole seconds, so "one second inside the tolerance" holds only if the token is minted and checked
 * within the same second: start late in a second over again at the next one. Aligning to the clock, not waiting
 * for any state.
 */
async function startOfSecond(): Promise<number> {
  const ms = Date.now() % 1000;
  if (ms > 400) await new Promise((r) => setTimeout(r, 1000 - ms + 10));
  return Math.floor(Date.now() / 1000);
}

async function addJwksKey(kid: string, alg: 'RS256' | 'ES256'): Promise<KeyPair> {
  const pair = await generateKeyPair(alg, { extractable: true });
  jwksKeys[kid] = { ...pair, alg };
  jwks.keys.push({ ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' });
  return pair;
}

function startJwksServer(): Promise<void> {
  jwks.server = createServer((req, res) => {
    if (req.url !== '/.well-known/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    jwks.fetches++;
    if (jwks.mode === 'hang') {
      hanging.push(res);
      return;
    }
    if (jwks.mode === 'error') {
      res.writeHead(500, { 'content-type': 'text/plain' }).end('identity provider down');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify({ keys: jwks.keys }));
  });
  jwks.server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve) => {
    jwks.server!.listen(0, '127.0.0.1', () => {
      jwks.url = `http://127.0.0.1:${(jwks.server!.address() as { port: number }).port}/.well-known/jwks.json`;
      resolve();
    });
  });
}

beforeAll(async () => {
  [env, db] = await Promise.all([startTemporal(), createTestDatabase()]);
  rsaKeys = await generateKeyPair('RS256', { extractable: true });
  ecKeys = await generateKeyPair('ES256', { extractable: true });
  rsaPem = await exportSPKI(rsaKeys.publicKey);
  const stateDir = mkdtempSync(join(tmpdir(), 'agentry-sec-'));
  const ecPemFile = join(stateDir, 'es256-public.pem');
  writeFileSync(ecPemFile, await exportSPKI(ecKeys.publicKey));
  await addJwksKey('rsa-1', 'RS256');
  await addJwksKey('ec-1', 'ES256');
  await startJwksServer();

  const [metricsPort, ...ports] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  common = {
    DATABASE_URL: db.url,
    TEMPORAL_ADDRESS: env.address,
    TEMPORAL_TASK_QUEUE: `e2e-${tenant}`,
    REDIS_URL: 'redis://127.0.0.1:6379',
    AGENTRY_STATE_DIR: stateDir,
    JWT_CLOCK_TOLERANCE_S: String(TOLERANCE_S),
    // This file sends many refused tokens on purpose; the intrusion detector is someone else's subject.
    IDS_MAX_FAILURES: '100000',
  };
  worker = spawnService('src/worker.ts', { ...common, WORKER_METRICS_PORT: String(metricsPort) });
  const start = (name: keyof typeof facades, port: number, extra: Record<string, string>) => {
    facades[name] = { service: spawnService('src/server.ts', { ...common, PORT: String(port), ...extra }), base: `http://127.0.0.1:${port}` };
  };
  start('rsa', ports[0], { JWT_PUBLIC_KEY: rsaPem, JWT_ALGORITHMS: 'RS256', LOG_LEVEL: 'debug' });
  start('ec', ports[1], { JWT_PUBLIC_KEY: ecPemFile });
  start('jwks', ports[2], { JWT_JWKS_URL: jwks.url, JWT_JWKS_COOLDOWN_MS: '0', JWT_JWKS_TIMEOUT_MS: '500' });
  start('hs', ports[3], { JWT_SECRET: hsSecret, LOG_LEVEL: 'trace' });
  await Promise.all([
    waitForHttp(`http://127.0.0.1:${metricsPort}/health`, worker),
    ...Object.values(facades).map((f) => waitForHttp(`${f.base}/ready`, f.service)),
  ]);
});

afterAll(async () => {
  await Promise.all([...Object.values(facades).map((f) => f.service.stop()), worker?.stop()]);
  for (const res of hanging) res.destroy();
  for (const s of sockets) s.destroy();
  await new Promise((r) => (jwks.server ? jwks.server.close(r) : r(undefined)));
  await db?.drop();
  await env?.teardown();
});

describe('tokens', () => {
  test('accepts a valid RS256 token (public key as PEM text, RS256 pinned)', async () => {
    const res = await call('rsa', 'GET', '/v1/runs', { token: await sign(rsaKeys.privateKey, 'RS256') });
    expect(res.status).toBe(200);
  });

  test('accepts a valid ES256 token (public key from a PEM file, default algorithms) and refuses an RS256 one there', async () => {
    expect((await call('ec', 'GET', '/v1/runs', { token: await sign(ecKeys.privateKey, 'ES256') })).status).toBe(200);
    const rs = await call('ec', 'GET', '/v1/runs', { token: await sign(rsaKeys.privateKey, 'RS256') });
    expect(rs.status).toBe(401);
    expect(rs.json.detail).toBe('token algorithm is not accepted');
  });

  test('rejects a token signed with alg none', async () => {
    for (const facade of ['rsa', 'hs', 'jwks'] as const) {
      for (const alg of ['none', 'None', 'NONE']) {
        const res = await call(facade, 'GET', '/v1/runs', { token: unsigned(alg) });
        expect(res.status).toBe(401);
        expect(res.json).toMatchObject({ code: 'unauthorized', detail: 'token algorithm is not accepted' });
        expect(res.headers.get('www-authenticate')).toContain('Bearer');
      }
    }
  });

  test('rejects an HS256 token signed with the RS256 public key PEM as the HMAC secret', async () => {
    for (const secret of [rsaPem, rsaPem.trim(), rsaPem.replace(/\n/g, '\r\n')]) {
      const token = await sign(new TextEncoder().encode(secret), 'HS256', { sub: 'mallory' });
      const res = await call('rsa', 'GET', '/v1/runs', { token });
      expect(res.status).toBe(401);
      expect(res.json.detail).toBe('token algorithm is not accepted');
    }
  });

  test('rejects a token signed by another key, even one that carries that key in its header', async () => {
    const attacker = await generateKeyPair('RS256', { extractable: true });
    const token = await sign(attacker.privateKey, 'RS256', {}, { jwk: await exportJWK(attacker.publicKey) });
    const res = await call('rsa', 'GET', '/v1/runs', { token });
    expect(res.status).toBe(401);
    expect(res.json.detail).toBe('token signature is invalid');
  });

  test('accepts expiry one second inside the clock tolerance and refuses it one second outside', async () => {
    let now = await startOfSecond();
    const inside = await call('rsa', 'GET', '/v1/runs', { token: await sign(rsaKeys.privateKey, 'RS256', { exp: now - TOLERANCE_S + 1 }) });
    expect(inside.status).toBe(200);
    now = await startOfSecond();
    const outside = await call('rsa', 'GET', '/v1/runs', { token: await sign(rsaKeys.privateKey, 'RS256', { exp: now - TOLERANCE_S - 1 }) });
    expect(outside.status).toBe(401);
    expect(outside.json.detail).toBe('token has expired');
  });

  test('refuses nbf in the future beyond the tolerance, accepts it within', async () => {
    let now = await startOfSecond();
    const beyond = await call('rsa', 'GET', '/v1/runs', { token: await sign(rsaKeys.privateKey, 'RS256', { nbf: now + TOLERANCE_S + 1 }) });
    expect(beyond.status).toBe(401);
    expect(beyond.json.detail).toBe('token is not valid yet (nbf)');
    now = await startOfSecond();
    const within = await call('rsa', 'GET', '/v1/runs', { token: await sign(rsaKeys.privateKey, 'RS256', { nbf: now + TOLERANCE_S - 1 }) });
    expect(within.status).toBe(200);
  });

  test('refuses a wrong issuer or audience, and a token without exp', async () => {
    const wrongIss = await call('rsa', 'GET', '/v1/runs', { token: await sign(rsaKeys.privateKey, 'RS256', { iss: 'https://evil.example' }) });
    expect(wrongIss.status).toBe(401);
    expect(wrongIss.json.detail).toContain('"iss"');
    const wrongAud = await call('rsa', 'GET', '/v1/runs', { token: await sign(rsaKeys.privateKey, 'RS256', { aud: 'another-api' }) });
    expect(wrongAud.status).toBe(401);
    expect(wrongAud.json.detail).toContain('"aud"');
    const noExp = await call('rsa', 'GET', '/v1/runs', { token: await sign(rsaKeys.privateKey, 'RS256', { exp: undefined }) });
    expect(noExp.status).toBe(401);
    expect(noExp.json.detail).toBe('token claim "exp" is missing');
  });
});

describe('JWKS', () => {
  test('accepts RS256 and ES256 tokens whose kid is in the key set, without refetching it per request', async () => {
    const before = jwks.fetches;
    for (let i = 0; i < 3; i++) {
      expect((await call('jwks', 'GET', '/v1/runs', { token: await sign(jwksKeys['rsa-1'].privateKey, 'RS256', {}, { kid: 'rsa-1' }) })).status).toBe(200);
      expect((await call('jwks', 'GET', '/v1/runs', { token: await sign(jwksKeys['ec-1'].privateKey, 'ES256', {}, { kid: 'ec-1' }) })).status).toBe(200);
    }
    expect(jwks.fetches - before).toBeLessThanOrEqual(1);
  });

  test('refuses a token naming a known kid but signed by another key, and one naming an unknown kid', async () => {
    const wrongKey = await call('jwks', 'GET', '/v1/runs', { token: await sign(rsaKeys.privateKey, 'RS256', {}, { kid: 'rsa-1' }) });
    expect(wrongKey.status).toBe(401);
    expect(wrongKey.json.detail).toBe('token signature is invalid');
    const unknown = await call('jwks', 'GET', '/v1/runs', { token: await sign(rsaKeys.privateKey, 'RS256', {}, { kid: 'nobody' }) });
    expect(unknown.status).toBe(401);
    expect(unknown.json.detail).toBe('no signing key matches the token');
  });

  test('picks up a rotated-in key: an unknown kid refetches the set', async () => {
    const fresh = await generateKeyPair('RS256', { extractable: true });
    const token = await sign(fresh.privateKey, 'RS256', {}, { kid: 'rsa-2' });
    expect((await call('jwks', 'GET', '/v1/runs', { token })).status).toBe(401);
    jwksKeys['rsa-2'] = { ...fresh, alg: 'RS256' };
    jwks.keys.push({ ...(await exportJWK(fresh.publicKey)), kid: 'rsa-2', alg: 'RS256', use: 'sig' });
    expect((await call('jwks', 'GET', '/v1/runs', { token })).status).toBe(200);
  });

  test('answers 503 identity_unavailable while the key set cannot be fetched (error or timeout), and keeps cached keys', async () => {
    const later = await generateKeyPair('RS256');
    const unknownKid = await sign(later.privateKey, 'RS256', {}, { kid: 'rsa-later' });
    const knownKid = await sign(jwksKeys['rsa-1'].privateKey, 'RS256', {}, { kid: 'rsa-1' });
    try {
      jwks.mode = 'error';
      const down = await call('jwks', 'GET', '/v1/runs', { token: unknownKid });
      expect(down.status).toBe(503);
      expect(down.json.code).toBe('identity_unavailable');
      expect(down.headers.get('retry-after')).toBeTruthy();
      expect(down.text).not.toContain('identity provider down');
      expect((await call('jwks', 'GET', '/v1/runs', { token: knownKid })).status).toBe(200);

      jwks.mode = 'hang';
      const started = Date.now();
      const slow = await call('jwks', 'GET', '/v1/runs', { token: unknownKid });
      expect(slow.status).toBe(503);
      expect(slow.json.code).toBe('identity_unavailable');
      expect(Date.now() - started).toBeLessThan(5000);
      await waitUntil('the outage to be logged', async () => (facades.jwks.service.output().includes('token signing keys cannot be fetched: answering 503') ? true : undefined));
    } finally {
      jwks.mode = 'ok';
    }
  });
});

describe('start-up refuses bad identity configuration', () => {
  const refuse = async (extra: Record<string, string>) => {
    const result = await exitOf(spawnService('src/server.ts', { ...common, PORT: '0', ...extra }));
    expect(result.code).not.toBe(0);
    expect(result.code).not.toBeNull();
    // A message for a person: no stack trace, no source paths.
    expect(result.output).not.toMatch(/\n\s+at\s|\.ts:\d+|node_modules/);
    expect(result.output).toContain('agentry facade: invalid configuration:');
    return result.output;
  };

  test.each(['301', '-1', 'NaN', 'Infinity', 'abc', '1e2'])('JWT_CLOCK_TOLERANCE_S=%s exits non-zero naming the key', async (value) => {
    const output = await refuse({ JWT_SECRET: hsSecret, JWT_CLOCK_TOLERANCE_S: value });
    expect(output).toContain('JWT_CLOCK_TOLERANCE_S: expected a number of seconds from 0 to 300');
  });

  test('no verification key exits naming JWT_SECRET, JWT_PUBLIC_KEY and JWT_JWKS_URL', async () => {
    const output = await refuse({});
    expect(output).toMatch(/JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL: none is set/);
  });

  test('algorithms that do not fit the key exit naming JWT_ALGORITHMS', async () => {
    const [hsWithPem, rsWithSecret, esWithRsaPem, none] = await Promise.all([
      refuse({ JWT_PUBLIC_KEY: rsaPem, JWT_ALGORITHMS: 'HS256' }),
      refuse({ JWT_SECRET: hsSecret, JWT_ALGORITHMS: 'RS256' }),
      refuse({ JWT_PUBLIC_KEY: rsaPem, JWT_ALGORITHMS: 'ES256' }),
      refuse({ JWT_JWKS_URL: jwks.url, JWT_ALGORITHMS: 'none' }),
    ]);
    expect(hsWithPem).toContain('JWT_ALGORITHMS: HS256 need JWT_SECRET; JWT_PUBLIC_KEY verifies');
    expect(rsWithSecret).toContain('JWT_ALGORITHMS: RS256 need JWT_PUBLIC_KEY or JWT_JWKS_URL');
    expect(esWithRsaPem).toContain('JWT_ALGORITHMS: ES256 cannot be verified with the rsa 2048 key in JWT_PUBLIC_KEY');
    expect(none).toContain('JWT_ALGORITHMS: each must be one of');
  });

  test('several key sources, a PEM as the secret, a missing key file and a short secret each exit naming the key, never echoing it', async () => {
    const [both, pemAsSecret, missingFile, short, httpJwks] = await Promise.all([
      refuse({ JWT_SECRET: hsSecret, JWT_PUBLIC_KEY: rsaPem }),
      refuse({ JWT_SECRET: rsaPem }),
      refuse({ JWT_PUBLIC_KEY: '/nonexistent/jwt-public.pem' }),
      refuse({ JWT_SECRET: 'short-secret-value' }),
      refuse({ JWT_JWKS_URL: 'http://idp.example/jwks.json' }),
    ]);
    expect(both).toContain('JWT_SECRET, JWT_PUBLIC_KEY: set only one');
    expect(pemAsSecret).toContain('JWT_SECRET: holds a PEM key');
    expect(pemAsSecret).not.toContain(rsaPem.split('\n')[1]);
    expect(missingFile).toContain('JWT_PUBLIC_KEY: is neither PEM text nor a readable PEM file (ENOENT');
    expect(short).toContain('JWT_SECRET: must be at least 32 characters');
    expect(short).not.toContain('short-secret-value');
    expect(httpJwks).toContain('JWT_JWKS_URL: must be an https:// URL');
  });
});

test('start-up refuses a PIPELINES_DIR without definitions, naming it', async () => {
  const empty = mkdtempSync(join(tmpdir(), 'agentry-no-pipelines-'));
  const result = await exitOf(spawnService('src/server.ts', { ...common, PORT: '0', JWT_SECRET: hsSecret, PIPELINES_DIR: empty }));
  expect(result.code).toBe(1);
  expect(result.output).toContain(`agentry facade: PIPELINES_DIR ${empty} holds no pipeline definitions (.yaml, .yml or .json files)`);
  expect(result.output).not.toMatch(/\n\s+at\s/);
});

describe('request hygiene', () => {
  const tokenFor = () => sign(rsaKeys.privateKey, 'RS256', { sub: 'hygiene' });
  const start = async (raw: string | Buffer, headers?: Record<string, string>) =>
    call('rsa', 'POST', '/v1/pipelines/support-triage/runs', { token: await tokenFor(), raw, headers });

  test.each([
    ['{"input": {"text": "hi", "__proto__": {"isAdmin": true}}}', '/input/__proto__', '__proto__'],
    ['{"__proto__": {"polluted": 1}, "input": {"text": "hi"}}', '/__proto__', '__proto__'],
    ['{"input": {"text": "hi", "meta": [{"constructor": {"prototype": {"x": 1}}}]}}', '/input/meta/0/constructor', 'constructor'],
    ['{"input": {"text": "hi", "a": {"b": {"prototype": 1}}}}', '/input/a/b/prototype', 'prototype'],
  ])('refuses a body with a prototype key: %s', async (raw, path, key) => {
    const res = await start(raw);
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ code: 'forbidden_key', detail: `${path} the key "${key}" is not allowed` });
    expect(res.json.errors[0]).toEqual({ path, code: 'forbidden_key', message: `the key "${key}" is not allowed` });
  });

  test('refuses strings with lone surrogates, naming the path', async () => {
    for (const [raw, path] of [
      ['{"input": {"text": "broken \\ud800 text"}}', '/input/text'],
      ['{"input": {"text": "\\udfff"}}', '/input/text'],
      ['{"input": {"text": "ok", "ticketId": "x\\ud83d"}}', '/input/ticketId'],
    ]) {
      const res = await start(raw);
      expect(res.status).toBe(400);
      expect(res.json).toMatchObject({ code: 'invalid_unicode', errors: [{ path, code: 'invalid_unicode' }] });
    }
  });

  test('refuses a body that is not valid UTF-8 instead of replacing the bytes', async () => {
    const raw = Buffer.concat([Buffer.from('{"input": {"text": "'), Buffer.from([0xff, 0xed, 0xa0, 0x80]), Buffer.from('"}}')]);
    const res = await start(raw);
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ code: 'invalid_unicode', detail: 'the request body is not valid UTF-8' });
  });

  test('refuses deeply nested bodies with 400 (they used to overflow the stack into a 500)', async () => {
    const raw = `{"input": {"text": "hi", "deep": ${'['.repeat(50_000)}${']'.repeat(50_000)}}}`;
    const res = await start(raw);
    expect(res.status).toBe(400);
    expect(res.json.code).toBe('nesting_too_deep');
  });

  test('answers 413 for a body over the limit, 415 for a body that is not JSON, 400 invalid_json for malformed JSON', async () => {
    const big = await start(JSON.stringify({ input: { text: 'x'.repeat(300 * 1024) } }));
    expect(big.status).toBe(413);
    expect(big.json.code).toBe('payload_too_large');
    // The limit counts the body as decompressed: about 1 KB of gzip that inflates past it is refused the same way.
    const bomb = await start(gzipSync(JSON.stringify({ input: { text: 'x'.repeat(1_000_000) } })), { 'content-encoding': 'gzip' });
    expect(bomb.status).toBe(413);
    expect(bomb.json.code).toBe('payload_too_large');
    const form = await start('text=hi', { 'content-type': 'application/x-www-form-urlencoded' });
    expect(form.status).toBe(415);
    expect(form.json.code).toBe('unsupported_media_type');
    const plain = await start('{"input": {"text": "hi"}}', { 'content-type': 'text/plain' });
    expect(plain.status).toBe(415);
    const utf16 = await start(Buffer.from('{"input": {"text": "hi"}}', 'utf16le'), { 'content-type': 'application/json; charset=utf-16le' });
    expect(utf16.status).toBe(415);
    expect(utf16.json.detail).toMatch(/charset "utf-16le" is not accepted/);
    // Spaced the way the body parser still reads as a charset.
    const spaced = await start(Buffer.from('{"input": {"text": "hi"}}', 'utf16le'), { 'content-type': 'application/json; charset =utf-16le' });
    expect(spaced.status).toBe(415);
    expect(spaced.json.detail).toMatch(/charset "utf-16le" is not accepted/);
    const utf8 = await start('{"input": {"text": "hi"}}', { 'content-type': 'application/json; charset="UTF-8"' });
    expect(utf8.status).toBe(202);
    // The alias the parser does not take is named, with the label that works.
    const alias = await start('{"input": {"text": "hi"}}', { 'content-type': 'application/json; charset=UTF8' });
    expect(alias.status).toBe(415);
    expect(alias.json.detail).toMatch(/charset "UTF8" is not accepted.*charset=utf-8/);
    const compressed = await start(gzipSync('{"input": {"text": "hi"}}'), { 'content-encoding': 'gzip' });
    expect(compressed.status).toBe(202);
    const notGzip = await start('{"input": {"text": "hi"}}', { 'content-encoding': 'gzip' });
    expect(notGzip.status).toBe(400);
    expect(notGzip.json).toMatchObject({ code: 'invalid_content_encoding', detail: 'the body is not valid gzip data (Content-Encoding)' });
    const unknownEncoding = await start('{"input": {"text": "hi"}}', { 'content-encoding': 'x-squash' });
    expect(unknownEncoding.status).toBe(415);
    expect(unknownEncoding.json.detail).toBe('Content-Encoding "x-squash" is not accepted; send the body as identity, gzip, deflate or br');
    const malformed = await start('{"input": {"text": "hi"');
    expect(malformed.status).toBe(400);
    expect(malformed.json.code).toBe('invalid_json');
    // 1e400 parses as Infinity, which used to reach the idempotency hash as a 500.
    const huge = await start('{"input": {"text": "hi", "n": 1e400}}', { 'idempotency-key': 'huge-number' });
    expect(huge.status).toBe(400);
    expect(huge.json).toMatchObject({ code: 'number_out_of_range', errors: [{ path: '/input/n' }] });
    const scalar = await start('"just a string"');
    expect(scalar.status).toBe(400);
    expect(scalar.json.code).toBe('invalid_json');
  });

  test('answers 400 for a malformed percent-encoding in the path (it used to be a logged 500)', async () => {
    const res = await call('rsa', 'GET', '/v1/runs/support-triage/%E0%A4%A', { token: await tokenFor() });
    expect(res.status).toBe(400);
    expect(res.json.code).toBe('bad_request');
  });

  test('answers unknown routes and missing tokens as problem+json too', async () => {
    expect((await call('rsa', 'GET', '/no/such/route')).status).toBe(404);
    expect((await call('rsa', 'GET', '/v1/runs')).status).toBe(401);
    expect((await call('rsa', 'GET', '/v1/runs', { headers: { authorization: 'Basic dXNlcjpwYXNz' } })).status).toBe(401);
  });

  test('emoji, CJK and right-to-left text round-trip byte for byte through a run', async () => {
    const text = 'I lost my card 💳😱 — 我的银行卡丢了 — 𠮷野家 — فقدت بطاقتي المصرفية — איבדתי את הכרטיס ‏(RTL)‏ — 👩🏽‍💻🇯🇵 — e\u0301 vs é';
    const token = await tokenFor();
    const started = await call('rsa', 'POST', '/v1/pipelines/support-triage/runs', { token, body: { input: { text } } });
    expect(started.status).toBe(202);
    const runId = started.json.runId as string;
    const read = await waitUntil(`${runId} to have redacted its input`, async () => {
      const r = await call('rsa', 'GET', `/v1/runs/${runId}`, { token });
      if (r.json.status === 'failed') throw Object.assign(new Error(`run failed: ${r.text}`), { fatal: true });
      const redact = r.json.outputs?.redact ?? r.json.stages?.find((s: { name: string; status: string }) => s.name === 'redact' && s.status === 'completed')?.output;
      return redact ? { reply: r, redacted: redact.text as string } : undefined;
    }, 60_000, 200);
    expect(read.redacted).toBe(text);
    expect(Buffer.from(read.redacted, 'utf8').equals(Buffer.from(text, 'utf8'))).toBe(true);
    // The raw bytes on the wire carry the text as UTF-8, not as \u escapes or replacement characters.
    expect(read.reply.bytes.includes(Buffer.from(text, 'utf8'))).toBe(true);
    expect(read.reply.text).not.toContain('\uFFFD');
  });
});

describe('secrets hygiene', () => {
  test('facade logs carry request outcomes but never a token, the JWT secret or the config object', async () => {
    // Requests with Authorization headers, accepted and refused, to the facades that log at debug and trace.
    const hsToken = await sign(new TextEncoder().encode(hsSecret), 'HS256', { sub: 'logged-user' });
    expect((await call('hs', 'GET', '/v1/runs', { token: hsToken })).status).toBe(200);
    const expired = await sign(new TextEncoder().encode(hsSecret), 'HS256', { exp: Math.floor(Date.now() / 1000) - 3600 });
    expect((await call('hs', 'GET', '/v1/runs', { token: expired })).status).toBe(401);
    expect((await call('rsa', 'GET', '/v1/runs', { token: await sign(rsaKeys.privateKey, 'RS256', { aud: 'x' }) })).status).toBe(401);
    expect((await call('hs', 'POST', '/v1/pipelines/support-triage/runs', { token: hsToken, raw: '{"input": {"text": "\\ud800"}}' })).status).toBe(400);

    const logs = await waitUntil('the refusals to be logged', async () => {
      const out = facades.hs.service.output() + facades.rsa.service.output();
      return out.includes('"reason":"expired"') && out.includes('"reason":"claims"') ? out : undefined;
    });
    expect(logs).toContain('bearer tokens are verified');
    expect(logs).toContain('bearer token accepted');
    expect(sentTokens.length).toBeGreaterThan(20);
    for (const token of sentTokens) {
      expect(logs).not.toContain(token);
      // The signature alone is the secret part of a token.
      const signature = token.split('.')[2];
      if (signature) expect(logs).not.toContain(signature);
    }
    expect(logs).not.toContain(hsSecret);
    // Keys of the config object, as they would appear were it (or a spread of it) logged.
    expect(logs).not.toMatch(/"(JWT_SECRET|JWT_PUBLIC_KEY|TEMPORAL_ADDRESS|DATABASE_URL|PAYLOAD_KEYS|config)":/);
    expect(logs).not.toContain(rsaPem.split('\n')[1]);
  });
});
