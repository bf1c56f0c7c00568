import { randomBytes } from 'node:crypto';
import { mintToken } from '../../src/facade/auth';
import { call, scrapeMetrics, type Sample } from '../helpers/http';
import { startStack, type Stack } from '../helpers/stack';

/** Every random id, path segment, tenant and subject the test sends starts with this, so a leak is easy to find. */
const MARK = 'rnd';
const secret = randomBytes(32).toString('hex');
const REQUESTS = 10_000;
const CONCURRENCY = 16;
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'] as const;
/**
 * Families the Node runtime labels by what it happens to hold or do at scrape time (handle types, GC kinds): their
 * label sets may change between two scrapes without any request, so they are held to "no request-supplied value"
 * instead of "identical".
 */
const RUNTIME_FAMILIES = /^nodejs_(active_handles|active_requests|active_resources|gc_duration_seconds)/;

let stack: Stack;
let base: string;
let workerMetrics: string;

const random = () => `${MARK}${randomBytes(6).toString('hex')}`;

type Auth = 'none' | 'valid' | 'forged';
type PathKind = 'run' | 'run-unknown-pipeline' | 'run-audit' | 'v1-unknown' | 'unknown';
const PATHS: Record<PathKind, () => string> = {
  run: () => `/v1/runs/support-triage/${random()}`,
  'run-unknown-pipeline': () => `/v1/runs/${random()}/${random()}`,
  'run-audit': () => `/v1/runs/support-triage/${random()}/audit`,
  'v1-unknown': () => `/v1/${random()}/${random()}`,
  unknown: () => `/${random()}/${random()}?${random()}=${random()}`,
};
const AUTHS: Auth[] = ['none', 'valid', 'forged'];

/** A token of a random tenant and subject (valid), or one signed with another secret (forged). */
async function tokenFor(auth: Auth): Promise<string | undefined> {
  if (auth === 'none') return undefined;
  return mintToken({
    secret: auth === 'valid' ? secret : randomBytes(32).toString('hex'),
    issuer: 'agentry',
    audience: 'agentry-api',
    subject: random(),
    tenant: random(),
    roles: ['operator', 'viewer'],
  });
}

async function send(method: string, kind: PathKind, auth: Auth): Promise<number> {
  const reply = await call(base, method, PATHS[kind](), { token: await tokenFor(auth) });
  return reply.status;
}

