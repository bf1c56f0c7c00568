import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  allHandlersFinished,
  condition,
  defineSignal,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { RetryState } from '@temporalio/common';
import type { Activities } from '../activities';
import {
  DEFAULT_MAX_SIGNALS,
  FailureType,
  SA_STATUS,
  approveSignal,
  approveUpdate,
  cancelSignal,
  progressQuery,
  signalUpdate,
  type ApprovalDecisionInput,
  type ApprovalRecord,
  type AuditEventInput,
  type AuditEventType,
  type CancelRequest,
  type PipelineRunInput,
  type PipelineRunResult,
  type RunProgress,
  type RunStatus,
  type SignalInput,
  type StageState,
  type StageUsage,
  type StageStatus,
} from '../src/contracts';
import type { AgentStage, ApprovalStage, ParallelStage, Stage } from '../src/pipelines/definition-schema';
import { evaluateCondition, resolveMapping, type ExpressionScope } from '../src/pipelines/expressions';

// The security stage is quick and local: a short timeout, a few tries.
const { checkInput } = proxyActivities<Activities>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: [FailureType.InputRejected] },
});

// The guard check before untrusted text and the slot release are quick and idempotent.
const { screenInput, releaseRunSlot } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '500 ms', maximumInterval: '10 seconds', maximumAttempts: 10 },
});

// Audit writes retry without limit (no maximumAttempts): a run never ends with a missing event, it waits for
// PostgreSQL to come back instead.
const { recordAudit } = proxyActivities<Activities>({
  startToCloseTimeout: '15 seconds',
  retry: { initialInterval: '500 ms', maximumInterval: '30 seconds', backoffCoefficient: 2 },
});

/** Patch ids: each marks a behaviour change that old histories must replay without. */
export const PATCHES = {
  /** Runs started after this change enforce `limits.runTimeout` with a timer; older runs never had one. */
  runTimeout: 'run-timeout-v1',
  /** Runs started after this change free their concurrency slot when they end; older runs held none. */
  releaseSlot: 'release-run-slot-v1',
  /** A slot release that exhausts its retries no longer fails the run. */
  releaseSlotTolerant: 'release-run-slot-tolerant-v1',
  /** A stage that times out after its run was cancelled (or ran out of time) counts as cancelled, not failed. */
  timeoutAfterCancel: 'stage-timeout-after-cancel-v1',
  /** Plain signals beyond `limits.maxSignals` are dropped instead of recorded. */
  signalCap: 'signal-cap-v1',
} as const;

interface StageFailure {
  type: string;
  message: string;
  attempts?: number;
}

/**
 * Temporal does not retry an activity whose cancellation was requested: if the attempt then times out before the
 * agent acknowledges the cancellation (a slow heartbeat, or an agent that ignores its abort signal), the stage
 * ends with a timeout whose retry state is CANCEL_REQUESTED. The run was being stopped; that is what happened.
 */
function stoppedWhileCancelling(err: unknown): boolean {
  return err instanceof ActivityFailure && err.retryState === RetryState.CANCEL_REQUESTED;
}

function describeFailure(err: unknown): StageFailure {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) {
    const detail = cause.details?.[0] as { attempt?: number } | undefined;
    return { type: cause.type ?? 'Error', message: cause.message, attempts: detail?.attempt };
  }
  if (cause instanceof Error) return { type: cause.name, message: cause.message };
  return { type: 'Error', message: String(cause) };
}

/** Raised inside the interpreter to end the run as failed; carries the stage that failed. */
class RunFailure extends Error {
  constructor(readonly failure: StageFailure, readonly stage?: string) {
    super(failure.message);
  }
}

/**
 * Interprets the pipeline definition snapshot the run was started with: the security stage, then agent,
 * approval and parallel stages in order, every state change written to the audit trail under a deterministic
 * event id. Cancellation (the `cancel` signal or a Temporal cancel request) reaches running agents through
 * heartbeats, then the definition's `onCancel` stages run in a non-cancellable scope.
 */
