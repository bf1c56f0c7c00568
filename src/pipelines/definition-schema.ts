/**
 * The pipeline definition DSL: the zod schema that validates an authored definition and the plain-JSON shape it
 * parses into. Stages come in three kinds, told apart by their key: agent stages (`agent:`), approval stages
 * (`approval:`) and parallel groups (`parallel:`). Top-level `signals` and `onCancel` are optional, so every v1
 * definition is still valid.
 *
 * Workflow code imports this module's TYPES only (`import type`), so the runtime dependencies here (zod, ajv)
 * never reach the workflow bundle. The parsed output is deliberately plain JSON with every duration already in
 * milliseconds and every default filled in: the definition travels to the workflow as a Temporal payload, and
 * the interpreter should neither parse durations nor know the defaults.
 */
import Ajv, { type ValidateFunction } from 'ajv';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { z } from 'zod';
import { isValidPath } from './expressions';

// ---------------------------------------------------------------------------------------------------------------
// Parsed types (what the loader returns and the workflow receives)
// ---------------------------------------------------------------------------------------------------------------

export type JsonPrimitive = string | number | boolean | null;
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/**
 * A stage's input mapping: agent input name → value. Strings may hold `${path}` references, resolved by
 * `resolveMapping` in `expressions.ts`.
 */
export type Mapping = { [key: string]: JsonValue };

/** The roles a principal may hold; `access` lists which of them may do what with a pipeline. */
export const ROLES = ['viewer', 'operator', 'approver', 'admin', 'auditor'] as const;
export type Role = (typeof ROLES)[number];

export interface PipelineAccess {
  /** Roles that may start a run. @default ['operator', 'admin'] */
  start: Role[];
  /** Roles that may read runs (progress, results). @default all roles */
  read: Role[];
  /** Roles that may approve approval stages. @default ['approver', 'admin'] */
  approve: Role[];
  /** Roles that may signal a running run. @default ['operator', 'admin'] */
  signal: Role[];
  /** Roles that may cancel a run. @default ['operator', 'admin'] */
  cancel: Role[];
}

export interface PipelineLimits {
  /** Workflow run timeout. Authored as `runTimeout` (duration string). @default 3_600_000 (1h) @format ms */
  runTimeoutMs: number;
  /** Runs of this pipeline allowed at once (per tenant, enforced by the facade). @default 100 */
  maxConcurrentRuns: number;
  /** Largest accepted run input, measured as UTF-8 bytes of its JSON. @default 65536 @format bytes */
  maxInputBytes: number;
  /**
   * Declared signals one run accepts; the facade answers 409 past it, and plain signals are dropped. Absent when not
   * authored (so definitions hash as before). @default DEFAULT_MAX_SIGNALS (100)
   */
  maxSignals?: number;
  /** Largest signal payload the facade sends, as UTF-8 bytes of its JSON. @default DEFAULT_MAX_SIGNAL_BYTES (16384) @format bytes */
  maxSignalBytes?: number;
}

/** Temporal activity retry policy for one stage, durations in milliseconds. */
export interface RetryPolicy {
  /** Attempts including the first. @default 3 */
  maximumAttempts: number;
  /** Delay before the first retry. Authored as `initialInterval`. @default 1000 (1s) @format ms */
  initialIntervalMs: number;
  /** Multiplier applied to the delay after each retry. @default 2 */
  backoffCoefficient: number;
  /** Cap on the delay between retries. Authored as `maximumInterval`. @default 30000 (30s) @format ms */
  maximumIntervalMs: number;
}

/** Operators usable in one comparison; when several are given they must all hold. */
export interface RefCondition {
  /** Path of the value under test, `input.<field>...`, `signals.<name>...` or `<stage>.<field>...` (no `${}`). */
  ref: string;
  /** Deep JSON equality. */
  eq?: JsonValue;
  /** Deep JSON inequality (a missing value is unequal to everything). */
  ne?: JsonValue;
  /** Ordering holds only when both sides are numbers or both are strings (code-unit order). */
  lt?: number | string;
  lte?: number | string;
  gt?: number | string;
  gte?: number | string;
  /** The value deep-equals one of these. */
  in?: JsonValue[];
  /** `true`: the value is present and not null; `false`: it is missing or null. */
  exists?: boolean;
  /** The value is a string starting with this prefix. */
  startsWith?: string;
  /** A string value contains this substring, or an array value has an element deep-equal to this. */
  contains?: JsonValue;
}
export interface AllCondition {
  all: Condition[];
}
export interface AnyCondition {
  any: Condition[];
}
export interface NotCondition {
  not: Condition;
}
/** A `when` condition, kept as data and evaluated by `evaluateCondition` in `expressions.ts`. */
export type Condition = RefCondition | AllCondition | AnyCondition | NotCondition;

