import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveSchemathesis } from '../../src/cli/test-tools';
import { mintToken, ROLES } from '../../src/facade/auth';
import type { Service } from '../helpers/processes';
import { startStack, type Stack } from '../helpers/stack';

/**
 * Generated input: schemathesis reads the facade's own `/openapi.json` and sends well over a thousand generated
 * requests, valid and invalid, with a token whose roles reach every route. Every answer must be free of 5xx and
 * match the description (status code, content type, headers, body schema). The seed is fixed, so a failure
 * reproduces with the same command.
 */
const SEED = 20261203;
/** Generated cases per operation and phase: 16 operations, three phases (coverage, fuzzing, stateful). */
const MAX_EXAMPLES = 60;
const MIN_CASES = 1000;

const secret = randomBytes(32).toString('hex');
const tenant = `st-${randomBytes(3).toString('hex')}`;

/** Fast pipelines (no language model): one that completes, one that waits for an approval and a signal. */
const PIPELINES = {
  'quick.yaml': `
name: quick
version: 1
description: redacts a text and ends
input: { type: object, required: [text], properties: { text: { type: string, maxLength: 2000 } } }
stages:
  - name: redact
    agent: pii-redact
    with: { text: "\${input.text}" }
`,
  'gated.yaml': `
name: gated
version: 1
description: redacts, then waits for an approval
input: { type: object, properties: { text: { type: string, maxLength: 2000 } } }
signals: [nudge]
stages:
  - name: redact
    agent: pii-redact
    with: { text: "\${input.text}" }
  - name: review
    approval:
      roles: [approver]
      timeout: 2m
`,
};

let stack: Stack;
let facade: Service;
let base: string;
let stCli: string;
let token: string;

beforeAll(async () => {
  stCli = resolveSchemathesis();
  token = await mintToken({ secret, issuer: 'agentry', audience: 'agentry-api', subject: 'st-fuzzer', tenant, roles: [...ROLES] });
  stack = await startStack({
    label: 'st',
    secret,
    pipelines: PIPELINES,
    // Generated traffic is one subject sending thousands of requests, many of them refused on purpose.
    env: { RATE_LIMIT_PER_MINUTE: '1000000', TENANT_RATE_LIMIT_PER_MINUTE: '1000000', IDS_MAX_FAILURES: '1000000' },
  });
  ({ base } = stack);
  facade = stack.facades[0].service;
});

afterAll(async () => {
  await stack?.stop();
});

/** Runs `st` in `cwd`, where it keeps its example database and cache (never the work tree). */
function runSchemathesis(args: string[], cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(stCli, args, {
      cwd,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NO_COLOR: '1', SCHEMATHESIS_HOOKS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolveRun({ code, output }));
  });
}

