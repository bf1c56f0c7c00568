import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { AesGcmPayloadCodec, ENCODING_ENCRYPTED, generateKeyRingText, METADATA_KEY_ID, parseKeyRing, payloadsToJson } from '../../src/codec';
import { PIPELINE_WORKFLOW } from '../../src/contracts';
import { mintToken, type Role } from '../../src/facade/auth';
import { resolveTemporalCli } from '../../src/temporal/temporal-cli';
import * as http from '../helpers/http';
import type { Service } from '../helpers/processes';
import { startStack, type Stack } from '../helpers/stack';
import { waitUntil } from '../helpers/wait';

/**
 * Payload encryption end to end: the real facade and worker processes against a dev server that keeps its state
 * in a SQLite file, so the test can read exactly what Temporal stores.
 */
const secret = randomBytes(32).toString('hex');
const tenant = `enc-${randomBytes(3).toString('hex')}`;
const marker = `marker-${randomBytes(8).toString('hex')}`;
// A ring of this test's own, different from the test helpers' default, so the processes can only have it from
// the PAYLOAD_KEYS they were given.
const payloadKeys = generateKeyRingText(`e2e-${randomBytes(2).toString('hex')}`);
const keyId = payloadKeys.split(':')[0];
const codec = new AesGcmPayloadCodec({ keys: parseKeyRing(payloadKeys) });
const UI_ORIGIN = 'http://127.0.0.1:8233';

let stack: Stack;
let facade: Service;
let worker: Service;
let base: string;
let dbFile: string;
/** A client without a codec: it sees payloads exactly as Temporal stores them. */
let raw: Client;
/** The completed run every test looks at. */
let run: { runId: string; workflowId: string };

const token = (roles: Role[], sub = 'enc-user') => mintToken({ secret, issuer: 'agentry', audience: 'agentry-api', subject: sub, tenant, roles });
const text = (b: Uint8Array | null | undefined) => Buffer.from(b ?? new Uint8Array()).toString('utf8');

const call = (method: string, path: string, opts: http.CallOptions = {}) => http.call(base, method, path, opts);

/** A file's bytes, or none when it does not exist (SQLite deletes its rollback journal at the end of each write). */
function bytesOf(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return Buffer.alloc(0);
    throw err;
  }
}

/** Every byte the dev server has written: the database file and its WAL or rollback journal, if any. */
function storedBytes(): Buffer {
  return Buffer.concat([dbFile, `${dbFile}-wal`, `${dbFile}-journal`].map(bytesOf));
}

/** Every payload in a history, with the path it was found at; search attributes are left out (stored plain by design). */
function payloadsIn(value: unknown, path = ''): { path: string; payload: Payload }[] {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return [];
  const obj = value as Record<string, unknown>;
  if (obj.metadata && typeof obj.metadata === 'object' && 'encoding' in (obj.metadata as object)) return [{ path, payload: obj as Payload }];
  return Object.entries(obj).flatMap(([k, v]) => (k === 'searchAttributes' || k === 'indexedFields' ? [] : payloadsIn(v, `${path}/${k}`)));
}