/** Series identity: name and every label, values included; the sample value is left out. */
const seriesKey = (s: Sample) => `${s.name}{${Object.entries(s.labels).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}="${v}"`).join(',')}}`;

function seriesOf(samples: Sample[]): { fixed: Set<string>; runtime: Set<string> } {
  const fixed = new Set<string>();
  const runtime = new Set<string>();
  for (const s of samples) (RUNTIME_FAMILIES.test(s.name) ? runtime : fixed).add(seriesKey(s));
  return { fixed, runtime };
}

const labelValues = (samples: Sample[], label: string) => new Set(samples.filter((s) => label in s.labels).map((s) => s.labels[label]));

beforeAll(async () => {
  stack = await startStack({
    label: 'card',
    secret,
    // Limits far above the load, so every request reaches routing and the answers stay the same kind throughout.
    facadeEnv: { RATE_LIMIT_PER_MINUTE: '1000000', TENANT_RATE_LIMIT_PER_MINUTE: '1000000', IDS_MAX_FAILURES: '1000000' },
  });
  ({ base, workerMetricsUrl: workerMetrics } = stack);
});

afterAll(async () => {
  await stack?.stop();
});

test(`${REQUESTS.toLocaleString('en')} requests with random ids, paths, tenants and subjects add no series`, async () => {
  // Every kind of request once (twice: a first answer may differ from a warm one), so each bounded series the
  // traffic can reach exists before the first scrape.
  const statusOf = new Map<string, Set<number>>();
  for (let round = 0; round < 2; round++) {
    for (const method of METHODS) for (const kind of Object.keys(PATHS) as PathKind[]) for (const auth of AUTHS) await send(method, kind, auth);
  }
  // A scrape is itself counted (route `/metrics`) once it is answered: the first one only creates those series.
  await scrapeMetrics(`${base}/metrics`);
  const facadeBefore = await scrapeMetrics(`${base}/metrics`);
  const workerBefore = await scrapeMetrics(workerMetrics);

  const started = performance.now();
  let next = 0;
  const errors: string[] = [];
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < REQUESTS) {
        next++;
        const method = METHODS[Math.floor(Math.random() * METHODS.length)];
        const kinds = Object.keys(PATHS) as PathKind[];
        const kind = kinds[Math.floor(Math.random() * kinds.length)];
        const auth = AUTHS[Math.floor(Math.random() * AUTHS.length)];
        const status = await send(method, kind, auth).catch((err: Error) => {
          errors.push(err.message);
          return 0;
        });
        const key = `${method} ${kind} ${auth}`;
        statusOf.set(key, (statusOf.get(key) ?? new Set()).add(status));
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  expect(errors).toEqual([]);
  // A generous bound (other suites may share the machine): the load must stay a test, not a soak.
  expect(seconds).toBeLessThan(120);
  process.stdout.write(`cardinality: ${REQUESTS} requests in ${seconds.toFixed(1)} s (${Math.round(REQUESTS / seconds)} per second)\n`);

  // The load was refused or not found as expected: no 5xx, no rate limiting.
  const statuses = new Set([...statusOf.values()].flatMap((s) => [...s]));
  expect([...statuses].filter((s) => s >= 500 || s === 429)).toEqual([]);

  const facadeAfter = await scrapeMetrics(`${base}/metrics`);
  const workerAfter = await scrapeMetrics(workerMetrics);
  for (const [before, after] of [
    [facadeBefore, facadeAfter],
    [workerBefore, workerAfter],
  ]) {
    const a = seriesOf(before);
    const b = seriesOf(after);
    expect([...b.fixed].filter((k) => !a.fixed.has(k))).toEqual([]);
    expect([...a.fixed].filter((k) => !b.fixed.has(k))).toEqual([]);
    // Runtime families: what they label by is the runtime's, never the request's.
    expect([...b.runtime].filter((k) => k.includes(MARK))).toEqual([]);
  }

  // The counts did move: the traffic was seen and counted under bounded series.
  const total = (samples: Sample[]) => samples.filter((s) => s.name === 'http_requests_total').reduce((n, s) => n + s.value, 0);
  expect(total(facadeAfter) - total(facadeBefore)).toBeGreaterThanOrEqual(REQUESTS);

  // The label values themselves: routes are templates (from the description) or `unmatched`, methods the ones
  // sent, statuses three digits; no value anywhere carries a random id, path, tenant or subject.
  const doc = await call(base, 'GET', '/openapi.json');
  const templates = new Set(Object.keys(doc.json.paths as Record<string, unknown>).map((p) => p.replace(/\{(\w+)\}/g, ':$1')));
  const routes = labelValues(facadeAfter, 'route');
  expect(routes.has('unmatched')).toBe(true);
  expect(routes.has('/v1/runs/:pipeline/:id')).toBe(true);
  expect([...routes].filter((r) => r !== 'unmatched' && !templates.has(r))).toEqual([]);
  expect([...labelValues(facadeAfter, 'method')].filter((m) => !(METHODS as readonly string[]).includes(m))).toEqual([]);
  expect([...labelValues(facadeAfter, 'status')].filter((s) => !/^\d{3}$/.test(s))).toEqual([]);
  for (const samples of [facadeAfter, workerAfter]) {
    expect(samples.filter((s) => Object.values(s.labels).some((v) => v.includes(MARK))).map(seriesKey)).toEqual([]);
  }
}, 300_000);
