import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createBuiltinAgents } from '../../src/agents';
import { createAuditStore, isSealed, type StoredAuditEvent } from '../../src/audit';
import type { ApprovalRecord, RunProgress, StageState, Transition } from '../../src/contracts';
import { createApp, createAuthenticator, createRequestLimiter, type AppDeps } from '../../src/facade';
import { mintToken, type Role } from '../../src/facade/auth';
import { loadPipelineCatalog } from '../../src/pipelines/pipeline-catalog';
import { createInputChecker } from '../../src/security';
import { createHttpMetrics, createLogger, createRegistry } from '../../src/telemetry';
import { TEST_AUDIT_SEAL_KEYS, unsealed } from '../helpers/audit-seal';
import * as http from '../helpers/http';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres';
import { freePort, spawnService, waitForHttp, type Service } from '../helpers/processes';
import { startTemporal } from '../helpers/temporal';
import { waitUntil } from '../helpers/wait';

const ROOT = resolve(__dirname, '..', '..');
const secret = randomBytes(32).toString('hex');
const tenant = `rc-${randomBytes(3).toString('hex')}`;
const otherTenant = `${tenant}-other`;
let env: TestWorkflowEnvironment;
let db: TestDatabase;
let facade: Service;
let worker: Service;
let base: string;
let pipelinesDir: string;

/**
 * A pipeline of built-in agents (the worker process hosts no test agents) that always stops at two approval
 * stages, declares a signal and compensates on cancel. `access.approve` admits auditors, the stages do not: the
 * route's role check and the run's own are told apart.
 */
const GATED = `
name: gated
version: 1
description: redacts, waits for two approvals, routes; exercises the run-control API
input: { type: object, required: [text], properties: { text: { type: string } } }
access:
  start: [operator, admin]
  read: [viewer, operator, approver, admin, auditor]
  approve: [approver, admin, auditor]
  signal: [operator, admin]
  cancel: [operator, admin]
signals: [priority]
limits: { maxSignals: 3, maxSignalBytes: 1024 }
stages:
  - name: redact
    agent: pii-redact
    with: { text: "\${input.text}" }
  - name: first-check
    approval:
      roles: [approver]
      timeout: 1h
  - name: review
    approval:
      roles: [approver]
      timeout: 1h
  - name: route
    agent: lookup
    with: { key: "\${review.decision}", default: other, table: { approved: ship } }
onCancel:
  - name: undo
    agent: lookup
    with: { key: cancelled, table: { cancelled: undone } }
`;

type Who = 'starter' | 'approver' | 'viewer' | 'auditor' | 'self' | 'foreign';
const PRINCIPALS: Record<Who, { sub: string; roles: Role[]; tenant?: string }> = {
  starter: { sub: 'rc-starter', roles: ['operator'] },
  approver: { sub: 'rc-approver', roles: ['approver'] },
  viewer: { sub: 'rc-viewer', roles: ['viewer'] },
  auditor: { sub: 'rc-auditor', roles: ['auditor'] },
  // Starts runs and holds the approver role too: only the self-approval rule stands in the way.
  self: { sub: 'rc-self', roles: ['operator', 'approver'] },
  foreign: { sub: 'rc-foreign', roles: ['admin'], tenant: otherTenant },
};
const token = (who: Who) =>
  mintToken({ secret, issuer: 'agentry', audience: 'agentry-api', subject: PRINCIPALS[who].sub, tenant: PRINCIPALS[who].tenant ?? tenant, roles: PRINCIPALS[who].roles });

async function call(method: string, path: string, opts: { as?: Who; body?: unknown; headers?: Record<string, string>; at?: string } = {}) {
  return http.call(opts.at ?? base, method, path, { token: opts.as ? await token(opts.as) : undefined, body: opts.body, headers: opts.headers });
}

async function startRun(pipeline: string, text: string, as: Who = 'starter'): Promise<string> {
  const res = await call('POST', `/v1/pipelines/${pipeline}/runs`, { as, body: { input: { text } } });
  expect(res.status).toBe(202);
  return res.json.runId as string;
}

type RunView = RunProgress & { outputs?: Record<string, unknown>; error?: unknown };

async function getRun(runId: string): Promise<RunView> {
  const r = await call('GET', `/v1/runs/${runId}`, { as: 'viewer' });
  expect(r.status).toBe(200);
  return r.json as RunView;
}

const stageOf = (run: RunView, name: string) => run.stages.find((s: StageState) => s.name === name);

async function awaitingApproval(runId: string, stage: string): Promise<RunView> {
  return waitUntil(`${runId}: stage ${stage} to await approval`, async () => {
    const run = await getRun(runId);
    return stageOf(run, stage)?.status === 'awaiting-approval' ? run : undefined;
  }, 30_000, 100);
}

async function runToEnd(runId: string): Promise<RunView> {
  return waitUntil(`run ${runId} to finish`, async () => {
    const r = await call('GET', `/v1/runs/${runId}`, { as: 'viewer' });
    return r.status === 200 && r.json.temporalStatus !== 'RUNNING' ? (r.json as RunView) : undefined;
  }, 60_000, 200);
}

const approve = (runId: string, stage: string, as: Who = 'approver', extra: Record<string, unknown> = {}) =>
  call('POST', `/v1/runs/${runId}/approvals`, { as, body: { stage, decision: 'approve', ...extra } });

// The processes seal `reason`, `comment`, `ip` and `userAgent` (AUDIT_SEAL_KEYS); assertions read them opened.
const auditOf = async (runId: string, t = tenant): Promise<StoredAuditEvent[]> => (await createAuditStore(db.pool).listByRun(t, runId)).map(unsealed);

interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/** Reads an event stream until the server ends it (or the deadline passes), keeping every event and comment. */
async function readEvents(path: string, opts: { as?: Who; headers?: Record<string, string>; timeoutMs?: number; at?: string } = {}) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), opts.timeoutMs ?? 60_000);
  const events: SseEvent[] = [];
  const comments: string[] = [];
  try {
    const res = await fetch(`${opts.at ?? base}${path}`, {
      headers: { authorization: `Bearer ${await token(opts.as ?? 'viewer')}`, ...opts.headers },
      signal: abort.signal,
    });
    if (res.status !== 200 || !res.body) return { status: res.status, headers: res.headers, events, comments, body: await res.text() };
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event: SseEvent = { event: 'message', data: '' };
        let isEvent = false;
        for (const line of frame.split('\n')) {
          if (line.startsWith(':')) comments.push(line.slice(1).trim());
          else {
            const [field, ...rest] = line.split(':');
            const value = rest.join(':').replace(/^ /, '');
            isEvent = true;
            if (field === 'id') event.id = value;
            else if (field === 'event') event.event = value;
            else if (field === 'data') event.data += event.data ? `\n${value}` : value;
          }
        }
        if (isEvent) events.push(event);
      }
    }
    return { status: res.status, headers: res.headers, events, comments, body: '' };
  } catch (err) {
    if (abort.signal.aborted) throw new Error(`event stream ${path} did not end in time; got ${JSON.stringify(events)}`);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

const transitionsOf = (events: SseEvent[]) => events.filter((e) => e.event === 'transition').map((e) => ({ id: e.id, t: JSON.parse(e.data) as Transition }));

beforeAll(async () => {
  // The shipped definitions plus the test pipeline, so support-triage runs exactly as it ships.
  pipelinesDir = mkdtempSync(join(tmpdir(), 'agentry-rc-pipelines-'));
  const shipped = join(ROOT, 'src/pipelines/definitions');
  for (const f of readdirSync(shipped)) copyFileSync(join(shipped, f), join(pipelinesDir, f));
  writeFileSync(join(pipelinesDir, 'gated.yaml'), GATED);

  [env, db] = await Promise.all([startTemporal(), createTestDatabase()]);
  const [port, metricsPort] = await Promise.all([freePort(), freePort()]);
  const common = {
    DATABASE_URL: db.url,
    TEMPORAL_ADDRESS: env.address,
    TEMPORAL_TASK_QUEUE: `e2e-${tenant}`,
    REDIS_URL: 'redis://127.0.0.1:6379',
    JWT_SECRET: secret,
    PIPELINES_DIR: pipelinesDir,
    RATE_LIMIT_PER_MINUTE: '10000',
    AGENTRY_STATE_DIR: mkdtempSync(join(tmpdir(), 'agentry-rc-')),
    AUDIT_SEAL_KEYS: TEST_AUDIT_SEAL_KEYS,
  };
  worker = spawnService('src/worker.ts', { ...common, WORKER_METRICS_PORT: String(metricsPort) });
  facade = spawnService('src/server.ts', { ...common, PORT: String(port) });
  base = `http://127.0.0.1:${port}`;
  await Promise.all([waitForHttp(`${base}/ready`, facade), waitForHttp(`http://127.0.0.1:${metricsPort}/health`, worker)]);
});

afterAll(async () => {
  await Promise.all([facade?.stop(), worker?.stop()]);
  await db?.drop();
  await env?.teardown();
});

describe('approvals', () => {
  test('a support-triage ticket the classifier is unsure of waits for review, and an approval over HTTP completes it', async () => {
    const runId = await startRun('support-triage', 'zxqv blorp wuggle frimp');
    const waiting = await waitUntil(`${runId} to wait for an approval`, async () => {
      const run = await getRun(runId);
      if (run.status === 'completed' || run.status === 'failed') throw Object.assign(new Error(`run ended ${run.status} without waiting for review`), { fatal: true });
      return run.stages.find((s) => s.status === 'awaiting-approval') ? run : undefined;
    }, 30_000, 100);
    expect(waiting.status).toBe('awaiting-approval');
    const stage = waiting.stages.find((s) => s.status === 'awaiting-approval')!.name;
    expect(stage).toBe('review');

    const res = await approve(runId, stage, 'approver', { comment: 'checked by hand' });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ stage, decision: 'approved', approver: PRINCIPALS.approver.sub, comment: 'checked by hand' });
    expect(typeof (res.json as ApprovalRecord).decidedAt).toBe('number');

    const run = await runToEnd(runId);
    expect(run.status).toBe('completed');
    expect(stageOf(run, stage)?.status).toBe('completed');
    expect(run.approvals).toEqual([expect.objectContaining({ stage, decision: 'approved', approver: PRINCIPALS.approver.sub })]);
    const events = await auditOf(runId);
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['approval.requested', 'approval.granted', 'run.completed']));
    expect(events.find((e) => e.type === 'approval.granted')).toMatchObject({ stage, actor: PRINCIPALS.approver.sub });
    await expect(createAuditStore(db.pool).verify(tenant)).resolves.toMatchObject({ ok: true });
  });

  test('a caller without an approve role gets 403 and the refusal is in the audit trail', async () => {
    const runId = await startRun('gated', 'please check');
    await awaitingApproval(runId, 'first-check');

    const requestId = `rc-deny-${randomBytes(4).toString('hex')}`;
    const denied = await call('POST', `/v1/runs/${runId}/approvals`, {
      as: 'viewer',
      body: { stage: 'first-check', decision: 'approve' },
      headers: { 'X-Request-Id': requestId },
    });
    expect(denied.status).toBe(403);
    expect(denied.type).toContain('application/problem+json');
    expect(denied.json.code).toBe('forbidden');
    expect(denied.headers.get('x-request-id')).toBe(requestId);

    // Holds the pipeline's approve role but not the stage's own: refused by the run, audited by the facade.
    const lacking = await approve(runId, 'first-check', 'auditor');
    expect(lacking.status).toBe(403);
    expect(lacking.json.code).toBe('forbidden');

    const events = await auditOf(runId);
    const denials = events.filter((e) => e.type === 'security.denied');
    expect(denials).toEqual([
      expect.objectContaining({
        id: `facade:${requestId}`,
        actor: PRINCIPALS.viewer.sub,
        pipeline: 'gated',
        pipelineVersion: 1,
        stage: 'first-check',
        data: expect.objectContaining({ action: 'approve', reason: 'role_required', stage: 'first-check' }),
      }),
      expect.objectContaining({
        id: `facade:${lacking.headers.get('x-request-id')}`,
        actor: PRINCIPALS.auditor.sub,
        data: expect.objectContaining({ action: 'approve', reason: 'approver_lacks_role', stage: 'first-check' }),
      }),
    ]);
    expect(denials[0].definitionHash).toMatch(/^[0-9a-f]{64}$/);

    // A client reusing its X-Request-Id cannot fold a second denial into the first record.
    const repeat = await call('POST', `/v1/runs/${runId}/approvals`, {
      as: 'viewer',
      body: { stage: 'first-check', decision: 'reject' },
      headers: { 'X-Request-Id': requestId },
    });
    expect(repeat.status).toBe(403);
    const afterRepeat = (await auditOf(runId)).filter((e) => e.type === 'security.denied');
    expect(afterRepeat).toHaveLength(3);
    expect(afterRepeat[2].id.startsWith(`facade:${requestId}:`)).toBe(true);
    // Neither refusal touched the run.
    expect(stageOf(await getRun(runId), 'first-check')?.status).toBe('awaiting-approval');
    await call('POST', `/v1/runs/${runId}/cancel`, { as: 'starter', body: { reason: 'test cleanup' } });
  });

  test('the principal that started a run may not approve it', async () => {
    const runId = await startRun('gated', 'my own run', 'self');
    await awaitingApproval(runId, 'first-check');
    const res = await approve(runId, 'first-check', 'self');
    expect(res.status).toBe(403);
    expect(res.json.code).toBe('self_approval_forbidden');
    const denial = (await auditOf(runId)).find((e) => e.type === 'security.denied');
    expect(denial).toMatchObject({ actor: PRINCIPALS.self.sub, data: expect.objectContaining({ action: 'approve', reason: 'self_approval' }) });
    expect(stageOf(await getRun(runId), 'first-check')?.status).toBe('awaiting-approval');
    await call('POST', `/v1/runs/${runId}/cancel`, { as: 'starter', body: { reason: 'test cleanup' } });
  });

  test('an approval sent before its stage is reached is kept and applied once, without waiting', async () => {
    const runId = await startRun('gated', 'early bird');
    await awaitingApproval(runId, 'first-check');

    const early = await approve(runId, 'review');
    expect(early.status).toBe(200);
    expect(early.json).toMatchObject({ stage: 'review', decision: 'approved', approver: PRINCIPALS.approver.sub });
    expect(early.json.appliedAt).toBeUndefined();
    const again = await approve(runId, 'review');
    expect(again.status).toBe(409);
    expect(again.json.code).toBe('approval_not_pending');

    expect((await approve(runId, 'first-check')).status).toBe(200);
    const run = await runToEnd(runId);
    expect(run.status).toBe('completed');
    expect(run.outputs?.route).toMatchObject({ value: 'ship' });
    const review = run.approvals.find((a) => a.stage === 'review');
    expect(review).toMatchObject({ decision: 'approved', approver: PRINCIPALS.approver.sub });
    expect(review!.appliedAt).toBeGreaterThanOrEqual(review!.decidedAt);
    expect(run.approvals.filter((a) => a.stage === 'review')).toHaveLength(1);
    // The review stage took the decision it already had: no second approval was needed, and it was granted once.
    const events = await auditOf(runId);
    expect(events.find((e) => e.type === 'approval.requested' && e.stage === 'review')?.data).toMatchObject({ decidedEarly: true });
    expect(events.filter((e) => e.type === 'approval.granted' && e.stage === 'review')).toHaveLength(1);
  });

  test('an unknown stage is 404 and a malformed decision is 400', async () => {
    const runId = await startRun('gated', 'typos');
    await awaitingApproval(runId, 'first-check');
    const unknown = await approve(runId, 'no-such-stage');
    expect(unknown.status).toBe(404);
    expect(unknown.json.code).toBe('unknown_stage');
    const notApproval = await approve(runId, 'redact');
    expect(notApproval.status).toBe(404);
    expect(notApproval.json.code).toBe('unknown_stage');

    for (const body of [
      { stage: 'first-check', decision: 'maybe' },
      { stage: 'first-check', decision: 'approve', comment: 'x'.repeat(2001) },
      { stage: 'First Check! <script>', decision: 'approve' },
      { stage: 'a'.repeat(65), decision: 'approve' },
      { stage: 'first-check', decision: 'approve', approver: { subject: 'someone-else' } },
      { decision: 'approve' },
    ]) {
      const res = await call('POST', `/v1/runs/${runId}/approvals`, { as: 'approver', body });
      expect(res.status).toBe(400);
      expect(res.json.code).toBe('validation_failed');
    }
    expect(stageOf(await getRun(runId), 'first-check')?.status).toBe('awaiting-approval');
    await call('POST', `/v1/runs/${runId}/cancel`, { as: 'starter', body: { reason: 'test cleanup' } });
  });
});