/** The comparison operators of a `RefCondition`, in evaluation order. */
export const CONDITION_OPERATORS = [
  'eq',
  'ne',
  'lt',
  'lte',
  'gt',
  'gte',
  'in',
  'exists',
  'startsWith',
  'contains',
] as const;
export type ConditionOperator = (typeof CONDITION_OPERATORS)[number];

/** A stage that runs one agent in the `runAgent` activity. */
export interface AgentStage {
  /** Discriminates the stage kinds; never authored (the loader tells kinds apart by their key). */
  kind: 'agent';
  name: string;
  agent: string;
  /** Agent input mapping. @default {} */
  with: Mapping;
  /** Start-to-close timeout of one attempt. Authored as `timeout`. @default 30000 (30s) @format ms */
  timeoutMs: number;
  retry: RetryPolicy;
  /** The stage runs only when this holds; otherwise it is skipped and its output is absent. */
  when?: Condition;
  /** Task queue of the worker kind that hosts the agent. Absent: the workflow's default queue. */
  taskQueue?: string;
  /** Heartbeat timeout; only for agents that heartbeat. Authored as `heartbeatTimeout`. @format ms */
  heartbeatTimeoutMs?: number;
  /**
   * The stage's input carries text from outside (customers, web pages): the injection guard screens it before the
   * stage runs, under the definition's `security.injection` policy. Present only when true.
   */
  untrustedText?: true;
}

/** What an approval stage does when nobody decides within its timeout. */
export const APPROVAL_TIMEOUT_ACTIONS = ['reject', 'approve', 'escalate'] as const;
export type ApprovalTimeoutAction = (typeof APPROVAL_TIMEOUT_ACTIONS)[number];

/**
 * A stage that waits for a person to approve or reject the run. Authored as `approval: { roles, timeout, ... }`.
 * Its output is an `ApprovalOutput`.
 */
export interface ApprovalStage {
  kind: 'approval';
  name: string;
  /** The stage runs only when this holds; otherwise it is skipped and its output is absent. */
  when?: Condition;
  /** Roles that may decide, before any escalation. Never empty. */
  roles: Role[];
  /** How long to wait for a decision. Authored as `timeout` (required). @format ms */
  timeoutMs: number;
  /**
   * When the timeout passes undecided: `reject` fails the run, `approve` lets it carry on, `escalate` hands the
   * decision to `escalateTo` for `escalationTimeoutMs` more, after which a still-undecided approval is rejected.
   * A decision made by a timeout has `decision: 'timed_out'` in the output. @default 'reject'
   */
  onTimeout: ApprovalTimeoutAction;
  /** Roles that may decide once escalated. `[]` unless `onTimeout` is `escalate`. @default ['admin'] when escalating */
  escalateTo: Role[];
  /**
   * How long an escalated approval waits before it is rejected. Authored as `escalationTimeout`. `0` unless
   * `onTimeout` is `escalate`. @default timeoutMs when escalating @format ms
   */
  escalationTimeoutMs: number;
  /** Whether the principal who started the run may approve it. @default false */
  allowSelfApproval: boolean;
}

/** The output of an approval stage, referable as `${<stage>.decision}` and so on. */
export interface ApprovalOutput {
  decision: 'approved' | 'rejected' | 'timed_out';
  /** Subject of whoever decided; `system` when a timeout decided. */
  approver: string;
  comment?: string;
}

/** The fields of `ApprovalOutput`, for load-time reference checks. */
export const APPROVAL_OUTPUT_FIELDS = ['decision', 'approver', 'comment'] as const satisfies readonly (keyof ApprovalOutput)[];

/** How a parallel group reacts to a failing stage. */
export const PARALLEL_FAILURE_MODES = ['failFast', 'collect'] as const;
export type ParallelFailureMode = (typeof PARALLEL_FAILURE_MODES)[number];

/**
 * A group of agent stages run concurrently. Authored as `parallel: { maxConcurrency, onFailure, stages }`.
 *
 * Its stages may reference the run input, signals and stages before the group, never each other. Later stages
 * may reference a member directly (`${member.field}`) or through the group, whose output is an object keyed by
 * member name (`${group.member.field}`); a member that was skipped or did not complete is absent from it.
 */
