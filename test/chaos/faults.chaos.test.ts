/**
 * Fault injection against the real processes: workers killed mid-run, the Temporal dev server crashed and restarted
 * on its SQLite file, PostgreSQL down for ten seconds, Redis stopped. After each, every run completes, the audit
 * trail holds each event exactly once and its chain verifies. The scenarios share one stack (starting it costs more
 * than any one of them) and each uses a tenant of its own.
 */
import { waitUntil } from '../helpers/wait';
import { EXPECTED_EVENTS, inBatches, newTenant, startChaosStack, type ChaosStack, type HttpReply } from './chaos-stack';

let stack: ChaosStack;

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const seconds = (since: number) => Math.round((Date.now() - since) / 100) / 10;
const notCompleted = (statuses: Record<string, string>) => Object.entries(statuses).filter(([, s]) => s !== 'COMPLETED');

/** An answer during an outage: a problem document naming the trouble, never a 500 or a stack trace. */
function expectProblem(reply: HttpReply, status: number): void {
  expect(reply.type).toContain('application/problem+json');
  expect(reply.status).toBe(status);
  expect(reply.text).not.toMatch(/\s+at\s|\/src\/|node_modules/);
}

/** The figures each scenario reports, so a slow or flaky run in CI can be read from its log. */
function report(what: string, figures: Record<string, unknown>): void {
  console.info(`chaos ${what}: ${Object.entries(figures).map(([k, v]) => `${k}=${String(v)}`).join(' ')}`);
}

beforeAll(async () => {
  const began = Date.now();
  stack = await startChaosStack();
  report('stack start', { s: seconds(began) });
}, 240_000);

afterAll(async () => {
  await stack?.stop();
});

afterEach(() => {
  // A process that died without being told to is a finding in itself: say so with its output.
  const dead = [stack.facade, ...stack.workers].filter((s) => s.child.exitCode !== null && s.child.signalCode === null);
  if (dead.length) throw new Error(`a process exited on its own:\n${stack.outputs()}`);
  // So is a 500: the facade logs each one as an unhandled error.
  if (stack.facade.output().includes('"msg":"unhandled error"')) throw new Error(`the facade answered 500:\n${stack.outputs()}`);
});

test('200 runs on two workers all complete, each event audited once, while the workers are killed again and again', async () => {
  const tenant = newTenant('kill');
  const began = Date.now();
  const starting = stack.startRuns(tenant, 200, 10);
  // Awaited after the kills; a refused start fails the test there.
  starting.catch(() => undefined);

  // While the runs are being started and afterwards, a worker is killed every few seconds, the two in turn, and
  // started again; the other one carries the work meanwhile.
  const kills: { worker: number; inFlight: number; restartS: number }[] = [];
  for (let k = 0; k < 3; k++) {
    await pause(3000);
    const inFlight = await stack.countRuns(tenant, 'ExecutionStatus = "Running"');
    if (inFlight === 0) break;
    const worker = k % 2;
    await stack.killWorker(worker);
    const killedAt = Date.now();
    await stack.startWorker(worker);
    kills.push({ worker, inFlight, restartS: seconds(killedAt) });
  }
  const runIds = await starting;
  const startedIn = seconds(began);

  const statuses = await stack.awaitRuns(tenant, runIds, 300_000);
  expect(notCompleted(statuses)).toEqual([]);
  const audit = await stack.checkAudit(tenant, runIds);
  expect(audit.problems).toEqual([]);
  expect(audit.exact).toBe(200);
  expect(audit.verify).toMatchObject({ ok: true, events: 200 * EXPECTED_EVENTS.length });
  // The kills landed while runs were in flight, and cut off work the killed worker held.
  expect(kills.length).toBeGreaterThanOrEqual(3);
  expect(kills.every((k) => k.inFlight > 0)).toBe(true);
  const cut = await stack.interruptions(tenant, runIds);
  expect(cut.workflowTaskTimeouts + cut.activityRetries).toBeGreaterThan(0);
  report('worker kills', {
    runs: runIds.length,
    completed: Object.keys(statuses).length - notCompleted(statuses).length,
    kills: kills.length,
    inFlightAtKills: kills.map((k) => k.inFlight).join('/'),
    restartS: kills.map((k) => k.restartS).join('/'),
    retriedStages: audit.retriedStages,
    workflowTaskTimeouts: cut.workflowTaskTimeouts,
    activityRetries: cut.activityRetries,
    startS: startedIn,
    totalS: seconds(began),
  });
}, 420_000);