describe('signals', () => {
  test('a declared signal is delivered; an undeclared or reserved name is 404; a role-less caller is 403 and audited', async () => {
    const runId = await startRun('gated', 'signal me');
    await awaitingApproval(runId, 'first-check');

    const sent = await call('POST', `/v1/runs/${runId}/signals/priority`, { as: 'starter', body: { payload: { level: 'high' } } });
    expect(sent.status).toBe(202);
    expect(sent.json).toMatchObject({ runId, signal: 'priority' });
    const run = await waitUntil('the signal to be recorded', async () => {
      const r = await getRun(runId);
      return r.signals.length > 0 ? r : undefined;
    });
    expect(run.signals).toEqual([expect.objectContaining({ name: 'priority', actor: PRINCIPALS.starter.sub })]);
    expect((await call('POST', `/v1/runs/${runId}/signals/priority`, { as: 'starter' })).status).toBe(202);

    for (const name of ['undeclared', 'cancel', 'approve']) {
      const res = await call('POST', `/v1/runs/${runId}/signals/${name}`, { as: 'starter', body: { payload: {} } });
      expect(res.status).toBe(404);
      expect(res.json.code).toBe('unknown_signal');
    }
    const bad = await call('POST', `/v1/runs/${runId}/signals/priority`, { as: 'starter', body: { payload: 'high' } });
    expect(bad.status).toBe(400);

    const denied = await call('POST', `/v1/runs/${runId}/signals/priority`, { as: 'viewer', body: { payload: {} } });
    expect(denied.status).toBe(403);
    expect(denied.json.code).toBe('forbidden');
    // The workflow audits each signal as it handles it: the second one may still be on its way.
    const events = await waitUntil('both signals to be audited', async () => {
      const all = await auditOf(runId);
      return all.filter((e) => e.type === 'signal.received').length >= 2 ? all : undefined;
    });
    expect(events.find((e) => e.type === 'security.denied')).toMatchObject({
      actor: PRINCIPALS.viewer.sub,
      data: expect.objectContaining({ action: 'signal', reason: 'role_required', signal: 'priority' }),
    });
    expect(events.filter((e) => e.type === 'signal.received')).toHaveLength(2);
    await call('POST', `/v1/runs/${runId}/cancel`, { as: 'starter', body: { reason: 'test cleanup' } });
  });

  test('a run takes limits.maxSignals signals of limits.maxSignalBytes at most: more is refused and never reaches its history', async () => {
    const runId = await startRun('gated', 'flood me');
    await awaitingApproval(runId, 'first-check');
    const signal = (payload: Record<string, unknown>) => call('POST', `/v1/runs/${runId}/signals/priority`, { as: 'starter', body: { payload } });

    const big = await signal({ blob: 'x'.repeat(1100) });
    expect(big.status).toBe(413);
    expect(big.json).toMatchObject({ code: 'payload_too_large', errors: [{ path: '/payload', message: expect.stringMatching(/^is 1\d{3} bytes of JSON, more than the 1024/) }] });
    // Each answer comes once the run has recorded the signal.
    for (let n = 1; n <= 3; n++) expect((await signal({ n })).json).toMatchObject({ signal: 'priority', received: n, max: 3 });
    const over = await signal({ n: 4 });
    expect(over.status).toBe(409);
    expect(over.json).toMatchObject({ code: 'signal_limit_reached', detail: 'the run has received the 3 signals it takes (limits.maxSignals)' });
    expect((await auditOf(runId)).filter((e) => e.type === 'signal.received')).toHaveLength(3);

    // Sent straight to Temporal past the limit, a signal is only counted.
    await env.client.workflow.getHandle(`${tenant}/${runId}`).signal('priority', { actor: 'cli-user', payload: { n: 5 } });
    const run = await waitUntil('the dropped signal to be counted', async () => {
      const r = await getRun(runId);
      return r.signalsDropped === 1 ? r : undefined;
    });
    expect(run.signals.map((s) => s.actor)).toEqual([PRINCIPALS.starter.sub, PRINCIPALS.starter.sub, PRINCIPALS.starter.sub]);
    expect((await auditOf(runId)).filter((e) => e.type === 'signal.received')).toHaveLength(3);
    await call('POST', `/v1/runs/${runId}/cancel`, { as: 'starter', body: { reason: 'test cleanup' } });
  });
});