export interface ParallelStage {
  kind: 'parallel';
  name: string;
  /** The group (all of its stages) runs only when this holds; otherwise it is skipped and its output is absent. */
  when?: Condition;
  /** Stages of the group running at once, 1 to the loader's `maxParallelStages`. @default 4 (or that limit if lower) */
  maxConcurrency: number;
  /**
   * `failFast`: the first failing stage fails the group and the stages still running are cancelled. `collect`:
   * every stage runs to its end and the failures are gathered before the group's outcome is decided.
   * @default 'failFast'
   */
  onFailure: ParallelFailureMode;
  /** Agent stages only (no approvals, no nested groups); at least one, at most `maxParallelStages`. */
  stages: AgentStage[];
}

export type Stage = AgentStage | ApprovalStage | ParallelStage;

export interface PipelineSecurity {
  /** `flag`: record `security.flagged` and go on; `block`: record it and fail the run (SecurityBlocked). */
  injection: 'flag' | 'block';
}

/** A validated, normalised pipeline definition: plain JSON, safe to send as a Temporal payload. */
export interface PipelineDefinition {
  name: string;
  version: number;
  description: string;
  /** JSON Schema (draft 2020-12 unless `$schema` says draft-07) of the run input; compiled at load. */
  input: JsonObject;
  access: PipelineAccess;
  limits: PipelineLimits;
  /**
   * Names of the signals a run accepts (besides the built-in `approve` and `cancel`); the latest payload of each
   * is referable as `${signals.<name>.<field>}`. @default []
   */
  signals: string[];
  /** How the injection guard treats flagged text before `untrustedText` stages. @default { injection: 'flag' } */
  security: PipelineSecurity;
  /** The main line, in order. Stage names are unique across the whole definition, group members included. */
  stages: Stage[];
  /**
   * Compensation: agent stages the workflow runs, in order, when a run is cancelled. They may reference the run
   * input, signals and any main-line stage (whose output may be missing, like a skipped stage's). @default []
   */
  onCancel: AgentStage[];
}

// ---------------------------------------------------------------------------------------------------------------
// Defaults
// ---------------------------------------------------------------------------------------------------------------

export const DEFAULT_ACCESS: Readonly<PipelineAccess> = Object.freeze<PipelineAccess>({
  start: ['operator', 'admin'],
  read: [...ROLES],
  approve: ['approver', 'admin'],
  signal: ['operator', 'admin'],
  cancel: ['operator', 'admin'],
});

/** @format ms */
export const DEFAULT_RUN_TIMEOUT_MS = 3_600_000;
export const DEFAULT_MAX_CONCURRENT_RUNS = 100;
/** @format bytes */
export const DEFAULT_MAX_INPUT_BYTES = 65_536;
/** @format ms */
export const DEFAULT_STAGE_TIMEOUT_MS = 30_000;
export const DEFAULT_RETRY: Readonly<RetryPolicy> = Object.freeze({
  maximumAttempts: 3,
  initialIntervalMs: 1_000,
  backoffCoefficient: 2,
  maximumIntervalMs: 30_000,
});
/** Default `onTimeout` of an approval stage. */
export const DEFAULT_APPROVAL_ON_TIMEOUT: ApprovalTimeoutAction = 'reject';
/** Default `escalateTo` of an approval stage with `onTimeout: escalate`. */
export const DEFAULT_APPROVAL_ESCALATE_TO: readonly Role[] = Object.freeze<Role[]>(['admin']);
/** Default `maxConcurrency` of a parallel group. */
export const DEFAULT_PARALLEL_MAX_CONCURRENCY = 4;
/** Default `onFailure` of a parallel group. */
export const DEFAULT_PARALLEL_ON_FAILURE: ParallelFailureMode = 'failFast';
/**
 * Most stages one parallel group may hold, and its highest `maxConcurrency`, unless the loader is given another
 * `maxParallelStages`. Far below Temporal's limit of 2,000 pending activities per workflow, so a group never
 * approaches it even with other work in flight.
 */
export const MAX_PARALLEL_STAGES = 50;

// ---------------------------------------------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------------------------------------------

// Units in descending order so compound values read naturally ('1h30m'); each unit at most once.
const DURATION_PATTERN = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/;
const UNIT_MS = [86_400_000, 3_600_000, 60_000, 1_000, 1] as const;

/**
 * Parses a duration such as `500ms`, `30s`, `10m`, `1h`, `2d` or `1h30m` into milliseconds; `undefined` when
 * the text is not a positive duration.
 */
export function parseDuration(text: string): number | undefined {
  const match = DURATION_PATTERN.exec(text);
  if (!match || text === '') return undefined;
  let ms = 0;
  for (let i = 0; i < UNIT_MS.length; i++) {
    const amount = match[i + 1];
    if (amount !== undefined) ms += Number(amount) * UNIT_MS[i]!;
  }
  return ms > 0 && Number.isSafeInteger(ms) ? ms : undefined;
}

