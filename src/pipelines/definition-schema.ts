/**
 * The pipeline definition DSL (v1): the zod schema that validates an authored definition and the plain-JSON
 * shape it parses into.
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
  /** Path of the value under test, `input.<field>...` or `<stage>.<field>...` (no `${}`). */
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
  /** Discriminates future stage kinds (approval, parallel); always `'agent'` in v1 and never authored. */
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
}

export type Stage = AgentStage;

/** A validated, normalised pipeline definition: plain JSON, safe to send as a Temporal payload. */
export interface PipelineDefinition {
  name: string;
  version: number;
  description: string;
  /** JSON Schema (draft 2020-12 unless `$schema` says draft-07) of the run input; compiled at load. */
  input: JsonObject;
  access: PipelineAccess;
  limits: PipelineLimits;
  stages: Stage[];
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

const stageNameSchema = z
  .string()
  .max(63, 'expected at most 63 characters')
  .regex(STAGE_NAME_PATTERN, 'expected lower case letters, digits, "_" or "-", starting with a letter')
  // `input` is the root of references to the run input; a stage of that name would be unreachable.
  .refine((name) => name !== 'input', { message: '"input" is reserved for the run input' });

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
  })
  .transform(
    (raw): PipelineLimits => ({
      runTimeoutMs: raw.runTimeout ?? DEFAULT_RUN_TIMEOUT_MS,
      maxConcurrentRuns: raw.maxConcurrentRuns ?? DEFAULT_MAX_CONCURRENT_RUNS,
      maxInputBytes: raw.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES,
    }),
  );

/**
 * Validates an authored definition (as read from YAML or JSON) and normalises it into a `PipelineDefinition`.
 * Checks that need the agent catalog (agent names, input keys, reference targets) live in the loader.
 */
export const pipelineDefinitionSchema = z
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
    stages: z.array(agentStageSchema).min(1, 'a pipeline needs at least one stage'),
  })
  .transform(
    (raw): PipelineDefinition => ({
      name: raw.name,
      version: raw.version,
      description: raw.description,
      input: raw.input,
      access: raw.access ?? accessSchema.parse({}),
      limits: raw.limits ?? limitsSchema.parse({}),
      stages: raw.stages,
    }),
  )
  .superRefine((def, ctx) => {
    const seen = new Set<string>();
    def.stages.forEach((stage, i) => {
      if (seen.has(stage.name)) {
        ctx.addIssue({ code: 'custom', message: `duplicate stage name "${stage.name}"`, path: ['stages', i, 'name'] });
      }
      seen.add(stage.name);
      // One attempt outliving the whole run can only end in a run timeout, never in the stage's own timeout.
      if (stage.timeoutMs > def.limits.runTimeoutMs) {
        ctx.addIssue({
          code: 'custom',
          message: 'the stage timeout is longer than limits.runTimeout',
          path: ['stages', i, 'timeout'],
        });
      }
    });
  });

/** The authored (pre-normalisation) shape, e.g. for writing definitions in code or tests. */
export type PipelineDefinitionSource = z.input<typeof pipelineDefinitionSchema>;
