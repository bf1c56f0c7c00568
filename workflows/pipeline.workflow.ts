import {
  ActivityFailure,
  ApplicationFailure,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  FailureType,
  SA_STATUS,
  progressQuery,
  type AuditEventInput,
  type AuditEventType,
  type PipelineRunInput,
  type PipelineRunResult,
  type RunProgress,
  type RunStatus,
  type StageState,
} from '../src/contracts';
import { evaluateCondition, resolveMapping } from '../src/pipelines/expressions';

// The security stage is quick and local: a short timeout, a few tries.
const { checkInput } = proxyActivities<Activities>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: [FailureType.InputRejected] },
});

// Audit writes retry without limit (no maximumAttempts): a run never ends with a missing event, it waits for
// PostgreSQL to come back instead.
const { recordAudit } = proxyActivities<Activities>({
  startToCloseTimeout: '15 seconds',
  retry: { initialInterval: '500 ms', maximumInterval: '30 seconds', backoffCoefficient: 2 },
});

function describeFailure(err: unknown): { type: string; message: string; attempts?: number } {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) {
    const detail = cause.details?.[0] as { attempt?: number } | undefined;
    return { type: cause.type ?? 'Error', message: cause.message, attempts: detail?.attempt };
  }
  if (cause instanceof Error) return { type: cause.name, message: cause.message };
  return { type: 'Error', message: String(cause) };
}

/**
 * Interprets the pipeline definition snapshot the run was started with: security stage, then each agent stage
 * in order, with every state change written to the audit trail under a deterministic event id.
 */
export async function pipeline(args: PipelineRunInput): Promise<PipelineRunResult> {
  const { definition: def, principal } = args;
  const { workflowId } = workflowInfo();
  const startedAt = Date.now();
  const progress: RunProgress = {
    runId: args.runId,
    pipeline: def.name,
    version: def.version,
    status: 'running',
    stages: def.stages.map((s): StageState => ({ name: s.name, agent: s.agent, status: 'pending', attempts: 0 })),
  };
  setHandler(progressQuery, () => progress);

  let sequence = 0;
  const audit = (type: AuditEventType, data: Record<string, unknown>, stage?: string) => {
    const event: AuditEventInput = {
      id: `${workflowId}#${++sequence}`,
      tenant: principal.tenant,
      runId: args.runId,
      type,
      actor: principal.subject,
      pipeline: def.name,
      pipelineVersion: def.version,
      definitionHash: args.definitionHash,
      stage,
      data,
      occurredAt: Date.now(),
    };
    return recordAudit(event);
  };
  const finish = async (status: RunStatus, error?: PipelineRunResult['error']): Promise<PipelineRunResult> => {
    progress.status = status;
    upsertSearchAttributes([{ key: SA_STATUS, value: status }]);
    const durationMs = Date.now() - startedAt;
    await audit(status === 'completed' ? 'run.completed' : 'run.failed', { durationMs, ...(error ? { error } : {}) });
    return { ...progress, outputs, ...(error ? { error } : {}) };
  };

  const outputs: Record<string, unknown> = {};
  let inputHash: string;
  try {
    ({ inputHash } = await checkInput({ definition: def, definitionHash: args.definitionHash, input: args.input }));
  } catch (err) {
    const f = describeFailure(err);
    await audit('run.started', { requestId: args.request.requestId, accepted: false });
    const result = await finish('failed', { type: f.type, message: f.message });
    throw ApplicationFailure.create({ type: f.type, message: f.message, nonRetryable: true, details: [result] });
  }
  await audit('run.started', { requestId: args.request.requestId, accepted: true, inputHash, roles: principal.roles });

  for (const [i, stage] of def.stages.entries()) {
    const state = progress.stages[i];
    const scope = { input: args.input, stages: outputs };
    if (stage.when && !evaluateCondition(stage.when, scope)) {
      state.status = 'skipped';
      await audit('stage.skipped', { reason: 'when' }, stage.name);
      continue;
    }
    const { runAgent } = proxyActivities<Activities>({
      startToCloseTimeout: stage.timeoutMs,
      // runAgent heartbeats on its own, so every stage can learn of cancellation within this bound.
      heartbeatTimeout: stage.heartbeatTimeoutMs ?? Math.min(stage.timeoutMs, 10_000),
      taskQueue: stage.taskQueue,
      retry: {
        maximumAttempts: stage.retry.maximumAttempts,
        initialInterval: stage.retry.initialIntervalMs,
        backoffCoefficient: stage.retry.backoffCoefficient,
        maximumInterval: stage.retry.maximumIntervalMs,
      },
    });
    state.status = 'running';
    state.startedAt = Date.now();
    try {
      const input = resolveMapping(stage.with ?? {}, scope) as Record<string, unknown>;
      const res = await runAgent({ workflowId, runId: args.runId, stage: stage.name, agent: stage.agent, input });
      outputs[stage.name] = res.output;
      Object.assign(state, { status: 'completed', attempts: res.attempt, finishedAt: Date.now(), output: res.output });
      await audit(
        'stage.completed',
        { agent: stage.agent, attempts: res.attempt, durationMs: res.durationMs, inputHash: res.inputHash, outputHash: res.outputHash },
        stage.name,
      );
    } catch (err) {
      const f = describeFailure(err);
      const error = { type: f.type, message: f.message };
      Object.assign(state, { status: 'failed', attempts: f.attempts ?? state.attempts, finishedAt: Date.now(), error });
      await audit('stage.failed', { agent: stage.agent, attempts: f.attempts, error }, stage.name);
      const result = await finish('failed', { ...error, stage: stage.name });
      throw ApplicationFailure.create({
        type: f.type,
        message: `stage "${stage.name}" failed: ${f.message}`,
        nonRetryable: true,
        details: [result],
      });
    }
  }
  return finish('completed');
}