const durationSchema = z.string({ error: 'expected a duration string like "500ms", "30s", "10m" or "1h"' }).transform((text, ctx) => {
  const ms = parseDuration(text);
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `invalid duration "${text}": expected a positive amount with a unit, like "500ms", "30s", "10m", "1h" or "1h30m"`,
    });
    return z.NEVER;
  }
  return ms;
});

// ---------------------------------------------------------------------------------------------------------------
// JSON values, mappings, conditions
// ---------------------------------------------------------------------------------------------------------------

function isJsonValue(value: unknown): value is JsonValue {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) return value.every(isJsonValue);
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) return false;
    return Object.values(value as Record<string, unknown>).every(isJsonValue);
  }
  return false;
}

// z.json() reports a nested union error per branch; one plain message is far easier to act on.
const jsonValueSchema = z.custom<JsonValue>(isJsonValue, {
  message: 'expected a JSON value (string, finite number, boolean, null, array or object)',
});

const mappingSchema = z.record(z.string().min(1), jsonValueSchema);

const pathSchema = z.string().refine(isValidPath, {
  message: 'expected a path like "input.field" or "stage.field.sub" (letters, digits, "_" and "-", dot-separated)',
});
const orderedOperand = z.union([z.number(), z.string()], { error: 'expected a number or a string' });

const refConditionSchema = z
  .strictObject({
    ref: pathSchema,
    eq: jsonValueSchema.optional(),
    ne: jsonValueSchema.optional(),
    lt: orderedOperand.optional(),
    lte: orderedOperand.optional(),
    gt: orderedOperand.optional(),
    gte: orderedOperand.optional(),
    in: z.array(jsonValueSchema).optional(),
    exists: z.boolean().optional(),
    startsWith: z.string().optional(),
    contains: jsonValueSchema.optional(),
  })
  .superRefine((cond, ctx) => {
    if (!CONDITION_OPERATORS.some((op) => Object.prototype.hasOwnProperty.call(cond, op))) {
      ctx.addIssue({
        code: 'custom',
        message: `condition on "${cond.ref}" has no operator (one of: ${CONDITION_OPERATORS.join(', ')})`,
      });
    }
  });

/**
 * Conditions are recursive and untagged, so a plain union would report every branch's complaint at once. We
 * pick the branch from the key the author used (`all`, `any`, `not`, else a comparison on `ref`) and report
 * that branch's problems only.
 */
export const conditionSchema: z.ZodType<Condition, unknown> = z.unknown().transform((value, ctx): Condition => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    ctx.addIssue({ code: 'custom', message: 'expected a condition object ({ ref, <operator> }, all, any or not)' });
    return z.NEVER;
  }
  const branch: z.ZodType<Condition, unknown> =
    'all' in value ? allConditionSchema : 'any' in value ? anyConditionSchema : 'not' in value ? notConditionSchema : refConditionSchema;
  const result = branch.safeParse(value);
  if (!result.success) {
    for (const issue of result.error.issues) {
      ctx.addIssue({
        code: 'custom',
        message: issue.message,
        path: issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p)),
        ...keysOf(issue),
      });
    }
    return z.NEVER;
  }
  return result.data;
});

// Defined after `conditionSchema` because they nest it; the dispatcher above only reads them at parse time.
const allConditionSchema = z.strictObject({ all: z.array(conditionSchema).min(1, 'expected at least one condition') });
const anyConditionSchema = z.strictObject({ any: z.array(conditionSchema).min(1, 'expected at least one condition') });
const notConditionSchema = z.strictObject({ not: conditionSchema });

// Keeps the unknown key names of a forwarded `unrecognized_keys` issue (also when forwarded again by an outer
// `all`/`any`/`not`), so the loader can point at each key.
function keysOf(issue: z.core.$ZodIssue): { params?: { keys: string[] } } {
  if (issue.code === 'unrecognized_keys') return { params: { keys: issue.keys } };
  if (issue.code === 'custom' && Array.isArray(issue.params?.keys)) return { params: { keys: issue.params.keys } };
  return {};
}

// ---------------------------------------------------------------------------------------------------------------
// Input JSON Schema
// ---------------------------------------------------------------------------------------------------------------

const DRAFT_07 = /json-schema\.org\/draft-07\/schema/;

/**
 * Compiles a definition's input JSON Schema with ajv (draft 2020-12 by default, draft-07 when `$schema` names
 * it) and the standard formats. Strict about unknown keywords, because a misspelt `maxLenght` would otherwise
 * silently accept anything. Throws ajv's error when the schema does not compile.
 */
