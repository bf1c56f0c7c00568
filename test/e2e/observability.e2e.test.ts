import { randomBytes } from 'node:crypto';
import { mintToken, type Role } from '../../src/facade/auth';
import { call, metricValue, scrapeMetrics } from '../helpers/http';
import { freePort, waitForHttp } from '../helpers/processes';
import { startStack, type Stack } from '../helpers/stack';
import { waitUntil } from '../helpers/wait';

// The facade starts alone: /ready must say that no worker polls, and a run started now waits in the task queue.
// Then a worker starts and takes it; the run stops at an approval and stays there for the approval backlog.

const secret = randomBytes(32).toString('hex');
const tenant = `obs-${randomBytes(3).toString('hex')}`;
const HELD = `
name: held
version: 1
description: redacts, then waits for a person
input: { type: object, required: [text], properties: { text: { type: string } } }
stages:
  - name: redact
    agent: pii-redact
    with: { text: "\${input.text}" }
  - name: review
    approval:
      roles: [approver]
      timeout: 1h
`;

let stack: Stack;
let taskQueue: string;
let base: string;
let workerMetrics: string;
let sdkMetrics: string;
let heldRunId: string;

const token = (roles: Role[]) => mintToken({ secret, issuer: 'agentry', audience: 'agentry-api', subject: 'obs-user', tenant, roles });
const status = async (roles: Role[] = ['operator']) => call(base, 'GET', '/v1/system/status', { token: await token(roles) });