export async function pipeline(args: PipelineRunInput): Promise<PipelineRunResult> {
  const { definition: def, principal } = args;
  const { workflowId } = workflowInfo();
  const root = CancellationScope.current();
  const startedAt = Date.now();
  const progress: RunProgress = {
    runId: args.runId,
    pipeline: def.name,
    version: def.version,
    status: 'running',
    stages: [
      ...def.stages.flatMap((s) => stageStates(s)),
      ...(def.onCancel ?? []).map((c): StageState => ({ ...stageStates(c)[0], compensation: true })),
    ],
    approvals: [],
    signals: [],
    spend: { tokens: 0, costUsd: 0 },
    transitions: [],
  };
  const outputs: Record<string, unknown> = {};
  const signalValues: Record<string, unknown> = {};
  const scope = (): ExpressionScope => ({ input: args.input, stages: outputs, signals: signalValues });

  // --- transitions, status, audit -------------------------------------------------------------------------
  const stateOf = (name: string) => progress.stages.find((s) => s.name === name) as StageState;
  const addSpend = (usage: StageUsage) => {
    const spend = (progress.spend ??= { tokens: 0, costUsd: 0 });
    spend.tokens += usage.totalTokens;
    // Summed in nano-dollars, the precision costs are priced to, so the total does not drift.
    spend.costUsd = Math.round((spend.costUsd + usage.costUsd) * 1e9) / 1e9;
  };
  const transition = (status: StageStatus | RunStatus, stage?: string, detail?: string) => {
    progress.transitions.push({ seq: progress.transitions.length + 1, at: Date.now(), status, ...(stage ? { stage } : {}), ...(detail ? { detail } : {}) });
  };
  const setStage = (name: string, patch: Partial<StageState>) => {
    const state = stateOf(name);
    Object.assign(state, patch);
    if (patch.status) transition(patch.status, name);
  };
  const setRunStatus = (status: RunStatus) => {
    if (progress.status === status) return;
    progress.status = status;
    upsertSearchAttributes([{ key: SA_STATUS, value: status }]);
    transition(status);
  };
  let sequence = 0;
  const audit = (type: AuditEventType, data: Record<string, unknown>, stage?: string, actor = principal.subject) => {
    const event: AuditEventInput = {
      id: `${workflowId}#${++sequence}`,
      tenant: principal.tenant,
      runId: args.runId,
      type,
      actor,
      pipeline: def.name,
      pipelineVersion: def.version,
      definitionHash: args.definitionHash,
      stage,
      data,
      occurredAt: Date.now(),
    };
    // Never cancelled half-way: an event is either written or about to be retried, whatever happens to the run.
    return CancellationScope.nonCancellable(() => recordAudit(event));
  };
  setHandler(progressQuery, () => progress);

  // --- approvals: kept when they arrive early, applied when their stage starts ------------------------------
  const approvalStages = new Map<string, ApprovalStage>();
  for (const s of def.stages) if (s.kind === 'approval') approvalStages.set(s.name, s);
  const decisions = new Map<string, ApprovalRecord>();
  const escalated = new Set<string>();
  const validateDecision = (d: ApprovalDecisionInput): void => {
    const stage = approvalStages.get(d?.stage);
    if (!stage) throw ApplicationFailure.create({ type: 'UnknownStage', message: `no approval stage "${d?.stage}" in this pipeline` });
    const status = stateOf(stage.name).status;
    if (decisions.has(stage.name) || (status !== 'pending' && status !== 'awaiting-approval')) {
      throw ApplicationFailure.create({ type: 'ApprovalNotPending', message: `approval stage "${stage.name}" is ${decisions.has(stage.name) ? 'already decided' : status}` });
    }
    const roles = escalated.has(stage.name) ? stage.escalateTo : stage.roles;
    if (!d.approver?.roles?.some((r) => roles.includes(r))) {
      throw ApplicationFailure.create({ type: 'ApproverLacksRole', message: `approving "${stage.name}" needs one of the roles: ${roles.join(', ')}` });
    }
    if (!stage.allowSelfApproval && d.approver.subject === principal.subject) {
      throw ApplicationFailure.create({ type: 'SelfApprovalForbidden', message: 'the run was started by this subject, who may not approve it' });
    }
  };
  const accept = (d: ApprovalDecisionInput): ApprovalRecord => {
    const record: ApprovalRecord = {
      stage: d.stage,
      decision: d.decision === 'approve' ? 'approved' : 'rejected',
      approver: d.approver.subject,
      ...(d.comment ? { comment: d.comment } : {}),
      decidedAt: Date.now(),
    };
    decisions.set(d.stage, record);
    return record;
  };
  setHandler(approveUpdate, async (d) => accept(d), { validator: validateDecision });
  setHandler(approveSignal, async (d) => {
    try {
      validateDecision(d);
    } catch (err) {
      // A plain signal cannot be refused at the door like an update: record the refusal instead.
      await audit('security.denied', { action: 'approve', via: 'signal', reason: (err as Error).message }, d?.stage, d?.approver?.subject ?? 'unknown');
      return;
    }
    accept(d);
  });

  // --- declared signals and cancellation ------------------------------------------------------------------
  const declaredSignals = new Set(def.signals ?? []);
  const maxSignals = def.limits.maxSignals ?? DEFAULT_MAX_SIGNALS;
  const receiveSignal = async (name: string, s: SignalInput | undefined) => {
    signalValues[name] = s?.payload ?? {};
    progress.signals.push({ name, actor: s?.actor ?? 'unknown', at: Date.now() });
    await audit('signal.received', { name, fields: Object.keys(s?.payload ?? {}).slice(0, 50) }, undefined, s?.actor ?? 'unknown');
  };
  for (const name of declaredSignals) {
    setHandler(defineSignal<[SignalInput]>(name), async (s) => {
      // Each one costs history (its payload and an audit activity): past the limit a plain signal is only counted.
      if (progress.signals.length >= maxSignals && patched(PATCHES.signalCap)) {
        progress.signalsDropped = (progress.signalsDropped ?? 0) + 1;
        return;
      }
      await receiveSignal(name, s);
    });
  }
  setHandler(
    signalUpdate,
    async (d) => {
      await receiveSignal(d.name, d);
      return { name: d.name, received: progress.signals.length, max: maxSignals };
    },
    {
      validator: (d) => {
        if (!declaredSignals.has(d?.name)) {
          throw ApplicationFailure.create({ type: 'UnknownSignal', message: `this run's definition declares no signal "${String(d?.name).slice(0, 64)}"` });
        }
        if (progress.signals.length >= maxSignals) {
          throw ApplicationFailure.create({ type: 'SignalLimitReached', message: `the run has received the ${maxSignals} signals it takes (limits.maxSignals)` });
        }
      },
    },
  );
  const main = new CancellationScope();
  setHandler(cancelSignal, (req: CancelRequest) => {
    progress.cancellation ??= { actor: String(req?.actor ?? 'unknown'), reason: String(req?.reason ?? '') };
    main.cancel();
  });

  // --- stages ---------------------------------------------------------------------------------------------
  const runAgentStage = async (stage: AgentStage): Promise<unknown> => {
    const { runAgent } = proxyActivities<Activities>({
      startToCloseTimeout: stage.timeoutMs,
      // runAgent heartbeats on its own, so every stage can learn of cancellation within this bound.
      heartbeatTimeout: stage.heartbeatTimeoutMs ?? Math.min(stage.timeoutMs, 10_000),
      // A cancelled run ends only once its running agent has actually stopped.
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      taskQueue: stage.taskQueue,
      retry: {
        maximumAttempts: stage.retry.maximumAttempts,
        initialInterval: stage.retry.initialIntervalMs,
        backoffCoefficient: stage.retry.backoffCoefficient,
        maximumInterval: stage.retry.maximumIntervalMs,
      },
    });
    setStage(stage.name, { status: 'running', startedAt: Date.now() });
    const input = resolveMapping(stage.with ?? {}, scope());
    try {
      if (stage.untrustedText) await guard(stage, input);
      const res = await runAgent({ workflowId, tenant: principal.tenant, runId: args.runId, stage: stage.name, agent: stage.agent, input });
      outputs[stage.name] = res.output;
      setStage(stage.name, { status: 'completed', attempts: res.attempt, finishedAt: Date.now(), output: res.output, ...(res.usage ? { usage: res.usage } : {}) });
      if (res.usage) addSpend(res.usage);
      await audit(
        'stage.completed',
        {
          agent: stage.agent,
          attempts: res.attempt,
          durationMs: res.durationMs,
          inputHash: res.inputHash,
          outputHash: res.outputHash,
          ...(res.usage ? { usage: res.usage, runSpend: progress.spend } : {}),
        },
        stage.name,
      );
      return res.output;
    } catch (err) {
      const cancelled = isCancellation(err) || (stoppedWhileCancelling(err) && patched(PATCHES.timeoutAfterCancel));
      if (cancelled) {
        setStage(stage.name, { status: 'cancelled', finishedAt: Date.now() });
        throw isCancellation(err) ? err : new CancelledFailure(`stage "${stage.name}" timed out while its run was being cancelled`, [], err as Error);
      }
      if (err instanceof RunFailure) throw err;
      const f = describeFailure(err);
      const error = { type: f.type, message: f.message };
      setStage(stage.name, { status: 'failed', attempts: f.attempts ?? stateOf(stage.name).attempts, finishedAt: Date.now(), error });
      await audit('stage.failed', { agent: stage.agent, attempts: f.attempts, error }, stage.name);
      throw new RunFailure(f, stage.name);
    }
  };

  /** The injection guard before untrusted text: findings are audited; under `block` the run stops here. */
  const guard = async (stage: AgentStage, input: Record<string, unknown>): Promise<void> => {
    const { findings } = await screenInput({ tenant: principal.tenant, stage: stage.name, input });
    if (findings.length === 0) return;
    const policy = def.security?.injection ?? 'flag';
    await audit('security.flagged', { policy, rules: [...new Set(findings.map((f) => f.rule))], paths: findings.map((f) => f.path) }, stage.name);
    if (policy === 'block') {
      const message = `input of stage "${stage.name}" matched injection rules: ${[...new Set(findings.map((f) => f.rule))].join(', ')}`;
      setStage(stage.name, { status: 'failed', finishedAt: Date.now(), error: { type: FailureType.SecurityBlocked, message } });
      throw new RunFailure({ type: FailureType.SecurityBlocked, message }, stage.name);
    }
  };

  const runApprovalStage = async (stage: ApprovalStage): Promise<void> => {
    setStage(stage.name, { status: 'awaiting-approval', startedAt: Date.now() });
    setRunStatus('awaiting-approval');
    await audit('approval.requested', { roles: stage.roles, timeoutMs: stage.timeoutMs, decidedEarly: decisions.has(stage.name) }, stage.name);
    let decided = await condition(() => decisions.has(stage.name), stage.timeoutMs);
    if (!decided && stage.onTimeout === 'escalate') {
      escalated.add(stage.name);
      await audit('approval.escalated', { roles: stage.escalateTo, timeoutMs: stage.escalationTimeoutMs }, stage.name);
      decided = await condition(() => decisions.has(stage.name), stage.escalationTimeoutMs);
    }
    const record: ApprovalRecord = decided
      ? (decisions.get(stage.name) as ApprovalRecord)
      : { stage: stage.name, decision: 'timed_out', approver: 'system', decidedAt: Date.now() };
    record.appliedAt = Date.now();
    if (escalated.has(stage.name)) record.escalated = true;
    decisions.set(stage.name, record);
    progress.approvals.push(record);
    const passes = record.decision === 'approved' || (record.decision === 'timed_out' && stage.onTimeout === 'approve');
    outputs[stage.name] = { decision: record.decision, approver: record.approver, ...(record.comment ? { comment: record.comment } : {}) };
    const type: AuditEventType =
      record.decision === 'approved' ? 'approval.granted' : record.decision === 'rejected' ? 'approval.rejected' : 'approval.timed_out';
    await audit(type, { comment: record.comment, decidedAt: record.decidedAt, escalated: record.escalated ?? false, passes }, stage.name, record.approver);
    setStage(stage.name, { status: passes ? 'completed' : 'failed', finishedAt: Date.now(), output: outputs[stage.name] });
    setRunStatus('running');
    if (!passes) {
      throw new RunFailure({ type: FailureType.ApprovalRejected, message: `approval stage "${stage.name}" ${record.decision === 'timed_out' ? 'timed out' : `was rejected by ${record.approver}`}` }, stage.name);
    }
  };

  const runParallelStage = async (stage: ParallelStage): Promise<void> => {
    setStage(stage.name, { status: 'running', startedAt: Date.now() });
    const joined: Record<string, unknown> = {};
    const failed: Record<string, StageFailure> = {};
    const queue = [...stage.stages];
    await CancellationScope.cancellable(async () => {
      const group = CancellationScope.current();
      const lane = async () => {
        for (let child = queue.shift(); child; child = queue.shift()) {
          if (child.when && !evaluateCondition(child.when, scope())) {
            setStage(child.name, { status: 'skipped' });
            await audit('stage.skipped', { reason: 'when', group: stage.name }, child.name);
            continue;
          }
          try {
            joined[child.name] = await runAgentStage(child);
          } catch (err) {
            if (!(err instanceof RunFailure) || stage.onFailure === 'failFast') {
              // Stop the siblings: their agents see the cancellation through their heartbeats.
              group.cancel();
              throw err;
            }
            failed[child.name] = err.failure;
          }
        }
      };
      // The first rejection wins: with failFast that is the failure itself, thrown before the siblings' cancellations.
      await Promise.all(Array.from({ length: Math.min(stage.maxConcurrency, stage.stages.length) }, lane));
    });
    outputs[stage.name] = joined;
    const anyFailed = Object.keys(failed).length > 0;
    setStage(stage.name, { status: 'completed', finishedAt: Date.now(), output: anyFailed ? { ...joined, errors: failed } : joined });
    await audit('stage.completed', { kind: 'parallel', completed: Object.keys(joined), failed: Object.keys(failed) }, stage.name);
  };

  const runStages = async () => {
    for (const stage of def.stages) {
      if (stage.when && !evaluateCondition(stage.when, scope())) {
        for (const s of stageStates(stage)) setStage(s.name, { status: 'skipped' });
        await audit('stage.skipped', { reason: 'when' }, stage.name);
        continue;
      }
      if (stage.kind === 'approval') await runApprovalStage(stage);
      else if (stage.kind === 'parallel') await runParallelStage(stage);
      else await runAgentStage(stage);
    }
  };

  const releaseSlot = async () => {
    if (patched(PATCHES.releaseSlot)) {
      try {
        await CancellationScope.nonCancellable(() => releaseRunSlot({ tenant: principal.tenant, pipeline: def.name, runId: args.runId }));
      } catch (err) {
        // Runs before this change failed here: their histories must replay that way.
        if (!patched(PATCHES.releaseSlotTolerant)) throw err;
        // Redis stayed down through every attempt. The slot's lease frees it later; the run still ends as it should.
        log.warn('could not release the run slot; its lease will expire', { error: err instanceof Error ? err.message : String(err) });
      }
    }
  };
  const finish = async (status: 'completed' | 'failed', error?: PipelineRunResult['error']): Promise<PipelineRunResult> => {
    setRunStatus(status);
    const durationMs = Date.now() - startedAt;
    await condition(allHandlersFinished);
    await releaseSlot();
    await audit(status === 'completed' ? 'run.completed' : 'run.failed', { durationMs, ...(error ? { error } : {}) });
    return { ...progress, outputs, ...(error ? { error } : {}) };
  };
  const fail = async (f: StageFailure, stage?: string): Promise<never> => {
    const result = await finish('failed', { type: f.type, message: f.message, ...(stage ? { stage } : {}) });
    throw ApplicationFailure.create({
      type: f.type,
      message: stage ? `stage "${stage}" failed: ${f.message}` : f.message,
      nonRetryable: true,
      details: [result],
    });
  };

  // --- the run --------------------------------------------------------------------------------------------
  let inputHash: string;
  try {
    ({ inputHash } = await checkInput({ definition: def, definitionHash: args.definitionHash, input: args.input }));
  } catch (err) {
    await audit('run.started', { requestId: args.request.requestId, accepted: false, ip: args.request.ip, userAgent: args.request.userAgent });
    return fail(describeFailure(err));
  }
  // The caller's address and user agent are sealed by the audit store; absent for runs started outside the facade.
  await audit('run.started', { requestId: args.request.requestId, accepted: true, inputHash, roles: principal.roles, ip: args.request.ip, userAgent: args.request.userAgent });

  let timedOut = false;
  const timer = new CancellationScope();
  if (patched(PATCHES.runTimeout)) {
    timer
      .run(() => sleep(def.limits.runTimeoutMs))
      .then(() => {
        timedOut = true;
        main.cancel();
      })
      .catch(() => undefined);
  }
  try {
    await main.run(runStages);
  } catch (err) {
    // Once the run's deadline has passed, that is why it ended, even if a stage failed in the same moment.
    if (timedOut) return fail({ type: FailureType.RunTimedOut, message: `the run exceeded its ${def.limits.runTimeoutMs} ms limit` });
    if (err instanceof RunFailure) return fail(err.failure, err.stage);
    if (!isCancellation(err)) throw err;
    return cancelled(err);
  } finally {
    timer.cancel();
  }
  return finish('completed');

  /** Compensates, audits who cancelled and why, and ends the run cancelled. */
  async function cancelled(cause: unknown): Promise<PipelineRunResult> {
    const req = progress.cancellation ?? { actor: 'temporal', reason: 'cancel requested through Temporal' };
    progress.cancellation = req;
    return CancellationScope.nonCancellable(async () => {
      const compensated: string[] = [];
      for (const stage of def.onCancel ?? []) {
        try {
          await runAgentStage(stage);
          compensated.push(stage.name);
        } catch {
          // A failed compensation is audited as stage.failed; the remaining ones still run.
        }
      }
      for (const s of progress.stages) if (s.status === 'pending' || s.status === 'awaiting-approval') s.status = 'cancelled';
      setRunStatus('cancelled');
      await condition(allHandlersFinished);
      await releaseSlot();
      await audit('run.cancelled', { reason: req.reason, compensated, durationMs: Date.now() - startedAt }, undefined, req.actor);
      const result: PipelineRunResult = { ...progress, outputs };
      // A Temporal cancel request ends the execution as cancelled; a cancel signal alone returns the result.
      if (root.consideredCancelled) throw cause;
      return result;
    });
  }
}

/** The progress entries of a stage: one for an agent or approval stage, the group and its children for a group. */
function stageStates(stage: Stage): StageState[] {
  if (stage.kind === 'approval') return [{ name: stage.name, kind: 'approval', status: 'pending', attempts: 0 }];
  if (stage.kind === 'parallel') {
    return [
      { name: stage.name, kind: 'parallel', status: 'pending', attempts: 0 },
      ...stage.stages.map((c): StageState => ({ name: c.name, kind: 'agent', agent: c.agent, group: stage.name, status: 'pending', attempts: 0 })),
    ];
  }
  return [{ name: stage.name, kind: 'agent', agent: stage.agent, status: 'pending', attempts: 0 }];
}
