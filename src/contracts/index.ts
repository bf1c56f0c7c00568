/**
 * The contract shared by the facade, the worker and the workflows: names, payload shapes, message definitions
 * and search attribute keys. Workflow code imports this module, so it must stay free of Node built-ins and
 * I/O libraries; `@temporalio/workflow`'s define* helpers are plain data and safe on both sides.
 */
import { defineSearchAttributeKey } from '@temporalio/common';
import { defineQuery } from '@temporalio/workflow';
import type { PipelineDefinition, Role } from '../pipelines/definition-schema';

/** Task queue served by the default worker kind. */
export const DEFAULT_TASK_QUEUE = 'agentry-agents';

/** The workflow type that interprets pipeline definitions. */
export const PIPELINE_WORKFLOW = 'pipeline';

/** Who started or touched a run. Carried into the workflow; never includes the bearer token. */
export interface Principal {
  subject: string;
  tenant: string;
  roles: Role[];
}

/** Facts about the HTTP request that started a run, kept for the audit trail. */
export interface RequestMeta {
  requestId: string;
  /** Caller address as seen by the facade. */
  ip?: string;
  userAgent?: string;
}

export interface PipelineRunInput {
  /** The public run id: `{pipeline}/{id}`. The workflow id is `{tenant}/{runId}`. */
  runId: string;
  /** Snapshot of the definition at start time, so later edits never change a running pipeline. */
  definition: PipelineDefinition;
  /** sha256 of the canonical definition, recorded in the audit trail. */
  definitionHash: string;
  input: Record<string, unknown>;
  principal: Principal;
  request: RequestMeta;
}

export type StageStatus = 'pending' | 'running' | 'completed' | 'skipped' | 'failed';

export interface StageState {
  name: string;
  agent: string;
  status: StageStatus;
  attempts: number;
  /** Epoch milliseconds, workflow time. */
  startedAt?: number;
  finishedAt?: number;
  output?: unknown;
  error?: { type: string; message: string };
}

export type RunStatus = 'running' | 'completed' | 'failed' | 'cancelled';

export interface RunProgress {
  runId: string;
  pipeline: string;
  version: number;
  status: RunStatus;
  stages: StageState[];
}

export interface PipelineRunResult extends RunProgress {
  /** Outputs keyed by stage name (skipped stages are absent). */
  outputs: Record<string, unknown>;
  error?: { type: string; message: string; stage?: string };
}

/** Query answering the per-stage state of a run. */
export const progressQuery = defineQuery<RunProgress>('progress');

/** Search attributes that make runs filterable in the Web UI and in `GET /v1/runs`. */
export const SA_TENANT = defineSearchAttributeKey('AgentryTenant', 'KEYWORD');
export const SA_PIPELINE = defineSearchAttributeKey('AgentryPipeline', 'KEYWORD');
export const SA_STATUS = defineSearchAttributeKey('AgentryStatus', 'KEYWORD');

/** Search attributes to register on a dev server or cluster (name → Temporal type). */
export const SEARCH_ATTRIBUTES: Record<string, 'Keyword'> = {
  [SA_TENANT.name]: 'Keyword',
  [SA_PIPELINE.name]: 'Keyword',
  [SA_STATUS.name]: 'Keyword',
};

/**
 * The closed set of failure types raised to Temporal. Class names and these strings are part of the retry
 * contract: never rename them casually.
 */
export enum FailureType {
  /** The stage's input did not match the agent's input schema. */
  AgentInputInvalid = 'AgentInputInvalid',
  /** The agent returned something its output schema rejects. */
  AgentOutputInvalid = 'AgentOutputInvalid',
  /** The stage names an agent this worker does not host. */
  UnknownAgent = 'UnknownAgent',
  /** The agent failed in a way that may succeed on retry (I/O, timeouts). */
  AgentFailed = 'AgentFailed',
  /** The agent failed in a way that will not change on retry. */
  AgentRejected = 'AgentRejected',
  /** The run input failed the definition's input schema or size limits. */
  InputRejected = 'InputRejected',
  /** The audit trail could not be written; retried until PostgreSQL returns. */
  AuditUnavailable = 'AuditUnavailable',
}

/** Failure types that never succeed on retry. */
export const NON_RETRYABLE_FAILURES: readonly FailureType[] = [
  FailureType.AgentInputInvalid,
  FailureType.AgentOutputInvalid,
  FailureType.UnknownAgent,
  FailureType.AgentRejected,
  FailureType.InputRejected,
];

/** Audit event types written by the pipeline workflow. */
export type AuditEventType =
  | 'run.started'
  | 'run.completed'
  | 'run.failed'
  | 'run.cancelled'
  | 'stage.completed'
  | 'stage.failed'
  | 'stage.skipped';

export interface AuditEventInput {
  /** Deterministic: `{workflowId}#{sequence}`, so retries of the write never duplicate it. */
  id: string;
  tenant: string;
  runId: string;
  type: AuditEventType;
  actor: string;
  pipeline: string;
  pipelineVersion: number;
  definitionHash: string;
  stage?: string;
  /** Small structured facts (status, attempts, hashes of input and output); never raw customer text. */
  data: Record<string, unknown>;
  /** Epoch milliseconds (workflow time). */
  occurredAt: number;
}