beforeAll(async () => {
  dbFile = join(mkdtempSync(join(tmpdir(), 'agentry-enc-temporal-')), 'temporal.sqlite');
  stack = await startStack({ label: 'enc', secret, temporalDbFilename: dbFile, env: { PAYLOAD_KEYS: payloadKeys } });
  raw = new Client({ connection: stack.temporal.connection, namespace: stack.temporal.namespace ?? 'default' });
  ({ base } = stack);
  facade = stack.facades[0].service;
  worker = stack.workers[0].service;

  // One ticket through the facade, carrying the marker and an e-mail address.
  const operator = await token(['operator']);
  const started = await call('POST', '/v1/pipelines/support-triage/runs', {
    token: operator,
    body: { input: { text: `I lost my card yesterday, reference ${marker}, my email is sam@example.org`, ticketId: marker } },
  });
  expect(started.status).toBe(202);
  const runId: string = started.json.runId;
  const settled = await waitUntil(`run ${runId} to settle`, async () => {
    const r = await call('GET', `/v1/runs/${runId}`, { token: operator });
    return r.status === 200 && r.json.status !== 'running' ? r.json : undefined;
  }, 60_000, 200);
  if (settled.status === 'awaiting-approval') {
    // The classifier was unsure of the ticket: someone else approves, so the run still goes through every stage.
    const stage = settled.stages.find((s: { status: string }) => s.status === 'awaiting-approval').name;
    const approved = await call('POST', `/v1/runs/${runId}/approvals`, { token: await token(['approver'], 'enc-approver'), body: { stage, decision: 'approve' } });
    expect(approved.status).toBe(200);
  }
  const done = await waitUntil(`run ${runId} to complete`, async () => {
    const r = await call('GET', `/v1/runs/${runId}`, { token: operator });
    return r.status === 200 && !['running', 'awaiting-approval'].includes(r.json.status) ? r.json : undefined;
  }, 60_000, 200);
  expect(done.status).toBe('completed');
  run = { runId, workflowId: `${tenant}/${runId}` };
});

afterAll(async () => {
  await stack?.stop();
});

test('the facade reads the run decrypted: its input and stage outputs come back in plaintext', async () => {
  const r = await call('GET', `/v1/runs/${run.runId}`, { token: await token(['viewer']) });
  expect(r.status).toBe(200);
  expect(r.json.outputs.redact.text).toContain(marker);
  expect(r.json.outputs.redact.text).not.toContain('sam@example.org');
});