export function compileInputSchema(schema: JsonObject): ValidateFunction {
  const options = { allErrors: true, strict: true, strictTypes: false, strictTuples: false, strictRequired: false };
  const ajv =
    typeof schema.$schema === 'string' && DRAFT_07.test(schema.$schema) ? new Ajv(options) : new Ajv2020(options);
  addFormats(ajv);
  return ajv.compile(schema);
}

const inputSchemaSchema = z
  .record(z.string(), jsonValueSchema)
  .superRefine((schema, ctx) => {
    // Run inputs are objects (the workflow reads `input.<field>`), so the schema must describe one.
    if (schema.type !== 'object') {
      ctx.addIssue({ code: 'custom', message: 'the input schema must have type: object', path: ['type'] });
      return;
    }
    try {
      compileInputSchema(schema);
    } catch (err) {
      ctx.addIssue({
        code: 'custom',
        message: `the input schema does not compile: ${err instanceof Error ? err.message : String(err)}`,
      });
    }
  });

// ---------------------------------------------------------------------------------------------------------------
// Stages and definition
// ---------------------------------------------------------------------------------------------------------------

export const STAGE_NAME_PATTERN = /^[a-z][a-z0-9_-]*$/;
export const PIPELINE_NAME_PATTERN = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;

/**
 * Names that cannot be stage names: they are the roots of references to the run input and to signal payloads,
 * so a stage of that name would be unreachable.
 */
export const RESERVED_STAGE_NAMES = ['input', 'signals'] as const;
const RESERVED_STAGE_NAME_USE: Record<(typeof RESERVED_STAGE_NAMES)[number], string> = {
  input: 'the run input',
  signals: 'signal payloads',
};

const stageNameSchema = z
  .string()
  .max(63, 'expected at most 63 characters')
  .regex(STAGE_NAME_PATTERN, 'expected lower case letters, digits, "_" or "-", starting with a letter')
  .superRefine((name, ctx) => {
    if (Object.prototype.hasOwnProperty.call(RESERVED_STAGE_NAME_USE, name)) {
      const use = RESERVED_STAGE_NAME_USE[name as keyof typeof RESERVED_STAGE_NAME_USE];
      ctx.addIssue({ code: 'custom', message: `"${name}" is reserved for ${use}` });
    }
  });

const retrySchema = z
  .strictObject({
    maximumAttempts: z.number().int().min(1).max(20).optional(),
    initialInterval: durationSchema.optional(),
    backoffCoefficient: z.number().min(1).max(10).optional(),
    maximumInterval: durationSchema.optional(),
  })
  .transform(
    (raw): RetryPolicy => ({
      maximumAttempts: raw.maximumAttempts ?? DEFAULT_RETRY.maximumAttempts,
      initialIntervalMs: raw.initialInterval ?? DEFAULT_RETRY.initialIntervalMs,
      backoffCoefficient: raw.backoffCoefficient ?? DEFAULT_RETRY.backoffCoefficient,
      maximumIntervalMs: raw.maximumInterval ?? DEFAULT_RETRY.maximumIntervalMs,
    }),
  )
  .superRefine((retry, ctx) => {
    if (retry.maximumIntervalMs < retry.initialIntervalMs) {
      ctx.addIssue({
        code: 'custom',
        message: 'maximumInterval must not be shorter than initialInterval',
        path: ['maximumInterval'],
      });
    }
  });

export const agentStageSchema = z
  .strictObject({
    name: stageNameSchema,
    agent: z.string().min(1),
    with: mappingSchema.optional(),
    timeout: durationSchema.optional(),
    retry: retrySchema.optional(),
    when: conditionSchema.optional(),
    taskQueue: z.string().min(1).max(255).optional(),
    heartbeatTimeout: durationSchema.optional(),
    untrustedText: z.boolean().optional(),
  })
  .transform((raw): AgentStage => {
    // Optional keys are left out rather than set to undefined, so the parsed value is plain JSON and its hash
    // does not depend on how absent fields are spelt.
    const stage: AgentStage = {
      kind: 'agent',
      name: raw.name,
      agent: raw.agent,
      with: raw.with ?? {},
      timeoutMs: raw.timeout ?? DEFAULT_STAGE_TIMEOUT_MS,
      retry: raw.retry ?? { ...DEFAULT_RETRY },
    };
    if (raw.when !== undefined) stage.when = raw.when;
    if (raw.taskQueue !== undefined) stage.taskQueue = raw.taskQueue;
    if (raw.heartbeatTimeout !== undefined) stage.heartbeatTimeoutMs = raw.heartbeatTimeout;
    if (raw.untrustedText === true) stage.untrustedText = true;
    return stage;
  })
  .superRefine((stage, ctx) => {
    if (stage.heartbeatTimeoutMs !== undefined && stage.heartbeatTimeoutMs >= stage.timeoutMs) {
      ctx.addIssue({
        code: 'custom',
        message: 'heartbeatTimeout must be shorter than the stage timeout, or it can never fire',
        path: ['heartbeatTimeout'],
      });
    }
  });