describe('cancellation', () => {
  test('cancel ends the run cancelled, compensates, and the audit trail names who cancelled and why', async () => {
    const runId = await startRun('gated', 'cancel me');
    await awaitingApproval(runId, 'first-check');

    const denied = await call('POST', `/v1/runs/${runId}/cancel`, { as: 'approver', body: { reason: 'not mine to cancel' } });
    expect(denied.status).toBe(403);
    for (const body of [{}, { reason: '' }, { reason: 'x'.repeat(501) }, { reason: 'ok', force: true }]) {
      const res = await call('POST', `/v1/runs/${runId}/cancel`, { as: 'starter', body });
      expect(res.status).toBe(400);
    }

    const res = await call('POST', `/v1/runs/${runId}/cancel`, { as: 'starter', body: { reason: 'customer withdrew the ticket' } });
    expect(res.status).toBe(202);
    expect(res.json).toEqual({ runId, status: 'cancelling' });

    const run = await runToEnd(runId);
    expect(run.status).toBe('cancelled');
    expect(run.cancellation).toEqual({ actor: PRINCIPALS.starter.sub, reason: 'customer withdrew the ticket' });
    expect(stageOf(run, 'first-check')?.status).toBe('cancelled');
    expect(stageOf(run, 'route')?.status).not.toBe('completed');
    expect(stageOf(run, 'undo')?.status).toBe('completed');

    const events = await auditOf(runId);
    const cancelled = events.find((e) => e.type === 'run.cancelled');
    expect(cancelled).toMatchObject({ actor: PRINCIPALS.starter.sub, data: expect.objectContaining({ reason: 'customer withdrew the ticket' }) });
    expect(events.find((e) => e.type === 'security.denied')).toMatchObject({
      actor: PRINCIPALS.approver.sub,
      data: expect.objectContaining({ action: 'cancel', reason: 'role_required' }),
    });
    // Stored sealed, by the worker (the cancel reason) and by the facade (the denial, with the caller's address).
    const stored = await createAuditStore(db.pool).listByRun(tenant, runId);
    const denial = stored.find((e) => e.type === 'security.denied')!;
    expect([stored.find((e) => e.type === 'run.cancelled')!.data.reason, denial.data.reason, denial.data.ip].every(isSealed)).toBe(true);
    await expect(createAuditStore(db.pool).verify(tenant)).resolves.toMatchObject({ ok: true });

    const listed = await waitUntil('the run to be listed as cancelled', async () => {
      const r = await call('GET', '/v1/runs?pipeline=gated&status=cancelled', { as: 'viewer' });
      return r.json.runs.some((x: { runId: string }) => x.runId === runId) ? true : undefined;
    });
    expect(listed).toBe(true);
  });

  test('approve, signal and cancel on a finished run are 409 run_completed', async () => {
    const runId = await startRun('gated', 'done already');
    await awaitingApproval(runId, 'first-check');
    expect((await approve(runId, 'first-check')).status).toBe(200);
    await awaitingApproval(runId, 'review');
    expect((await approve(runId, 'review')).status).toBe(200);
    expect((await runToEnd(runId)).status).toBe('completed');

    const responses = [
      await approve(runId, 'review'),
      await call('POST', `/v1/runs/${runId}/signals/priority`, { as: 'starter', body: { payload: { level: 'low' } } }),
      await call('POST', `/v1/runs/${runId}/cancel`, { as: 'starter', body: { reason: 'too late' } }),
    ];
    for (const r of responses) {
      expect(r.status).toBe(409);
      expect(r.json.code).toBe('run_completed');
    }
  });
});