beforeAll(async () => {
  stack = await startStack({
    label: 'obs',
    secret,
    pipelines: { 'held.yaml': HELD },
    withShippedPipelines: true,
    env: {
      BACKUP_SCHEDULE: 'off',
      // Any wait for an approval is an issue, and a warning level no process stays under for memory.
      STATUS_THRESHOLDS: JSON.stringify({ approvalAgeSeconds: { warning: 0, critical: 86_400 }, memoryBytes: { warning: 1024, critical: 1024 ** 4 } }),
    },
    // Without a worker the facade is waited for on /health: /ready answers 503 by design.
    workers: 0,
  });
  ({ base, taskQueue } = stack);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

test('without a worker, /ready answers 503 naming the workers check, and the backlog shows on /metrics and in the status', async () => {
  const ready = await waitUntil('/ready to report the other dependencies up', async () => {
    const r = await call(base, 'GET', '/ready');
    return r.json?.checks?.temporal?.ok && r.json.checks.postgres?.ok ? r : undefined;
  });
  expect(ready.status).toBe(503);
  expect(ready.type).toContain('application/problem+json');
  expect(ready.json).toMatchObject({ status: 503, code: 'not_ready', detail: 'failing checks: workers' });
  expect(ready.json.checks.workers).toEqual({
    ok: false,
    detail: `no worker polled workflow and activity tasks of task queue ${taskQueue} in the last 120 s`,
  });
  expect(ready.json.checks.limiter).toMatchObject({ ok: true, mode: 'redis' });

  const started = await call(base, 'POST', '/v1/pipelines/held/runs', { token: await token(['operator']), body: { input: { text: 'mail me at sam@example.org' } } });
  expect(started.status).toBe(202);
  heldRunId = started.json.runId;

  // The run's first workflow task waits for a worker.
  const backlog = await waitUntil('the workflow backlog to show', async () => {
    const v = await metricValue(`${base}/metrics`, 'temporal_task_queue_backlog', { task_queue: taskQueue, task_type: 'workflow' });
    return v >= 1 ? v : undefined;
  });
  expect(backlog).toBe(1);
  const samples = await scrapeMetrics(`${base}/metrics`);
  const backlogSeries = samples.filter((s) => s.name === 'temporal_task_queue_backlog');
  // Bounded labels: the configured task queue only, one series per task type.
  expect(backlogSeries.map((s) => [s.labels.task_queue, s.labels.task_type]).sort()).toEqual([
    [taskQueue, 'activity'],
    [taskQueue, 'workflow'],
  ]);
  expect(samples.find((s) => s.name === 'temporal_task_queue_pollers' && s.labels.task_type === 'workflow')?.value).toBe(0);

  const st = await status();
  expect(st.status).toBe(200);
  expect(st.json.status).toBe('critical');
  const ids = st.json.issues.map((i: { id: string }) => i.id);
  expect(ids).toEqual(expect.arrayContaining([`workers:${taskQueue}:workflow`, `workers:${taskQueue}:activity`]));
  expect(st.json.issues.find((i: { id: string }) => i.id === `workers:${taskQueue}:workflow`)).toMatchObject({ severity: 'critical', value: 0, threshold: 1 });
}, 60_000);

test('once a worker polls, /ready answers 200 and the backlog drains', async () => {
  const sdkPort = await freePort();
  const worker = await stack.startWorker({ WORKER_SDK_METRICS_PORT: String(sdkPort), AGENT_HEALTH_INTERVAL_MS: '1000' });
  workerMetrics = `${worker.url}/metrics`;
  sdkMetrics = `http://127.0.0.1:${sdkPort}/metrics`;
  await waitForHttp(`${base}/ready`, worker.service, 120_000);
  const ready = await call(base, 'GET', '/ready');
  expect(ready.status).toBe(200);
  expect(ready.json.checks.workers.ok).toBe(true);
  expect(ready.json.checks.workers.detail).toMatch(new RegExp(`^task queue ${taskQueue}: workflow tasks: [1-9]\\d* poller\\(s\\), activity tasks: [1-9]\\d* poller\\(s\\)$`));

  await waitUntil('the workflow backlog to drain', async () =>
    (await metricValue(`${base}/metrics`, 'temporal_task_queue_backlog', { task_queue: taskQueue, task_type: 'workflow' })) === 0 ? true : undefined,
  );
  expect(await metricValue(`${base}/metrics`, 'temporal_task_queue_pollers', { task_queue: taskQueue, task_type: 'activity' })).toBeGreaterThanOrEqual(1);
}, 150_000);

test('a run waiting for an approval shows in approval_backlog_oldest_seconds and raises an issue past the level', async () => {
  await waitUntil('the run to wait for its approval', async () => {
    const r = await call(base, 'GET', `/v1/runs/${heldRunId}`, { token: await token(['viewer']) });
    return r.json?.status === 'awaiting-approval' ? true : undefined;
  });
  const oldest = await waitUntil('the approval backlog gauge', async () => {
    const v = await metricValue(`${base}/metrics`, 'approval_backlog_oldest_seconds', { workflow_name: 'held' });
    return v > 0 ? v : undefined;
  }, 30_000, 500);
  // The run started within this test file: its age is bounded by the file's own run time.
  expect(oldest).toBeLessThan(600);
  expect(await metricValue(`${base}/metrics`, 'approval_backlog_runs', { workflow_name: 'held' })).toBe(1);
  const samples = await scrapeMetrics(`${base}/metrics`);
  // Every loaded pipeline has its series (0 when nothing waits), and nothing else does.
  expect(samples.filter((s) => s.name === 'approval_backlog_oldest_seconds').map((s) => s.labels.workflow_name).sort()).toEqual(['held', 'support-triage']);
  expect(samples.find((s) => s.name === 'approval_backlog_oldest_seconds' && s.labels.workflow_name === 'support-triage')?.value).toBe(0);

  const st = await waitUntil('the approval issue', async () => {
    const r = await status(['admin']);
    return r.json.issues.some((i: { id: string }) => i.id === 'approval-backlog:held') ? r : undefined;
  });
  const issue = st.json.issues.find((i: { id: string }) => i.id === 'approval-backlog:held');
  expect(issue).toMatchObject({ severity: 'warning', threshold: 0, recommendation: expect.stringContaining('approvers of held') });
  expect(issue.value).toBeGreaterThan(0);
  expect(issue.summary).toMatch(/^1 run\(s\) of held wait for an approval, the oldest for /);
  // The memory level set far below any process: its issue carries the measured value.
  expect(st.json.issues.find((i: { id: string }) => i.id === 'memory')).toMatchObject({ severity: 'warning', threshold: 1024, value: expect.any(Number) });
  expect(st.json.issues.find((i: { id: string }) => i.id === 'memory').value).toBeGreaterThan(10 * 1024 * 1024);
  // The worker polls now: no workers issue is left.
  expect(st.json.issues.some((i: { id: string }) => i.id.startsWith('workers:'))).toBe(false);
}, 60_000);

test('the worker serves the Temporal SDK metrics on their own port and agent_health on its /metrics', async () => {
  const sdk = await waitUntil('SDK metrics', async () => {
    const samples = await scrapeMetrics(sdkMetrics);
    return samples.some((s) => s.name === 'temporal_worker_task_slots_available') ? samples : undefined;
  });
  expect(sdk.filter((s) => s.name === 'temporal_worker_task_slots_available').map((s) => s.labels.task_queue)).toContain(taskQueue);
  expect(sdk.some((s) => s.name === 'temporal_num_pollers' && s.labels.task_queue === taskQueue)).toBe(true);
  // Kept apart: the worker's own registry carries no temporal_ series and the SDK port no prom-client ones.
  const own = await scrapeMetrics(workerMetrics);
  expect(own.some((s) => s.name.startsWith('temporal_'))).toBe(false);
  expect(sdk.some((s) => s.name === 'agent_health' || s.name === 'process_cpu_seconds_total')).toBe(false);

  const health = own.filter((s) => s.name === 'agent_health');
  expect(Object.fromEntries(health.map((s) => [s.labels.agent_name, s.value]))).toMatchObject({
    'intent-classifier': 1,
    'pii-redact': 1,
    lookup: 1,
  });
  expect(own.some((s) => s.name === 'agent_health_check_duration_seconds' && s.labels.agent_name === 'intent-classifier')).toBe(true);
}, 60_000);

test('GET /v1/system/status needs operator or admin, answers problem+json otherwise, and is described in the OpenAPI document', async () => {
  const viewer = await status(['viewer']);
  expect(viewer.status).toBe(403);
  expect(viewer.type).toContain('application/problem+json');
  expect(viewer.json).toMatchObject({ status: 403, code: 'forbidden', detail: 'reading the system status needs one of the roles: operator, admin' });
  const anonymous = await call(base, 'GET', '/v1/system/status');
  expect(anonymous.status).toBe(401);
  expect(anonymous.type).toContain('application/problem+json');

  const st = await status(['operator']);
  expect(st.status).toBe(200);
  expect(Object.keys(st.json).sort()).toEqual(['checkedAt', 'issues', 'status', 'thresholds']);
  expect(Number.isNaN(Date.parse(st.json.checkedAt))).toBe(false);
  expect(st.json.thresholds.approvalAgeSeconds).toEqual({ warning: 0, critical: 86_400 });
  expect(st.json.thresholds.taskQueueBacklog).toEqual({ warning: 100, critical: 1000 });
  for (const issue of st.json.issues) {
    expect(Object.keys(issue).sort()).toEqual(['id', 'recommendation', 'severity', 'summary', 'threshold', 'value']);
    expect(['info', 'warning', 'critical']).toContain(issue.severity);
  }
  expect(st.json.status).toBe('warning');

  const doc = await call(base, 'GET', '/openapi.json');
  expect(doc.json.paths['/v1/system/status'].get.responses).toHaveProperty('200');
  expect(doc.json.components.schemas.SystemStatus.required).toEqual(['status', 'checkedAt', 'issues', 'thresholds']);
});