const roleListSchema = z.array(z.enum(ROLES, { error: `expected one of: ${ROLES.join(', ')}` }));
const nonEmptyRoleListSchema = roleListSchema.min(1, 'expected at least one role');

export const approvalStageSchema = z
  .strictObject({
    name: stageNameSchema,
    when: conditionSchema.optional(),
    approval: z
      .strictObject({
        roles: nonEmptyRoleListSchema,
        timeout: durationSchema,
        onTimeout: z.enum(APPROVAL_TIMEOUT_ACTIONS, { error: `expected one of: ${APPROVAL_TIMEOUT_ACTIONS.join(', ')}` }).optional(),
        escalateTo: nonEmptyRoleListSchema.optional(),
        escalationTimeout: durationSchema.optional(),
        allowSelfApproval: z.boolean().optional(),
      })
      .superRefine((raw, ctx) => {
        if ((raw.onTimeout ?? DEFAULT_APPROVAL_ON_TIMEOUT) === 'escalate') return;
        for (const key of ['escalateTo', 'escalationTimeout'] as const) {
          if (raw[key] !== undefined) {
            ctx.addIssue({ code: 'custom', message: `${key} applies only with onTimeout: escalate`, path: [key] });
          }
        }
      }),
  })
  .transform((raw): ApprovalStage => {
    const { approval } = raw;
    const onTimeout = approval.onTimeout ?? DEFAULT_APPROVAL_ON_TIMEOUT;
    const escalates = onTimeout === 'escalate';
    const stage: ApprovalStage = {
      kind: 'approval',
      name: raw.name,
      roles: unique(approval.roles),
      timeoutMs: approval.timeout,
      onTimeout,
      escalateTo: escalates ? unique(approval.escalateTo ?? DEFAULT_APPROVAL_ESCALATE_TO) : [],
      escalationTimeoutMs: escalates ? (approval.escalationTimeout ?? approval.timeout) : 0,
      allowSelfApproval: approval.allowSelfApproval ?? false,
    };
    if (raw.when !== undefined) stage.when = raw.when;
    return stage;
  });

// Written out because the member schema refers back to the stage dispatcher, which TypeScript cannot infer through.
interface ParallelStageSource {
  name: string;
  when?: unknown;
  parallel: {
    maxConcurrency?: number;
    onFailure?: ParallelFailureMode;
    stages: z.input<typeof agentStageSchema>[];
  };
}
/** An authored stage of any kind. */
type StageSource = z.input<typeof agentStageSchema> | z.input<typeof approvalStageSchema> | ParallelStageSource;

/**
 * The schemas that depend on the fan-out limit: parallel groups, and the stage dispatchers that lead to them.
 *
 * Stages are untagged, so, as with conditions, the branch is picked from the key the author used (`approval`,
 * `parallel`, else an agent stage) and only that branch's problems are reported. Members of a parallel group
 * and compensation stages must be agent stages, and are told why when they are not.
 */