describe('run lookup', () => {
  test('an unknown run is 404 on every run-scoped route', async () => {
    for (const runId of ['gated/does-not-exist', 'no-such-pipeline/abc', 'gated/bad%20id']) {
      const results = [
        await call('GET', `/v1/runs/${runId}`, { as: 'viewer' }),
        await approve(runId, 'first-check'),
        await call('POST', `/v1/runs/${runId}/signals/priority`, { as: 'starter', body: {} }),
        await call('POST', `/v1/runs/${runId}/cancel`, { as: 'starter', body: { reason: 'x' } }),
        await call('GET', `/v1/runs/${runId}/events`, { as: 'viewer' }),
      ];
      for (const r of results) {
        expect(r.status).toBe(404);
        expect(r.json.code).toBe('not_found');
      }
    }
  });

  test("another tenant's run is not found, whatever the caller's roles, and is left untouched", async () => {
    const runId = await startRun('gated', 'tenant isolation');
    await awaitingApproval(runId, 'first-check');
    const results = [
      await approve(runId, 'first-check', 'foreign'),
      await call('POST', `/v1/runs/${runId}/signals/priority`, { as: 'foreign', body: { payload: {} } }),
      await call('POST', `/v1/runs/${runId}/cancel`, { as: 'foreign', body: { reason: 'hostile' } }),
      await call('GET', `/v1/runs/${runId}/events`, { as: 'foreign' }),
    ];
    for (const r of results) {
      expect(r.status).toBe(404);
      expect(r.json.code).toBe('not_found');
    }
    const run = await getRun(runId);
    expect(stageOf(run, 'first-check')?.status).toBe('awaiting-approval');
    expect(run.signals).toEqual([]);
    expect(run.cancellation).toBeUndefined();
    expect(await auditOf(runId, otherTenant)).toEqual([]);
    await call('POST', `/v1/runs/${runId}/cancel`, { as: 'starter', body: { reason: 'test cleanup' } });
  });
});

