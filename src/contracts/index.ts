/**
 * The contract shared by the facade, the worker and the workflows: names, payload shapes, message definitions
 * and search attribute keys. Workflow code imports this module, so it must stay free of Node built-ins and
 * I/O libraries; `@temporalio/workflow`'s define* helpers are plain data and safe on both sides.
 */
import { defineSearchAttributeKey } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
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

export type StageStatus = 'pending' | 'running' | 'awaiting-approval' | 'completed' | 'skipped' | 'failed' | 'cancelled';

export interface StageState {
  name: string;
  kind: 'agent' | 'approval' | 'parallel';
  /** The agent an agent stage runs. */
  agent?: string;
  /** The parallel group an agent stage belongs to. */
  group?: string;
  /** Compensation stages run only when the run is cancelled. */
  compensation?: boolean;
  status: StageStatus;
  attempts: number;
  /** Epoch milliseconds, workflow time. */
  startedAt?: number;
  finishedAt?: number;
  output?: unknown;
  error?: { type: string; message: string };
  /** Metered resources the stage used (model tokens and their cost), when its agent reports them. */
  usage?: StageUsage;
}

/** Model tokens and their cost, as one stage used them (every provider call, repairs included). */
export interface StageUsage {
  model?: string;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  /** Priced by the configured price table; 0 for unpriced models. @format USD */
  costUsd: number;
}

/** What a run has spent so far, summed over its stages. */
export interface RunSpend {
  /** @format tokens */
  tokens: number;
  /** @format USD */
  costUsd: number;
}

/** Run statuses, also the values of the `AgentryStatus` search attribute. */
export type RunStatus = 'running' | 'awaiting-approval' | 'completed' | 'failed' | 'cancelled';

/** One stage transition, numbered so clients can resume a stream of them (`Last-Event-ID`). */
export interface Transition {
  /** 1, 2, 3... in the order the workflow made them. */
  seq: number;
  /** Epoch milliseconds, workflow time. */
  at: number;
  /** The stage, or absent for transitions of the run itself. */
  stage?: string;
  status: StageStatus | RunStatus;
  detail?: string;
}

/** An approval decision as sent by the facade (update) or a plain client (signal of the same name). */
export interface ApprovalDecisionInput {
  stage: string;
  decision: 'approve' | 'reject';
  comment?: string;
  /** Who decides. The facade fills this from the verified token; CLI users state it themselves. */
  approver: { subject: string; roles: Role[] };
}

export interface ApprovalRecord {
  stage: string;
  decision: 'approved' | 'rejected' | 'timed_out';
  /** Subject of the approver; `system` when a timeout decided. */
  approver: string;
  comment?: string;
  /** Epoch milliseconds, workflow time, when the decision arrived. */
  decidedAt: number;
  /** Epoch milliseconds when the decision was applied to the stage (later than decidedAt for early approvals). */
  appliedAt?: number;
  escalated?: boolean;
}

export interface CancelRequest {
  actor: string;
  reason: string;
}

export interface SignalRecord {
  name: string;
  actor: string;
  at: number;
}

export interface RunProgress {
  runId: string;
  pipeline: string;
  version: number;
  status: RunStatus;
  stages: StageState[];
  approvals: ApprovalRecord[];
  signals: SignalRecord[];
  /** Signals sent straight to Temporal after the run had received `limits.maxSignals` (absent when none). */
  signalsDropped?: number;
  cancellation?: CancelRequest;
  /** Model tokens and cost used by the run's stages so far (absent in results of runs that ended before it was kept). */
  spend?: RunSpend;
  /** Every transition so far; `GET /v1/runs/:id/events` streams these. */
  transitions: Transition[];
}

export interface PipelineRunResult extends RunProgress {
  /** Outputs keyed by stage name (skipped stages are absent). */
  outputs: Record<string, unknown>;
  error?: { type: string; message: string; stage?: string };
}

/** Query answering the per-stage state of a run. */
export const progressQuery = defineQuery<RunProgress>('progress');

/**
 * Approve or reject an approval stage. The update validates (role, stage state, self-approval) before it is
 * accepted, so a refused decision never enters the history; it answers with the recorded decision.
 */
export const approveUpdate = defineUpdate<ApprovalRecord, [ApprovalDecisionInput]>('approve');
/** The same decision for plain clients (`temporal workflow signal --name approve`); invalid ones are ignored. */
export const approveSignal = defineSignal<[ApprovalDecisionInput]>('approve');
/** Cancel with an actor and a reason; the run compensates, audits who cancelled it and ends `cancelled`. */
export const cancelSignal = defineSignal<[CancelRequest]>('cancel');
/** Payload of a definition-declared signal (`POST /v1/runs/:id/signals/:name`). */
export interface SignalInput {
  actor: string;
  payload: Record<string, unknown>;
}

