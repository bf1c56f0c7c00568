import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { defineSignal } from '@temporalio/workflow';
import { createAuditStore } from '../../src/audit';
import {
  SA_STATUS,
  approveSignal,
  approveUpdate,
  cancelSignal,
  progressQuery,
  type ApprovalDecisionInput,
  type PipelineRunResult,
  type RunProgress,
} from '../../src/contracts';
import { startPipelineRun, usePipelineEnv } from '../helpers/pipeline-worker';
import { sleeperLog } from '../helpers/test-agents';
import { approvalYaml, cancelYaml, deafYaml, parallelYaml, slowYaml } from '../helpers/test-pipelines';
import { waitUntil } from '../helpers/wait';

const taskQueue = 'wf-test-run-control';
const starter = { subject: 'alice', tenant: 'wf-tests', roles: ['operator' as const] };
const approver = { subject: 'bob', roles: ['approver' as const] };
const ctx = usePipelineEnv(taskQueue);

let counter = 0;
const start = (yaml: string, input: Record<string, unknown> = {}) =>
  startPipelineRun(ctx.env.client, ctx.pw.agents, taskQueue, yaml, input, `rc-${++counter}`, starter);

const auditOf = async (runId: string) => createAuditStore(ctx.db.pool).listByRun('wf-tests', runId);
const types = async (runId: string) => (await auditOf(runId)).map((e) => `${e.type}${e.stage ? `:${e.stage}` : ''}`);

async function awaitingApproval(handle: WorkflowHandle, stage: string): Promise<RunProgress> {
  return waitUntil(`stage ${stage} to await approval`, async () => {
    const p = await handle.query(progressQuery);
    return p.stages.find((s) => s.name === stage)?.status === 'awaiting-approval' ? p : undefined;
  });
}

const decide = (stage: string, decision: 'approve' | 'reject', who: ApprovalDecisionInput['approver'] = approver, comment?: string): ApprovalDecisionInput => ({
  stage,
  decision,
  approver: who,
  ...(comment ? { comment } : {}),
});

async function failureOf(handle: WorkflowHandle): Promise<ApplicationFailure> {
  const err = await handle.result().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause as ApplicationFailure;
}