describe('events', () => {
  test('the stream delivers every transition in order, then end; resuming with Last-Event-ID sends only the rest', async () => {
    const runId = await startRun('gated', 'watch me');
    const live = readEvents(`/v1/runs/${runId}/events`);
    await awaitingApproval(runId, 'first-check');
    expect((await approve(runId, 'first-check')).status).toBe(200);
    await awaitingApproval(runId, 'review');
    expect((await approve(runId, 'review')).status).toBe(200);
    const stream = await live;

    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toContain('text/event-stream');
    expect(stream.headers.get('cache-control')).toBe('no-cache');
    expect(stream.headers.get('x-accel-buffering')).toBe('no');

    const run = await runToEnd(runId);
    const sent = transitionsOf(stream.events);
    expect(sent.map((s) => s.t)).toEqual(run.transitions);
    expect(sent.map((s) => Number(s.id))).toEqual(run.transitions.map((t) => t.seq));
    expect(run.transitions.map((t) => t.seq)).toEqual(run.transitions.map((_, i) => i + 1));
    expect(sent.some((s) => s.t.stage === 'first-check' && s.t.status === 'awaiting-approval')).toBe(true);
    const last = stream.events[stream.events.length - 1];
    expect(last.event).toBe('end');
    expect(JSON.parse(last.data)).toMatchObject({ status: 'completed', runId });

    const k = Math.floor(run.transitions.length / 2);
    const resumed = await readEvents(`/v1/runs/${runId}/events`, { headers: { 'Last-Event-ID': String(k) } });
    expect(transitionsOf(resumed.events).map((s) => s.t)).toEqual(run.transitions.slice(k));
    expect(resumed.events[resumed.events.length - 1].event).toBe('end');

    const byQuery = await readEvents(`/v1/runs/${runId}/events?lastEventId=${run.transitions.length}`);
    expect(byQuery.events.map((e) => e.event)).toEqual(['end']);

    const bad = await readEvents(`/v1/runs/${runId}/events`, { headers: { 'Last-Event-ID': 'yesterday' } });
    expect(bad.status).toBe(400);
    const badQuery = await call('GET', `/v1/runs/${runId}/events?lastEventId=x`, { as: 'viewer' });
    expect(badQuery.json).toMatchObject({ code: 'validation_failed', errors: [{ path: '/lastEventId' }] });
    const twice = await call('GET', `/v1/runs/${runId}/events?lastEventId=1&lastEventId=2`, { as: 'viewer' });
    expect(twice.json).toMatchObject({ code: 'validation_failed', errors: [{ path: '/lastEventId' }] });
  });

  test('a run terminated through Temporal (its own state still says waiting) ends its stream too', async () => {
    const runId = await startRun('gated', 'stream then terminate');
    const waiting = await awaitingApproval(runId, 'first-check');
    await env.client.workflow.getHandle(`${tenant}/${runId}`).terminate('operator pulled the plug');
    const stream = await readEvents(`/v1/runs/${runId}/events`, { timeoutMs: 20_000 });
    expect(transitionsOf(stream.events).map((s) => s.t)).toEqual(waiting.transitions);
    const last = stream.events[stream.events.length - 1];
    expect(last.event).toBe('end');
    expect(JSON.parse(last.data)).toMatchObject({ runId, temporalStatus: 'TERMINATED' });
  });

  test('a cancelled run streams its cancellation and ends with status cancelled', async () => {
    const runId = await startRun('gated', 'stream then cancel');
    await awaitingApproval(runId, 'first-check');
    const live = readEvents(`/v1/runs/${runId}/events`);
    expect((await call('POST', `/v1/runs/${runId}/cancel`, { as: 'starter', body: { reason: 'enough' } })).status).toBe(202);
    const stream = await live;
    const run = await runToEnd(runId);
    expect(transitionsOf(stream.events).map((s) => s.t)).toEqual(run.transitions);
    expect(JSON.parse(stream.events[stream.events.length - 1].data)).toMatchObject({ status: 'cancelled' });
  });
});