test('runs in flight complete after the Temporal dev server crashes and restarts on the same SQLite file', async () => {
  const tenant = newTenant('temporal');
  const began = Date.now();
  const runIds = await stack.startRuns(tenant, 40, 10);
  const inFlight = await stack.countRuns(tenant, 'ExecutionStatus = "Running"');
  expect(inFlight).toBeGreaterThan(0);

  await stack.temporal.stop('SIGKILL');
  const downAt = Date.now();
  let refusedS = 0;
  try {
    // Without Temporal a start cannot be made: the caller is told so, plainly (once the client's retries run out).
    const refused = await stack.startRun(tenant, 999);
    refusedS = seconds(downAt);
    expectProblem(refused, 503);
    expect(refused.json.code).toBe('temporal_unavailable');
    const ready = await stack.call('GET', '/ready');
    expectProblem(ready, 503);
    expect(ready.json.checks.temporal).toMatchObject({ ok: false });
  } finally {
    // Brought back whatever happened, so the scenarios after this one have their server.
    await pause(3000 - (Date.now() - downAt));
    await stack.temporal.start();
  }
  const downS = seconds(downAt);

  // The facade and the workers reconnect by themselves, and a new run goes through like the others.
  await waitUntil('the facade to be ready again', async () => ((await stack.call('GET', '/ready')).status === 200 ? true : undefined), 60_000, 500);
  const afterRestart = await stack.startRun(tenant, 1000);
  expect(afterRestart.status).toBe(202);
  runIds.push(afterRestart.json.runId as string);
  const statuses = await stack.awaitRuns(tenant, runIds, 240_000);
  expect(notCompleted(statuses)).toEqual([]);
  const audit = await stack.checkAudit(tenant, runIds);
  expect(audit.problems).toEqual([]);
  expect(audit.exact).toBe(runIds.length);
  expect(audit.verify).toMatchObject({ ok: true, events: runIds.length * EXPECTED_EVENTS.length });
  report('dev server restart', { runs: runIds.length, inFlightAtCrash: inFlight, startRefusedAfterS: refusedS, downS, retriedStages: audit.retriedStages, totalS: seconds(began) });
}, 300_000);