function buildStageSchemas(maxParallelStages: number) {
  const stageOf = (only?: string): z.ZodType<Stage, StageSource> =>
    z.unknown().transform((value, ctx): Stage => {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        ctx.addIssue({ code: 'custom', message: 'expected a stage object (with agent, approval or parallel)' });
        return z.NEVER;
      }
      const kind = 'approval' in value ? 'approval' : 'parallel' in value ? 'parallel' : 'agent';
      if (only !== undefined && kind !== 'agent') {
        ctx.addIssue({ code: 'custom', message: `${only} holds agent stages only, not ${kind} stages`, path: [kind] });
        return z.NEVER;
      }
      const branch: z.ZodType<Stage, unknown> =
        kind === 'approval' ? approvalStageSchema : kind === 'parallel' ? parallel : agentStageSchema;
      const result = branch.safeParse(value);
      if (!result.success) {
        // Forwarded as they are (code, keys, path), so the loader can still tell a missing field or unknown key.
        for (const issue of result.error.issues) ctx.addIssue({ ...issue } as Parameters<typeof ctx.addIssue>[0]);
        return z.NEVER;
      }
      return result.data;
    }) as unknown as z.ZodType<Stage, StageSource>;
  const agentOnly = (where: string) =>
    stageOf(where) as unknown as z.ZodType<AgentStage, z.input<typeof agentStageSchema>>;

  const parallel = z
    .strictObject({
      name: stageNameSchema,
      when: conditionSchema.optional(),
      parallel: z.strictObject({
        maxConcurrency: z
          .number()
          .int()
          .min(1)
          .max(maxParallelStages, `maxConcurrency may be at most ${maxParallelStages}`)
          .optional(),
        onFailure: z
          .enum(PARALLEL_FAILURE_MODES, { error: `expected one of: ${PARALLEL_FAILURE_MODES.join(', ')}` })
          .optional(),
        stages: z
          .array(agentOnly('a parallel group'))
          .min(1, 'a parallel group needs at least one stage')
          // Checked whatever the members' own problems, so an oversized group is reported at once.
          .max(maxParallelStages, {
            error: (issue) =>
              `a parallel group may hold at most ${maxParallelStages} stages (this one has ${(issue.input as unknown[]).length}); ` +
              'split it, or run the work as one agent that fans out itself',
          }),
      }),
    })
    .transform((raw): ParallelStage => {
      const stage: ParallelStage = {
        kind: 'parallel',
        name: raw.name,
        maxConcurrency: raw.parallel.maxConcurrency ?? Math.min(DEFAULT_PARALLEL_MAX_CONCURRENCY, maxParallelStages),
        onFailure: raw.parallel.onFailure ?? DEFAULT_PARALLEL_ON_FAILURE,
        stages: raw.parallel.stages,
      };
      if (raw.when !== undefined) stage.when = raw.when;
      return stage;
    });

  return { stage: stageOf(), parallel, compensation: agentOnly('onCancel') };
}

const defaultStageSchemas = buildStageSchemas(MAX_PARALLEL_STAGES);
/** A parallel group, with the default fan-out limit (`MAX_PARALLEL_STAGES`). */
export const parallelStageSchema = defaultStageSchemas.parallel;
/** Any stage of the main line: agent stage, approval stage or parallel group, told apart by their key. */
export const stageSchema = defaultStageSchemas.stage;

const accessSchema = z
  .strictObject({
    start: roleListSchema.optional(),
    read: roleListSchema.optional(),
    approve: roleListSchema.optional(),
    signal: roleListSchema.optional(),
    cancel: roleListSchema.optional(),
  })
  .transform(
    (raw): PipelineAccess => ({
      start: unique(raw.start ?? DEFAULT_ACCESS.start),
      read: unique(raw.read ?? DEFAULT_ACCESS.read),
      approve: unique(raw.approve ?? DEFAULT_ACCESS.approve),
      signal: unique(raw.signal ?? DEFAULT_ACCESS.signal),
      cancel: unique(raw.cancel ?? DEFAULT_ACCESS.cancel),
    }),
  );

function unique<T>(items: readonly T[]): T[] {
  return [...new Set(items)];
}

const limitsSchema = z
  .strictObject({
    runTimeout: durationSchema.optional(),
    maxConcurrentRuns: z.number().int().min(1).optional(),
    maxInputBytes: z.number().int().min(1).optional(),
    // Each signal adds its payload and an audit activity to the run's history, which Temporal caps (50 MB, 51,200 events).
    maxSignals: z.number().int().min(1).max(1_000).optional(),
    maxSignalBytes: z.number().int().min(1).max(262_144).optional(),
  })
  .transform(
    (raw): PipelineLimits => ({
      runTimeoutMs: raw.runTimeout ?? DEFAULT_RUN_TIMEOUT_MS,
      maxConcurrentRuns: raw.maxConcurrentRuns ?? DEFAULT_MAX_CONCURRENT_RUNS,
      maxInputBytes: raw.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES,
      ...(raw.maxSignals !== undefined ? { maxSignals: raw.maxSignals } : {}),
      ...(raw.maxSignalBytes !== undefined ? { maxSignalBytes: raw.maxSignalBytes } : {}),
    }),
  );

// ---------------------------------------------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------------------------------------------

export const SIGNAL_NAME_PATTERN = /^[a-z][a-z0-9_-]{0,62}$/;
/** Signal names the workflow defines itself (approval decisions, cancellation); definitions cannot declare them. */
export const RESERVED_SIGNAL_NAMES = ['approve', 'cancel'] as const;

const signalNameSchema = z
  .string()
  .regex(SIGNAL_NAME_PATTERN, 'expected 1 to 63 lower case letters, digits, "_" or "-", starting with a letter')
  .refine((name) => !(RESERVED_SIGNAL_NAMES as readonly string[]).includes(name), {
    message: `reserved signal name (reserved: ${RESERVED_SIGNAL_NAMES.join(', ')})`,
  });

// ---------------------------------------------------------------------------------------------------------------
// Definition
// ---------------------------------------------------------------------------------------------------------------