describe('the facade in-process, for what its processes cannot show', () => {
  /** The real app on a free port, against the same Temporal and worker, with dependencies the test picks. */
  async function inProcessApp(overrides: Partial<AppDeps>) {
    const registry = createRegistry('facade-test');
    const agents = createBuiltinAgents({ trainFile: join(ROOT, 'src/demo/train.csv'), cacheDir: mkdtempSync(join(tmpdir(), 'agentry-rc-models-')) });
    const app = createApp({
      logger: createLogger({ level: 'silent', name: 'facade-test' }),
      registry,
      httpMetrics: createHttpMetrics(registry),
      temporal: env.client,
      taskQueue: `e2e-${tenant}`,
      uiUrl: 'http://127.0.0.1:8233',
      pipelines: await loadPipelineCatalog(pipelinesDir, agents),
      checker: createInputChecker(),
      auth: createAuthenticator({ secret, issuer: 'agentry', audience: 'agentry-api', clockToleranceS: 5 }),
      limiter: createRequestLimiter({ requestsPerMinute: 10_000 }),
      bodyLimitBytes: 65_536,
      readiness: {},
      version: 'test',
      audit: createAuditStore(db.pool),
      ...overrides,
    });
    const port = await app.start(0, '127.0.0.1');
    return { app, at: `http://127.0.0.1:${port}` };
  }

  test('a denial is still a 403 when the audit trail cannot be written, and the failure is logged', async () => {
    const logged: string[] = [];
    const { app, at } = await inProcessApp({
      audit: {
        append: async () => {
          throw new Error('connection to PostgreSQL refused');
        },
      },
      logger: createLogger({ level: 'error', name: 'facade-test', destination: { write: (line: string) => void logged.push(line) } }),
    });
    try {
      const runId = await startRun('gated', 'audit is down');
      await awaitingApproval(runId, 'first-check');
      const denied = await call('POST', `/v1/runs/${runId}/cancel`, { as: 'viewer', body: { reason: 'x' }, at });
      expect(denied.status).toBe(403);
      expect(denied.json.code).toBe('forbidden');
      expect(logged.join('\n')).toMatch(/security\.denied/);
      expect(logged.join('\n')).toContain('connection to PostgreSQL refused');
      await call('POST', `/v1/runs/${runId}/cancel`, { as: 'starter', body: { reason: 'test cleanup' } });
    } finally {
      await app.stop();
    }
  });

  test('an idle stream gets keep-alive comments and ends at its lifetime, for the client to resume', async () => {
    const { app, at } = await inProcessApp({ runEvents: { pollMs: 50, keepAliveMs: 200, maxStreamMs: 1_500 } });
    try {
      const runId = await startRun('gated', 'idle stream');
      const waiting = await awaitingApproval(runId, 'first-check');
      const started = Date.now();
      const stream = await readEvents(`/v1/runs/${runId}/events`, { at, timeoutMs: 10_000 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_400);
      expect(stream.comments.filter((c) => c === 'keep-alive').length).toBeGreaterThanOrEqual(3);
      expect(stream.events.map((e) => e.event)).not.toContain('end');
      expect(transitionsOf(stream.events).map((s) => s.t)).toEqual(waiting.transitions);
      await call('POST', `/v1/runs/${runId}/cancel`, { as: 'starter', body: { reason: 'test cleanup' } });
    } finally {
      await app.stop();
    }
  });

  /** A run parked at its approval, and a viewer's open event stream of it on the app at `at`. */
  async function parkedRunStream(at: string, text: string) {
    const runId = await startRun('gated', text);
    await awaitingApproval(runId, 'first-check');
    const abort = new AbortController();
    const res = await fetch(`${at}/v1/runs/${runId}/events`, { headers: { authorization: `Bearer ${await token('viewer')}` }, signal: abort.signal });
    expect(res.status).toBe(200);
    return { runId, abort, res };
  }

  test('with no worker running the run, a signal or an approval answers 503 after a bounded wait instead of hanging', async () => {
    // This app starts runs on a task queue no worker polls.
    const { app, at } = await inProcessApp({ taskQueue: `nobody-${tenant}`, updateTimeoutMs: 1_500 });
    try {
      const started = await call('POST', '/v1/pipelines/gated/runs', { as: 'starter', at, body: { input: { text: 'no worker' } } });
      expect(started.status).toBe(202);
      const runId = started.json.runId as string;
      for (const [path, body, who] of [
        [`/v1/runs/${runId}/signals/priority`, { payload: { n: 1 } }, 'starter'],
        [`/v1/runs/${runId}/approvals`, { stage: 'first-check', decision: 'approve' }, 'approver'],
      ] as const) {
        const res = await call('POST', path, { as: who, at, body });
        expect(res.status).toBe(503);
        expect(res.json).toMatchObject({ code: 'run_unresponsive', detail: expect.stringContaining('within 1.5 s: no worker is running it now') });
        expect(res.headers.get('retry-after')).toBe('30');
      }
      await env.client.workflow.getHandle(`${tenant}/${runId}`).terminate('test cleanup');
    } finally {
      await app.stop();
    }
  });

  test('a stream stops querying the run once its client disconnects', async () => {
    // Counts progress queries made through the facade's client; everything else passes straight through.
    let queries = 0;
    const countingHandle = (h: WorkflowHandle) =>
      new Proxy(h, {
        get(target, key) {
          const value = Reflect.get(target, key, target) as unknown;
          if (key === 'query') queries++;
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
    const temporal = new Proxy(env.client, {
      get(target, key) {
        const value = Reflect.get(target, key, target) as unknown;
        if (key !== 'workflow') return typeof value === 'function' ? value.bind(target) : value;
        return new Proxy(target.workflow, {
          get(wf, k) {
            const v = Reflect.get(wf, k, wf) as unknown;
            if (k === 'getHandle') return (...args: Parameters<typeof wf.getHandle>) => countingHandle(wf.getHandle(...args));
            return typeof v === 'function' ? v.bind(wf) : v;
          },
        });
      },
    });
    const { app, at } = await inProcessApp({ temporal, runEvents: { pollMs: 50 } });
    try {
      const { runId, abort } = await parkedRunStream(at, 'walk away');
      await waitUntil('the stream to poll', async () => (queries >= 5 ? true : undefined));
      abort.abort();
      await new Promise((r) => setTimeout(r, 300));
      const settled = queries;
      await new Promise((r) => setTimeout(r, 500));
      expect(queries).toBe(settled);
      await call('POST', `/v1/runs/${runId}/cancel`, { as: 'starter', body: { reason: 'test cleanup' } });
    } finally {
      await app.stop();
    }
  });

  test('stopping the server does not wait for a connection whose client walked away from its stream', async () => {
    // Timeouts far beyond the test's: only the drain itself can end the connection in time.
    const hour = 3_600_000;
    const { app, at } = await inProcessApp({ runEvents: { pollMs: 50 }, serverTimeouts: { headersTimeoutMs: hour, requestTimeoutMs: hour, keepAliveTimeoutMs: hour } });
    let stopped = false;
    try {
      const { runId, abort, res } = await parkedRunStream(at, 'walk away, then stop');
      const reader = res.body!.getReader();
      expect(new TextDecoder().decode((await reader.read()).value)).toContain('event: transition');
      abort.abort();
      await new Promise((r) => setTimeout(r, 300));
      const outcome = await Promise.race([app.stop().then(() => 'stopped'), new Promise((r) => setTimeout(() => r('still waiting'), 10_000))]);
      stopped = outcome === 'stopped';
      expect(outcome).toBe('stopped');
      await call('POST', `/v1/runs/${runId}/cancel`, { as: 'starter', body: { reason: 'test cleanup' } });
    } finally {
      if (!stopped) await app.stop();
    }
  });

  test('a caller, a tenant and the replica may hold bounded numbers of streams; a closed stream frees its place', async () => {
    const { app, at } = await inProcessApp({ runEvents: { pollMs: 100, maxStreamsPerSubject: 2, maxStreamsPerTenant: 3, maxStreams: 3 } });
    const open: AbortController[] = [];
    const openStream = async (runId: string, who: Who) => {
      const abort = new AbortController();
      const res = await fetch(`${at}/v1/runs/${runId}/events`, { headers: { authorization: `Bearer ${await token(who)}` }, signal: abort.signal });
      if (res.status === 200) {
        open.push(abort);
        return { status: res.status, headers: res.headers, json: undefined };
      }
      return { status: res.status, headers: res.headers, json: (await res.json()) as Record<string, unknown> };
    };
    const gauge = async () => Number(/^http_event_streams_open\{[^}]*\} (\d+)/m.exec(await (await fetch(`${at}/metrics`)).text())?.[1]);
    try {
      const runId = await startRun('gated', 'many watchers');
      await awaitingApproval(runId, 'first-check');
      expect((await openStream(runId, 'viewer')).status).toBe(200);
      expect((await openStream(runId, 'viewer')).status).toBe(200);
      const third = await openStream(runId, 'viewer');
      expect(third.status).toBe(429);
      expect(third.headers.get('content-type')).toContain('application/problem+json');
      expect(third.headers.get('retry-after')).toBe('5');
      expect(third.json).toMatchObject({ code: 'too_many_streams', limit: 'event_streams_per_subject' });

      expect((await openStream(runId, 'auditor')).status).toBe(200);
      const tenantFull = await openStream(runId, 'starter');
      expect(tenantFull.status).toBe(429);
      expect(tenantFull.json).toMatchObject({ code: 'too_many_streams', limit: 'event_streams_per_tenant' });
      // Another tenant is refused by the replica's total before its run is even looked up.
      const full = await openStream(runId, 'foreign');
      expect(full.status).toBe(503);
      expect(full.json).toMatchObject({ code: 'streams_exhausted' });
      expect(await gauge()).toBe(3);

      // The client hangs up: its place is free again once the server sees the close.
      open.shift()!.abort();
      await waitUntil('the closed stream to free its place', async () => ((await gauge()) === 2 ? true : undefined));
      expect((await openStream(runId, 'viewer')).status).toBe(200);
      await call('POST', `/v1/runs/${runId}/cancel`, { as: 'starter', body: { reason: 'test cleanup' } });
    } finally {
      for (const a of open) a.abort();
      await app.stop();
    }
  });

  test('clients that hang up at once, before or during the lookup, leave no stream or place behind', async () => {
    const { app, at } = await inProcessApp({ runEvents: { pollMs: 100, maxStreamsPerSubject: 2 } });
    const gauge = async () => Number(/^http_event_streams_open\{[^}]*\} (\d+)/m.exec(await (await fetch(`${at}/metrics`)).text())?.[1]);
    try {
      const runId = await startRun('gated', 'hang up');
      await awaitingApproval(runId, 'first-check');
      const auth = `Bearer ${await token('viewer')}`;
      // Aborted at once or a few milliseconds in: before the request reaches the route, during the run lookup, or
      // just after the stream opened.
      await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          const abort = new AbortController();
          const res = fetch(`${at}/v1/runs/${runId}/events`, { headers: { authorization: auth }, signal: abort.signal }).catch(() => undefined);
          await new Promise((r) => setTimeout(r, i));
          abort.abort();
          await res;
        }),
      );
      await waitUntil('every place to be given back', async () => ((await gauge()) === 0 ? true : undefined), 10_000, 100);
      // The caller's two places are free: both streams open.
      const streams = [new AbortController(), new AbortController()];
      for (const abort of streams) {
        const res = await fetch(`${at}/v1/runs/${runId}/events`, { headers: { authorization: auth }, signal: abort.signal });
        expect(res.status).toBe(200);
      }
      await call('POST', `/v1/runs/${runId}/cancel`, { as: 'starter', body: { reason: 'test cleanup' } });
      for (const abort of streams) abort.abort();
    } finally {
      await app.stop();
    }
  });

  test('stopping the app ends open streams at once instead of waiting for them', async () => {
    const { app, at } = await inProcessApp({});
    const runId = await startRun('gated', 'shutdown');
    await awaitingApproval(runId, 'first-check');
    const stream = readEvents(`/v1/runs/${runId}/events`, { at, timeoutMs: 20_000 });
    await waitUntil('the stream to be open', async () => ((await getRun(runId)).transitions.length > 0 ? true : undefined));
    await new Promise((r) => setTimeout(r, 300));
    const stopping = Date.now();
    await app.stop();
    expect(Date.now() - stopping).toBeLessThan(3_000);
    const result = await stream;
    expect(result.status).toBe(200);
    expect(result.events.map((e) => e.event)).not.toContain('end');
    await call('POST', `/v1/runs/${runId}/cancel`, { as: 'starter', body: { reason: 'test cleanup' } });
  });
});

test('/openapi.json describes the run-control routes', async () => {
  const doc = await call('GET', '/openapi.json');
  expect(Object.keys(doc.json.paths)).toEqual(
    expect.arrayContaining([
      '/v1/runs/{pipeline}/{id}/approvals',
      '/v1/runs/{pipeline}/{id}/signals/{name}',
      '/v1/runs/{pipeline}/{id}/cancel',
      '/v1/runs/{pipeline}/{id}/events',
    ]),
  );
  expect(Object.keys(doc.json.paths['/v1/runs/{pipeline}/{id}/events'].get.responses['200'].content)).toEqual(['text/event-stream']);
});