test('runs in flight complete, audited exactly once, across a ten-second PostgreSQL outage', async () => {
  const tenant = newTenant('postgres');
  const began = Date.now();
  const runIds = await stack.startRuns(tenant, 40, 10);
  const inFlight = await stack.countRuns(tenant, 'ExecutionStatus = "Running"');
  expect(inFlight).toBeGreaterThan(0);

  stack.cluster.stop();
  const downAt = Date.now();
  let retrying = 0;
  try {
    // Reading the audit trail needs the database: 503, not a 500.
    const audit503 = await stack.call('GET', '/v1/audit', { tenant, roles: ['auditor'] });
    expectProblem(audit503, 503);
    expect(audit503.json.code).toBe('database_unavailable');
    const ready = await stack.call('GET', '/ready');
    expectProblem(ready, 503);
    expect(ready.json.checks.postgres).toMatchObject({ ok: false });
    // Audit writes of the runs in flight fail and are retried: the runs wait, they do not end.
    retrying = await waitUntil('audit writes to be retried', async () => {
      const pending = await inBatches(runIds, 10, async (runId) => {
        const desc = await stack.client.workflow.getHandle(`${tenant}/${runId}`).describe();
        return (desc.raw.pendingActivities ?? []).filter((a) => a.activityType?.name === 'recordAudit' && (a.attempt ?? 0) >= 2).length;
      });
      const total = pending.reduce((a, b) => a + b, 0);
      return total > 0 ? total : undefined;
    }, 9_000, 500);
  } finally {
    await pause(10_000 - (Date.now() - downAt));
    stack.cluster.start();
  }
  const downS = seconds(downAt);

  const statuses = await stack.awaitRuns(tenant, runIds, 240_000);
  expect(notCompleted(statuses)).toEqual([]);
  const audit = await stack.checkAudit(tenant, runIds);
  expect(audit.problems).toEqual([]);
  expect(audit.exact).toBe(runIds.length);
  expect(audit.verify).toMatchObject({ ok: true, events: runIds.length * EXPECTED_EVENTS.length });
  await waitUntil('the facade to be ready again', async () => ((await stack.call('GET', '/ready')).status === 200 ? true : undefined), 60_000, 500);
  expect((await stack.call('GET', '/v1/audit', { tenant, roles: ['auditor'] })).status).toBe(200);
  report('postgres outage', { runs: runIds.length, inFlightAtStop: inFlight, auditWritesRetrying: retrying, downS, totalS: seconds(began) });
}, 300_000);

test('with Redis stopped, starts answer 503 and recover when it returns, without a restart; no run or slot is lost', async () => {
  const tenant = newTenant('redis');
  const began = Date.now();
  const before = await stack.startRuns(tenant, 30, 10);
  const inFlight = await stack.countRuns(tenant, 'ExecutionStatus = "Running"');
  expect(inFlight).toBeGreaterThan(0);

  await stack.redis.stop('SIGKILL');
  const downAt = Date.now();
  try {
    // Fail closed (the default): no start is admitted while the concurrency caps cannot be checked.
    const refused = await waitUntil('a start to be refused', async () => {
      const r = await stack.startRun(tenant, 900);
      if (r.status === 202) throw Object.assign(new Error('a run was admitted with Redis down'), { fatal: true });
      return r.status === 503 ? r : undefined;
    }, 15_000, 200);
    expectProblem(refused, 503);
    expect(refused.json).toMatchObject({ code: 'limiter_unavailable', status: 503 });
  } finally {
    await pause(6000 - (Date.now() - downAt));
    await stack.redis.start();
  }
  const downS = seconds(downAt);

  // The first start admitted after the outage is a run like the others.
  const probe = await waitUntil('starts to be admitted again', async () => {
    const r = await stack.startRun(tenant, 901);
    if (r.status !== 202 && r.status !== 503) throw Object.assign(new Error(`unexpected answer ${r.status}: ${r.text}`), { fatal: true });
    return r.status === 202 ? (r.json.runId as string) : undefined;
  }, 30_000, 250);
  const after = await stack.startRuns(tenant, 15, 10);
  const runIds = [...before, probe, ...after];
  const statuses = await stack.awaitRuns(tenant, runIds, 240_000);
  expect(notCompleted(statuses)).toEqual([]);
  const audit = await stack.checkAudit(tenant, runIds);
  expect(audit.problems).toEqual([]);
  expect(audit.exact).toBe(runIds.length);
  expect(audit.verify).toMatchObject({ ok: true, events: runIds.length * EXPECTED_EVENTS.length });
  // Every run freed its slot, those whose release fell into the outage too (the Redis keeps its data).
  await waitUntil('every slot to be released', async () => {
    const active = await stack.activeSlots(tenant);
    return active.tenant === 0 && active.pipeline === 0 ? active : undefined;
  }, 30_000, 250);
  expect(stack.facade.child.exitCode).toBeNull();
  report('redis outage', { runs: runIds.length, inFlightAtStop: inFlight, downS, totalS: seconds(began) });
}, 300_000);