/** Options of `createPipelineDefinitionSchema` (and of the loader functions, which pass them on). */
export interface DefinitionSchemaOptions {
  /** Most stages one parallel group may hold, and its highest `maxConcurrency`. @default MAX_PARALLEL_STAGES */
  maxParallelStages?: number;
}

/**
 * Validates an authored definition (as read from YAML or JSON) and normalises it into a `PipelineDefinition`.
 * Checks that need the agent catalog (agent names, input keys, reference targets) live in the loader.
 * `pipelineDefinitionSchema` is this with the default options.
 */
export function createPipelineDefinitionSchema(options: DefinitionSchemaOptions = {}) {
  const maxParallelStages = options.maxParallelStages ?? MAX_PARALLEL_STAGES;
  if (!Number.isSafeInteger(maxParallelStages) || maxParallelStages < 1) {
    throw new RangeError(`maxParallelStages must be a positive integer, got ${String(maxParallelStages)}`);
  }
  const stageSchemas = maxParallelStages === MAX_PARALLEL_STAGES ? defaultStageSchemas : buildStageSchemas(maxParallelStages);
  return z
    .strictObject({
      name: z
        .string()
        .max(63, 'expected at most 63 characters')
        .regex(PIPELINE_NAME_PATTERN, 'expected kebab-case: lower case letters and digits separated by "-"'),
      version: z.number().int().positive(),
      description: z.string().min(1),
      input: inputSchemaSchema,
      access: accessSchema.optional(),
      limits: limitsSchema.optional(),
      signals: z.array(signalNameSchema).optional(),
      security: z.strictObject({ injection: z.enum(['flag', 'block']).default('flag') }).optional(),
      stages: z.array(stageSchemas.stage).min(1, 'a pipeline needs at least one stage'),
      onCancel: z.array(stageSchemas.compensation).optional(),
    })
    .transform(
      (raw): PipelineDefinition => ({
        name: raw.name,
        version: raw.version,
        description: raw.description,
        input: raw.input,
        access: raw.access ?? accessSchema.parse({}),
        limits: raw.limits ?? limitsSchema.parse({}),
        signals: raw.signals ?? [],
        security: raw.security ?? { injection: 'flag' },
        stages: raw.stages,
        onCancel: raw.onCancel ?? [],
      }),
    )
    .superRefine((def, ctx) => {
      def.signals.forEach((name, i) => {
        if (def.signals.indexOf(name) !== i) {
          ctx.addIssue({ code: 'custom', message: `duplicate signal name "${name}"`, path: ['signals', i] });
        }
      });

      const seen = new Set<string>();
      const runTimeoutMs = def.limits.runTimeoutMs;
      const checkStage = (stage: Stage, path: (string | number)[]): void => {
        if (seen.has(stage.name)) {
          ctx.addIssue({ code: 'custom', message: `duplicate stage name "${stage.name}"`, path: [...path, 'name'] });
        }
        seen.add(stage.name);
        if (stage.kind === 'agent') {
          // One attempt outliving the whole run can only end in a run timeout, never in the stage's own timeout.
          if (stage.timeoutMs > runTimeoutMs) {
            ctx.addIssue({
              code: 'custom',
              message: 'the stage timeout is longer than limits.runTimeout',
              path: [...path, 'timeout'],
            });
          }
        } else if (stage.kind === 'approval') {
          // Likewise: the onTimeout policy could never apply, the run would time out first.
          if (stage.timeoutMs > runTimeoutMs) {
            ctx.addIssue({
              code: 'custom',
              message: 'the approval timeout is longer than limits.runTimeout',
              path: [...path, 'approval', 'timeout'],
            });
          } else if (stage.onTimeout === 'escalate' && stage.timeoutMs + stage.escalationTimeoutMs > runTimeoutMs) {
            ctx.addIssue({
              code: 'custom',
              message: 'the approval timeout plus escalationTimeout is longer than limits.runTimeout',
              path: [...path, 'approval', 'escalationTimeout'],
            });
          }
        } else {
          stage.stages.forEach((member, j) => checkStage(member, [...path, 'parallel', 'stages', j]));
        }
      };
      def.stages.forEach((stage, i) => checkStage(stage, ['stages', i]));
      def.onCancel.forEach((stage, i) => checkStage(stage, ['onCancel', i]));
    });
}

/** Validates and normalises an authored definition with the default options (see `createPipelineDefinitionSchema`). */
export const pipelineDefinitionSchema = createPipelineDefinitionSchema();

/** The authored (pre-normalisation) shape, e.g. for writing definitions in code or tests. */
export type PipelineDefinitionSource = z.input<typeof pipelineDefinitionSchema>;