test('every payload in the history is encrypted under the active key id, search attributes aside', async () => {
  const history = await raw.workflow.getHandle(run.workflowId).fetchHistory();
  const found = payloadsIn(history.events);
  expect(found.map((f) => f.path)).toEqual(
    expect.arrayContaining([expect.stringMatching(/workflowExecutionStartedEventAttributes\/input\/payloads/), expect.stringMatching(/activityTaskCompletedEventAttributes\/result/)]),
  );
  const plain = found
    // Patch markers carry the patch id, written by the SDK core itself, outside any codec: not user data.
    .filter((f) => !/markerRecordedEventAttributes\/details\/patch-data\//.test(f.path))
    // The trace context header (W3C traceparent ids) of the tracing interceptors: the SDK sends headers outside the codec.
    .filter((f) => !/\/header\/fields\/_tracer-data$/.test(f.path))
    .filter((f) => text(f.payload.metadata?.encoding) !== ENCODING_ENCRYPTED)
    .map((f) => `${f.path}: ${text(f.payload.metadata?.encoding)}`);
  expect(plain).toEqual([]);
  expect(new Set(found.filter((f) => text(f.payload.metadata?.encoding) === ENCODING_ENCRYPTED).map((f) => text(f.payload.metadata?.[METADATA_KEY_ID])))).toEqual(
    new Set([keyId]),
  );
  expect(Buffer.from(temporal.api.history.v1.History.encode(history).finish()).includes(marker)).toBe(false);
  // Our own copy of the ring opens them.
  const started = history.events![0].workflowExecutionStartedEventAttributes!.input!.payloads!;
  expect(text((await codec.decode(started))[0].data)).toContain(marker);
});

test('the marker never reaches the SQLite file in plaintext, while a run started without the codec does', async () => {
  // Control: a run whose input is stored unencrypted (a client without the codec, on a queue nobody polls) shows
  // up in the file, so the scan reads where Temporal keeps payloads.
  const plainMarker = `plain-${randomBytes(8).toString('hex')}`;
  const control = await raw.workflow.start(PIPELINE_WORKFLOW, {
    taskQueue: `nobody-${tenant}`,
    workflowId: `${tenant}/control/${plainMarker}`,
    args: [{ note: plainMarker }],
  });
  try {
    await waitUntil('the unencrypted control input to reach the SQLite file', async () => (storedBytes().includes(plainMarker) ? true : undefined), 30_000, 250);
  } finally {
    await control.terminate('control run, not meant to run');
  }
  const stored = storedBytes();
  // Search attributes are stored as they are: the tenant is there, in plaintext, for visibility queries.
  expect(stored.includes(tenant)).toBe(true);
  expect(stored.includes(marker)).toBe(false);
  expect(stored.includes('sam@example.org')).toBe(false);
});

describe('codec endpoints', () => {
  async function storedInput() {
    const history = await raw.workflow.getHandle(run.workflowId).fetchHistory();
    return history.events![0].workflowExecutionStartedEventAttributes!.input!.payloads!;
  }

  test('/codec/decode answers the plaintext to a caller with a viewer token', async () => {
    const payloads = payloadsToJson(await storedInput());
    const res = await call('POST', '/codec/decode', { token: await token(['viewer']), body: payloads, headers: { 'X-Namespace': 'default' } });
    expect(res.status).toBe(200);
    expect(res.json.payloads).toHaveLength(1);
    const [p] = res.json.payloads;
    expect(Buffer.from(p.metadata.encoding, 'base64').toString()).toBe('json/plain');
    const input = JSON.parse(Buffer.from(p.data, 'base64').toString());
    expect(input.input.text).toContain(marker);
  });

  test('/codec/encode and /codec/decode round-trip, and unencrypted payloads pass decode unchanged', async () => {
    const tk = await token(['auditor']);
    const plain = { payloads: [{ metadata: { encoding: Buffer.from('json/plain').toString('base64') }, data: Buffer.from('"hello"').toString('base64') }] };
    const encoded = await call('POST', '/codec/encode', { token: tk, body: plain });
    expect(encoded.status).toBe(200);
    expect(Buffer.from(encoded.json.payloads[0].metadata.encoding, 'base64').toString()).toBe(ENCODING_ENCRYPTED);
    expect(Buffer.from(encoded.json.payloads[0].metadata[METADATA_KEY_ID], 'base64').toString()).toBe(keyId);
    expect((await call('POST', '/codec/decode', { token: tk, body: encoded.json })).json).toEqual(plain);
    expect((await call('POST', '/codec/decode', { token: tk, body: plain })).json).toEqual(plain);
  });

  test('without a valid token the answer is 401, readable by the Web UI; without a role it is 403', async () => {
    const body = payloadsToJson(await storedInput());
    const none = await call('POST', '/codec/decode', { body, headers: { Origin: UI_ORIGIN } });
    expect(none.status).toBe(401);
    expect(none.type).toContain('application/problem+json');
    expect(none.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);
    expect(none.text).not.toContain(Buffer.from(marker).toString('base64').slice(0, 10));
    const forged = await mintToken({ secret: 'x'.repeat(40), issuer: 'agentry', audience: 'agentry-api', subject: 's', tenant, roles: ['admin'] });
    expect((await call('POST', '/codec/decode', { token: forged, body })).status).toBe(401);
    const noRole = await call('POST', '/codec/decode', { token: await token([]), body });
    expect(noRole.status).toBe(403);
    expect(noRole.json.code).toBe('forbidden');
  });

  test('malformed bodies are 400 problem+json; an altered payload is 422', async () => {
    const tk = await token(['viewer']);
    const notPayloads = await call('POST', '/codec/decode', { token: tk, body: { payloads: [{ data: 'not base64!' }] } });
    expect(notPayloads.status).toBe(400);
    expect(notPayloads.type).toContain('application/problem+json');
    expect(notPayloads.json).toMatchObject({ code: 'validation_failed', errors: [{ path: '/payloads/0/data' }] });
    expect((await call('POST', '/codec/decode', { token: tk, body: { nothing: true } })).json.code).toBe('validation_failed');
    expect((await call('POST', '/codec/decode', { token: tk, raw: '{"payloads": [' })).json.code).toBe('invalid_json');
    // A body of many empty payloads would hold the event loop: refused before any work, naming the field.
    const flood = await call('POST', '/codec/encode', { token: tk, raw: JSON.stringify({ payloads: Array.from({ length: 5000 }, () => ({})) }) });
    expect(flood.status).toBe(400);
    expect(flood.json).toMatchObject({ code: 'validation_failed', errors: [{ path: '/payloads' }] });
    // Codec calls count against the API's request limits like any other call.
    expect(flood.headers.get('ratelimit-limit')).not.toBeNull();

    const [stored] = await storedInput();
    const data = Buffer.from(stored.data!);
    data[data.length - 1] ^= 1;
    const altered = await call('POST', '/codec/decode', { token: tk, body: payloadsToJson([{ ...stored, data }]) });
    expect(altered.status).toBe(422);
    expect(altered.json).toMatchObject({ code: 'payload_undecodable', reason: 'authentication_failed', keyId });
  });

  test('answers the CORS preflight of the Web UI origin, and refuses other origins', async () => {
    const preflight = await call('OPTIONS', '/codec/decode', {
      headers: { Origin: UI_ORIGIN, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type,x-namespace' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);
    expect(preflight.headers.get('access-control-allow-methods')).toBe('POST, GET, OPTIONS');
    expect(preflight.headers.get('access-control-allow-headers')).toBe('X-Namespace, Content-Type, Authorization');
    expect(preflight.headers.get('access-control-allow-credentials')).toBe('true');
    expect(preflight.headers.get('vary')).toMatch(/Origin/);

    const localhost = await call('OPTIONS', '/codec/decode', { headers: { Origin: 'http://localhost:8233', 'Access-Control-Request-Method': 'POST' } });
    expect(localhost.headers.get('access-control-allow-origin')).toBe('http://localhost:8233');

    const evil = await call('OPTIONS', '/codec/decode', { headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'POST' } });
    expect(evil.status).toBe(403);
    expect(evil.headers.get('access-control-allow-origin')).toBeNull();
    const evilPost = await call('POST', '/codec/decode', { token: await token(['viewer']), body: { payloads: [] }, headers: { Origin: 'https://evil.example' } });
    expect(evilPost.status).toBe(403);
    expect(evilPost.json.code).toBe('origin_not_allowed');
  });

  test('the Temporal CLI shows the run decrypted through the codec endpoint, and encrypted without it', async () => {
    const cli = resolveTemporalCli({ install: false, explicitPath: process.env.TEMPORAL_CLI_PATH });
    /** The history as the CLI prints it (JSON), with every payload's `data` base64-decoded. */
    const show = (...extra: string[]) => {
      const out = spawnSync(cli, ['workflow', 'show', '--address', stack.temporal.address, '--namespace', stack.temporal.namespace ?? 'default', '--workflow-id', run.workflowId, '--output', 'json', ...extra], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(out.stderr).toBe('');
      expect(out.status).toBe(0);
      return [...out.stdout.matchAll(/"data":\s*"([A-Za-z0-9+/=]*)"/g)].map((m) => Buffer.from(m[1], 'base64').toString('utf8')).join('\n');
    };
    expect(show('--codec-endpoint', `${base}/codec`, '--codec-auth', `Bearer ${await token(['viewer'])}`)).toContain(marker);
    expect(show()).not.toContain(marker);
  });

  test('/openapi.json describes the codec endpoints', async () => {
    const doc = await call('GET', '/openapi.json');
    expect(Object.keys(doc.json.paths)).toEqual(expect.arrayContaining(['/codec/decode', '/codec/encode']));
  });
});

test('neither process prints key material', () => {
  const key = payloadKeys.split(':')[1];
  expect(facade.output()).not.toContain(key);
  expect(worker.output()).not.toContain(key);
});