async function updateRefusal(handle: WorkflowHandle, d: ApprovalDecisionInput): Promise<string | undefined> {
  const err = await handle.executeUpdate(approveUpdate, { args: [d] }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
  return ((err as WorkflowUpdateFailedError).cause as ApplicationFailure).type ?? undefined;
}

describe('approval stages', () => {
  test('an approval through the update is applied, returned, put in the result and audited', async () => {
    const { handle, runId } = await start(approvalYaml());
    await awaitingApproval(handle, 'review');
    await waitUntil('status search attribute', async () =>
      (await handle.describe()).typedSearchAttributes.get(SA_STATUS) === 'awaiting-approval' ? true : undefined,
    );
    const record = await handle.executeUpdate(approveUpdate, { args: [decide('review', 'approve', approver, 'looks right')] });
    expect(record).toMatchObject({ stage: 'review', decision: 'approved', approver: 'bob', comment: 'looks right' });

    const result = (await handle.result()) as PipelineRunResult;
    expect(result.status).toBe('completed');
    expect(result.approvals).toEqual([expect.objectContaining({ stage: 'review', decision: 'approved', approver: 'bob', comment: 'looks right' })]);
    expect(result.outputs.after).toEqual({ value: 'yes', matched: true });
    expect(await types(runId)).toEqual([
      'run.started',
      'stage.completed:prepare',
      'approval.requested:review',
      'approval.granted:review',
      'stage.completed:after',
      'run.completed',
    ]);
    const granted = (await auditOf(runId)).find((e) => e.type === 'approval.granted');
    expect(granted).toMatchObject({ actor: 'bob', data: expect.objectContaining({ comment: 'looks right' }) });
  });

  test('a rejection fails the run with ApprovalRejected', async () => {
    const { handle, runId } = await start(approvalYaml());
    await awaitingApproval(handle, 'review');
    await handle.executeUpdate(approveUpdate, { args: [decide('review', 'reject', approver, 'wrong team')] });
    const cause = await failureOf(handle);
    expect(cause.type).toBe('ApprovalRejected');
    expect(await types(runId)).toEqual(['run.started', 'stage.completed:prepare', 'approval.requested:review', 'approval.rejected:review', 'run.failed']);
  });

  test('an approval sent before its stage is reached is kept and applied once, when the stage starts', async () => {
    const { handle, runId } = await start(approvalYaml({ before: 1500 }));
    const record = await handle.executeUpdate(approveUpdate, { args: [decide('review', 'approve')] });
    expect(record.decision).toBe('approved');
    expect((await handle.query(progressQuery)).stages.find((s) => s.name === 'review')?.status).toBe('pending');
    // A second decision is refused: the stage is already decided.
    expect(await updateRefusal(handle, decide('review', 'reject'))).toBe('ApprovalNotPending');

    const result = (await handle.result()) as PipelineRunResult;
    expect(result.status).toBe('completed');
    expect(result.approvals).toHaveLength(1);
    expect(result.approvals[0].appliedAt).toBeGreaterThan(result.approvals[0].decidedAt);
    const events = await types(runId);
    expect(events.filter((t) => t.startsWith('approval.granted'))).toHaveLength(1);
    expect((await auditOf(runId)).find((e) => e.type === 'approval.requested')?.data).toMatchObject({ decidedEarly: true });
  });

  test('the validator refuses unknown stages, missing roles, self-approval and decided stages', async () => {
    const { handle } = await start(approvalYaml());
    await awaitingApproval(handle, 'review');
    expect(await updateRefusal(handle, decide('nope', 'approve'))).toBe('UnknownStage');
    expect(await updateRefusal(handle, decide('review', 'approve', { subject: 'carol', roles: ['viewer'] as never }))).toBe('ApproverLacksRole');
    expect(await updateRefusal(handle, decide('review', 'approve', { subject: 'alice', roles: ['approver'] }))).toBe('SelfApprovalForbidden');
    await handle.executeUpdate(approveUpdate, { args: [decide('review', 'approve')] });
    expect(await updateRefusal(handle, decide('review', 'approve'))).toBe('ApprovalNotPending');
    await handle.result();
  });

  test('a signal of the same name approves for plain clients; an invalid one is audited as denied', async () => {
    const { handle, runId } = await start(approvalYaml());
    await awaitingApproval(handle, 'review');
    await handle.signal(approveSignal, decide('review', 'approve', { subject: 'mallory', roles: ['viewer'] as never }));
    await handle.signal(approveSignal, decide('review', 'approve'));
    const result = (await handle.result()) as PipelineRunResult;
    expect(result.approvals[0].approver).toBe('bob');
    const denied = (await auditOf(runId)).filter((e) => e.type === 'security.denied');
    expect(denied).toHaveLength(1);
    expect(denied[0]).toMatchObject({ actor: 'mallory', data: expect.objectContaining({ action: 'approve', via: 'signal' }) });
  });

  test('timeouts: reject fails the run, approve lets it through', async () => {
    const rejected = await start(approvalYaml({ timeout: '1s', onTimeout: 'reject' }));
    expect((await failureOf(rejected.handle)).type).toBe('ApprovalRejected');
    expect(await types(rejected.runId)).toContain('approval.timed_out:review');

    const approved = await start(approvalYaml({ timeout: '1s', onTimeout: 'approve' }));
    const result = (await approved.handle.result()) as PipelineRunResult;
    expect(result.status).toBe('completed');
    expect(result.approvals[0]).toMatchObject({ decision: 'timed_out', approver: 'system' });
    expect(result.outputs.after).toEqual({ value: 'late', matched: true });
  });

  test('escalation widens the approvers after the first timeout', async () => {
    const { handle, runId } = await start(
      approvalYaml({ timeout: '1s', onTimeout: 'escalate', extra: '      escalateTo: [admin]\n      escalationTimeout: 30m' }),
    );
    await waitUntil('escalation', async () => ((await types(runId)).includes('approval.escalated:review') ? true : undefined));
    expect(await updateRefusal(handle, decide('review', 'approve'))).toBe('ApproverLacksRole');
    await handle.executeUpdate(approveUpdate, { args: [decide('review', 'approve', { subject: 'root', roles: ['admin'] })] });
    const result = (await handle.result()) as PipelineRunResult;
    expect(result.approvals[0]).toMatchObject({ decision: 'approved', approver: 'root', escalated: true });
  });
});

describe('cancellation', () => {
  test('cancel reaches an agent sleeping in a long loop within its heartbeat timeout, compensates and audits who and why', async () => {
    const { handle, runId } = await start(cancelYaml);
    await waitUntil('the agent to run', async () =>
      (await handle.query(progressQuery)).stages[0].status === 'running' ? true : undefined,
    );
    const cancelledAt = Date.now();
    await handle.signal(cancelSignal, { actor: 'ops-oncall', reason: 'customer withdrew the ticket' });
    await handle.cancel();
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((await handle.describe()).status.name).toBe('CANCELLED');

    const stop = sleeperLog.find((l) => l.runId === runId);
    expect(stop?.reason).toBe('aborted');
    expect(stop!.stoppedAt - cancelledAt).toBeLessThan(2000 + 1000);

    expect(await types(runId)).toEqual(['run.started', 'stage.completed:undo', 'run.cancelled']);
    const cancelled = (await auditOf(runId)).find((e) => e.type === 'run.cancelled');
    expect(cancelled).toMatchObject({ actor: 'ops-oncall', data: expect.objectContaining({ reason: 'customer withdrew the ticket', compensated: ['undo'] }) });
    await waitUntil('status search attribute', async () =>
      (await handle.describe()).typedSearchAttributes.get(SA_STATUS) === 'cancelled' ? true : undefined,
    );
  });

  test('the cancel signal alone ends the run cancelled, with its result', async () => {
    const { handle, runId } = await start(cancelYaml);
    await waitUntil('the agent to run', async () => ((await handle.query(progressQuery)).stages[0].status === 'running' ? true : undefined));
    await handle.signal(cancelSignal, { actor: 'cli-user', reason: 'test' });
    const result = (await handle.result()) as PipelineRunResult;
    expect(result.status).toBe('cancelled');
    expect(result.cancellation).toEqual({ actor: 'cli-user', reason: 'test' });
    expect(result.stages.map((s) => `${s.name}:${s.status}`)).toEqual(['long:cancelled', 'never:cancelled', 'undo:completed']);
    expect(result.outputs.undo).toEqual({ value: 'undone', matched: true });
    expect(await types(runId)).toContain('run.cancelled');
  });

  test('a stage that times out while its run is being cancelled counts as cancelled, not failed', async () => {
    // The agent ignores its abort signal, so the attempt runs into its timeout after the cancel request; Temporal
    // does not retry it then (retry state CANCEL_REQUESTED). That is the race a slow heartbeat can also produce.
    const { handle, runId } = await start(deafYaml);
    await waitUntil('the agent to run', async () => ((await handle.query(progressQuery)).stages[0].status === 'running' ? true : undefined));
    await handle.signal(cancelSignal, { actor: 'ops-oncall', reason: 'stuck' });
    const result = (await handle.result()) as PipelineRunResult;
    expect(result.status).toBe('cancelled');
    expect(result.stages.map((s) => `${s.name}:${s.status}`)).toEqual(['long:cancelled']);
    expect(await types(runId)).toEqual(['run.started', 'run.cancelled']);
  });

  test('a run over its runTimeout fails with RunTimedOut', async () => {
    const { handle, runId } = await start(slowYaml);
    expect((await failureOf(handle)).type).toBe('RunTimedOut');
    expect(await types(runId)).toEqual(['run.started', 'run.failed']);
  });
});

describe('parallel groups', () => {
  test('children run with bounded concurrency and their outputs are joined by stage name', async () => {
    const { handle } = await start(parallelYaml('failFast'));
    const result = (await handle.result()) as PipelineRunResult;
    expect(Object.keys(result.outputs.group as object).sort()).toEqual(['a', 'b', 'c']);
    expect(result.outputs.join).toEqual({ value: 'redacted', matched: true });
    expect(result.stages.filter((s) => s.group === 'group').every((s) => s.status === 'completed')).toBe(true);
  });

  test('failFast fails the run on the first failing child', async () => {
    const { handle } = await start(parallelYaml('failFast', 'liar'));
    const cause = await failureOf(handle);
    expect(cause.type).toBe('AgentOutputInvalid');
  });

  test('collect runs every child and reports the failures in the group output', async () => {
    const { handle } = await start(parallelYaml('collect', 'liar'));
    const result = (await handle.result()) as PipelineRunResult;
    expect(result.status).toBe('completed');
    const group = result.stages.find((s) => s.name === 'group');
    expect((group?.output as { errors: Record<string, { type: string }> }).errors.c.type).toBe('AgentOutputInvalid');
    expect(Object.keys(result.outputs.group as object).sort()).toEqual(['a', 'b']);
  });
});

test('declared signals are recorded, audited and visible to later stages', async () => {
  const { handle, runId } = await start(`
name: signalled
version: 1
description: a signal steers a later stage
input: { type: object, properties: { text: { type: string } } }
signals: [note]
stages:
  - name: wait
    agent: sleeper
    with: { ms: 1500 }
  - name: use
    agent: lookup
    with: { key: "\${signals.note.priority}", table: { high: urgent }, default: normal }
`);
  await handle.signal(defineSignal<[{ actor: string; payload: Record<string, unknown> }]>('note'), { actor: 'dana', payload: { priority: 'high' } });
  const result = (await handle.result()) as PipelineRunResult;
  expect(result.outputs.use).toEqual({ value: 'urgent', matched: true });
  expect(result.signals).toEqual([expect.objectContaining({ name: 'note', actor: 'dana' })]);
  expect((await auditOf(runId)).find((e) => e.type === 'signal.received')).toMatchObject({ actor: 'dana', data: { name: 'note', fields: ['priority'] } });
});

test('transitions are numbered in the order they happened', async () => {
  const { handle } = await start(approvalYaml());
  await awaitingApproval(handle, 'review');
  await handle.executeUpdate(approveUpdate, { args: [decide('review', 'approve')] });
  const result = (await handle.result()) as PipelineRunResult;
  expect(result.transitions.map((t) => t.seq)).toEqual(result.transitions.map((_, i) => i + 1));
  expect(result.transitions.map((t) => `${t.stage ?? 'run'}:${t.status}`)).toEqual([
    'prepare:running',
    'prepare:completed',
    'review:awaiting-approval',
    'run:awaiting-approval',
    'review:completed',
    'run:running',
    'after:running',
    'after:completed',
    'run:completed',
  ]);
});
