import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { AgentContext } from '../src/agents/agent-contract';
import { AgentRejectedError } from '../src/agents/agent-contract';
import {
  AgentInputError,
  AgentOutputError,
  LlmRejectedError,
  TemplateLoadError,
  TrainingDataError,
  UnknownAgentError,
  type AgentRegistry,
} from '../src/agents';
import { contentHash } from '../src/audit/audit-chain';
import { FailureType, type StageUsage } from '../src/contracts';
import { ClaimMissingError, claimLargeFields, type ClaimStore } from '../src/storage/claim-store';
import type { Logger, RunMetrics } from '../src/telemetry';

export interface RunAgentArgs {
  workflowId: string;
  /** Owner of any claimed payloads the input references. Absent in runs started before claim checks. */
  tenant?: string;
  runId: string;
  stage: string;
  agent: string;
  input: Record<string, unknown>;
}

export interface RunAgentResult {
  /** The output, with fields too large for Temporal replaced by claim references (`claimed` names them). */
  output: unknown;
  claimed?: string[];
  /** sha256 of the canonical input and output, for the audit trail. */
  inputHash: string;
  outputHash: string;
  attempt: number;
  durationMs: number;
  /** Model tokens and cost, when the agent reports what it used. */
  usage?: StageUsage;
}

function failure(type: FailureType, message: string, nonRetryable: boolean, attempt: number, cause?: Error) {
  return ApplicationFailure.create({ type, message, nonRetryable, details: [{ attempt }], cause });
}

export interface RunAgentDeps {
  agents: AgentRegistry;
  metrics: RunMetrics;
  logger: Logger;
  claims: ClaimStore;
  /** Outputs larger than this travel by reference. @format bytes */
  inlineMaxBytes: number;
}

export function createRunAgentActivity(deps: RunAgentDeps) {
  return async function runAgent(args: RunAgentArgs): Promise<RunAgentResult> {
    const actx = Context.current();
    const attempt = actx.info.attempt;
    const logger = deps.logger.child({ runId: args.runId, stage: args.stage, agent: args.agent, attempt });
    // Heartbeats carry cancellation back to the activity, so a quiet agent still learns that its run was
    // cancelled; agents may heartbeat with progress of their own in between.
    const beatEvery = Math.max(200, (actx.info.heartbeatTimeoutMs ?? 0) / 3);
    const beat = actx.info.heartbeatTimeoutMs ? setInterval(() => actx.heartbeat(), beatEvery) : undefined;
    const ctx: AgentContext = {
      signal: actx.cancellationSignal,
      heartbeat: (progress) => actx.heartbeat(progress),
      logger,
      idempotencyKey: `${args.workflowId}/${args.stage}`,
      runId: args.runId,
      stage: args.stage,
      attempt,
    };
    const started = performance.now();
    const observe = (status: 'ok' | 'error' | 'cancelled') => {
      const seconds = (performance.now() - started) / 1000;
      deps.metrics.agentExecutions.inc({ agent_name: args.agent, status });
      deps.metrics.agentDuration.observe({ agent_name: args.agent, status }, seconds);
      return Math.round(seconds * 1000);
    };
    try {
      const tenant = args.tenant ?? args.workflowId.split('/')[0];
      const input = await deps.claims.resolve(args.input, tenant);
      const output = await deps.agents.invoke(args.agent, input, ctx);
      // invoke() has checked the output against the agent's schema, an object.
      const usage = deps.agents.get(args.agent)?.usage?.(output as Record<string, unknown>);
      const { value, claimed } = await claimLargeFields(deps.claims, output, deps.inlineMaxBytes, {
        idPrefix: `${args.workflowId}/${args.stage}`,
        tenant,
        runId: args.runId,
        stage: args.stage,
      });
      const durationMs = observe('ok');
      logger.debug({ durationMs, claimed }, 'agent finished');
      return {
        output: value,
        ...(claimed.length ? { claimed } : {}),
        inputHash: contentHash(input),
        outputHash: contentHash(output),
        attempt,
        durationMs,
        ...(usage ? { usage } : {}),
      };
    } catch (err) {
      if (actx.cancellationSignal.aborted) {
        observe('cancelled');
        // Report the cancellation itself (a CancelledFailure), not whatever the aborted agent threw.
        throw actx.cancellationSignal.reason ?? err;
      }
      observe('error');
      const e = err instanceof Error ? err : new Error(String(err));
      logger.warn({ err: { name: e.name, message: e.message } }, 'agent failed');
      // Only errors of known meaning are final; anything else is treated as transient and retried per policy.
      if (e instanceof UnknownAgentError) throw failure(FailureType.UnknownAgent, e.message, true, attempt);
      if (e instanceof AgentInputError) throw failure(FailureType.AgentInputInvalid, e.message, true, attempt);
      if (e instanceof AgentOutputError) throw failure(FailureType.AgentOutputInvalid, e.message, true, attempt);
      // LlmRejectedError: a budget would be exceeded, the answer missed its schema after the repair, or the provider refused the request.
      if (e instanceof AgentRejectedError || e instanceof LlmRejectedError || e instanceof TrainingDataError || e instanceof TemplateLoadError || e instanceof ClaimMissingError) {
        throw failure(FailureType.AgentRejected, e.message, true, attempt);
      }
      throw failure(FailureType.AgentFailed, e.message, false, attempt, e);
    } finally {
      if (beat) clearInterval(beat);
    }
  };
}