async function get(path: string, init: RequestInit = {}) {
  const res = await fetch(`${base}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...init.headers } });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are asserted field by field
  return { status: res.status, type: res.headers.get('content-type') ?? '', headers: res.headers, json: (await res.json().catch(() => undefined)) as any };
}

describe('findings of the generated-input run, pinned', () => {
  test('a runs cursor pages on; a made-up, altered or borrowed one is a 400 naming cursor, without asking Temporal', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${base}/v1/pipelines/quick/runs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ input: { text: `cursor ${i}` } }),
      });
      expect(res.status).toBe(202);
    }
    const first = await get('/v1/runs?pipeline=quick&pageSize=1');
    expect(first.status).toBe(200);
    const cursor = first.json.nextCursor as string;
    expect(cursor).toMatch(/^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]+$/);
    const second = await get(`/v1/runs?pipeline=quick&pageSize=1&cursor=${cursor}`);
    expect(second.status).toBe(200);
    expect(second.json.runs).toHaveLength(1);
    expect(second.json.runs[0].runId).not.toBe(first.json.runs[0].runId);

    const [digest, page] = cursor.split('.');
    const altered = `${digest}.${page.slice(0, -2)}${page.endsWith('AA') ? 'BB' : 'AA'}`;
    for (const bad of ['', 'garbage', '0'.repeat(200), altered, Buffer.from('not a token').toString('base64url')]) {
      const started = Date.now();
      const res = await get(`/v1/runs?pipeline=quick&pageSize=1&cursor=${encodeURIComponent(bad)}`);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(res.status).toBe(400);
      expect(res.type).toContain('application/problem+json');
      expect(res.json).toMatchObject({ code: 'validation_failed', errors: [{ path: '/cursor' }] });
    }
    // The cursor belongs to its listing: other filters, or another tenant, cannot use it.
    expect((await get(`/v1/runs?pipeline=gated&pageSize=1&cursor=${cursor}`)).status).toBe(400);
    const other = await mintToken({ secret, issuer: 'agentry', audience: 'agentry-api', subject: 'st-fuzzer', tenant: `${tenant}-b`, roles: [...ROLES] });
    const borrowed = await fetch(`${base}/v1/runs?pipeline=quick&pageSize=1&cursor=${cursor}`, { headers: { authorization: `Bearer ${other}` } });
    expect(borrowed.status).toBe(400);
  });

  test('pageSize takes decimal digits from 1 to 200 only, as /openapi.json says', async () => {
    expect((await get('/v1/runs?pageSize=200')).status).toBe(200);
    for (const bad of ['0', '201', '0x10', '1e2', '%2010', '', '1.5', '-1']) {
      const res = await get(`/v1/runs?pageSize=${bad}`);
      expect(res.status).toBe(400);
      expect(res.json).toMatchObject({ code: 'validation_failed', errors: [{ path: '/pageSize' }] });
    }
  });

  test('a method the description does not list on a described path is 405 problem+json with Allow', async () => {
    const res = await get('/v1/pipelines', { method: 'DELETE' });
    expect(res.status).toBe(405);
    expect(res.type).toContain('application/problem+json');
    expect(res.headers.get('allow')).toBe('GET, HEAD');
    expect(res.json).toMatchObject({ code: 'method_not_allowed', status: 405 });
    expect((await get('/v1/no-such-route', { method: 'DELETE' })).status).toBe(404);
  });
});

test('over 1,000 generated requests: no 5xx, and every answer matches /openapi.json', async () => {
  const reportDir = mkdtempSync(join(tmpdir(), 'agentry-st-report-'));
  const junit = join(reportDir, 'junit.xml');
  // A request line or headers over the server's limit are refused with 431 (documented on every operation), which
  // is as much a rejection of invalid data as a 400.
  const config = join(reportDir, 'schemathesis.toml');
  writeFileSync(config, '[checks.negative_data_rejection]\nexpected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 414, 415, 422, 428, 429, 431]\n');
  const { code, output } = await runSchemathesis([
    '--config-file',
    config,
    'run',
    `${base}/openapi.json`,
    '--header',
    `Authorization: Bearer ${token}`,
    '--checks',
    'all',
    // Dropped: "a schema-valid request is accepted". A start's body depends on which pipeline the path names (its
    // own input schema), which OpenAPI cannot tie to a path parameter; the facade still answers such bodies with a
    // documented 400 problem naming the field, and every other check holds.
    '--exclude-checks',
    'positive_data_acceptance',
    '--max-examples',
    String(MAX_EXAMPLES),
    '--seed',
    String(SEED),
    // One worker: Python 3.11's parser is not safe for the lambda-source lookups Hypothesis makes from threads.
    '--workers',
    '1',
    '--request-timeout',
    '20',
    '--suppress-health-check',
    'too_slow',
    '--report',
    'junit',
    '--report-junit-path',
    junit,
  ], reportDir);
  if (code !== 0) throw new Error(`schemathesis exited with ${code}:\n${output}\n--- facade output ---\n${facade.output()}`);

  // The summary line reads like "Test cases: 1234 generated, 1234 passed".
  const cases = /Test cases:\s+(\d+) generated/.exec(output);
  expect(cases).not.toBeNull();
  process.stdout.write(`schemathesis: ${cases![1]} test cases generated, all passed\n`);
  expect(Number(cases![1])).toBeGreaterThanOrEqual(MIN_CASES);
  expect(output).not.toMatch(/\bfailed\b/i);
  // Every operation of the description was exercised.
  const report = readFileSync(junit, 'utf8');
  expect(report).toContain('POST /v1/pipelines/{pipeline}/runs');
  expect(report).toContain('GET /v1/runs/{pipeline}/{id}/events');
  expect(facade.output()).not.toMatch(/unhandled error/);
}, 300_000);