/** Signals (declared ones; approve and cancel do not count) a run accepts unless its definition sets `limits.maxSignals`. */
export const DEFAULT_MAX_SIGNALS = 100;
/** Largest signal payload the facade sends, as UTF-8 bytes of its JSON, unless the definition sets `limits.maxSignalBytes`. */
export const DEFAULT_MAX_SIGNAL_BYTES = 16_384;

/** A declared signal delivered as an update, so the facade learns whether the run took it. */
export interface SignalDelivery extends SignalInput {
  name: string;
}
/** What the run answers a delivered signal with. */
export interface SignalReceipt {
  name: string;
  /** Signals the run has received so far, this one included, and the most it takes. */
  received: number;
  max: number;
}
/**
 * A declared signal, validated before it enters the history: the facade sends these, so a run that has had its
 * `limits.maxSignals` refuses more instead of filling its history (plain signals beyond the limit are dropped).
 */
export const signalUpdate = defineUpdate<SignalReceipt, [SignalDelivery]>('signal');

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
  /** An approval stage was rejected, or timed out with `onTimeout: reject`. */
  ApprovalRejected = 'ApprovalRejected',
  /** The run exceeded its definition's `limits.runTimeout`. */
  RunTimedOut = 'RunTimedOut',
  /** The injection guard flagged a stage's input and the pipeline's policy is `block`. */
  SecurityBlocked = 'SecurityBlocked',
  /** The worker that picked up a backup has no backup configuration (no database or folder to back up). */
  BackupUnavailable = 'BackupUnavailable',
  /** A backup could not be written (database, pg_dump, disk); the backup workflow retries it a few times. */
  BackupFailed = 'BackupFailed',
}

/** Failure types that never succeed on retry. */
export const NON_RETRYABLE_FAILURES: readonly FailureType[] = [
  FailureType.AgentInputInvalid,
  FailureType.AgentOutputInvalid,
  FailureType.UnknownAgent,
  FailureType.AgentRejected,
  FailureType.InputRejected,
  FailureType.ApprovalRejected,
  FailureType.RunTimedOut,
  FailureType.SecurityBlocked,
  FailureType.BackupUnavailable,
];

/**
 * Audit event types: written by the pipeline workflow; for `security.*` about callers, by the facade; for
 * `backup.*`, by the backup service (tenant `SYSTEM_TENANT`).
 */
export const AUDIT_EVENT_TYPES = [
  'run.started',
  'run.completed',
  'run.failed',
  'run.cancelled',
  'stage.completed',
  'stage.failed',
  'stage.skipped',
  'approval.requested',
  'approval.granted',
  'approval.rejected',
  'approval.timed_out',
  'approval.escalated',
  'signal.received',
  'security.denied',
  'security.flagged',
  'security.blocked',
  'security.rate_limited',
  'backup.created',
  'backup.restored',
] as const;
export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

/**
 * The audit tenant of events that belong to no tenant: the platform's own (backups) and those about client
 * addresses. Not a valid tenant slug, so no token can name it.
 */
export const SYSTEM_TENANT = '_system';

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

/** The workflow type that takes a backup; the backup Schedule starts it. */
export const BACKUP_WORKFLOW = 'backup';

/** Id of the Temporal Schedule that runs the backup workflow. */
export const BACKUP_SCHEDULE_ID = 'agentry-backup';

/** What the backup workflow asks the `createBackup` activity for. */
export interface BackupRequest {
  /** Backup id, `YYYYMMDDTHHMMSSZ-<suffix>`: fixed per workflow run, so a retried activity finishes the same backup. */
  id: string;
  /** Who asked: `schedule:{scheduleId}`, `cli:{user}`, ... Recorded as the actor of `backup.created`. */
  actor: string;
}

/** A finished backup, as `createBackup` and `agentry backup create` report it. */
export interface BackupSummary {
  id: string;
  /** ISO 8601. */
  createdAt: string;
  /** Folder of the backup. */
  path: string;
  /** `pg_dump` (plain SQL) or `ndjson` (logical export, when pg_dump is not on PATH). */
  databaseFormat: 'pg_dump' | 'ndjson';
  /** Rows per table at the snapshot. */
  rows: Record<string, number>;
  files: number;
  /** Total size of the files. @format bytes */
  bytes: number;
  /** sha256 of manifest.json, also recorded in the `backup.created` audit event. */
  manifestSha256: string;
  /** True when this id was already complete (a retried activity) and nothing was written again. */
  existing: boolean;
}
