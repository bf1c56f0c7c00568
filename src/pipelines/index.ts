/**
 * Public surface of the pipeline definition DSL.
 *
 * This barrel pulls in Node built-ins (the loader reads files, the hash uses `node:crypto`), so workflow code
 * must not import it: the interpreter imports `./expressions` (pure, type-only imports) and
 * `import type` from `./definition-schema` directly.
 */
export {
  APPROVAL_OUTPUT_FIELDS,
  APPROVAL_TIMEOUT_ACTIONS,
  CONDITION_OPERATORS,
  DEFAULT_ACCESS,
  DEFAULT_APPROVAL_ESCALATE_TO,
  DEFAULT_APPROVAL_ON_TIMEOUT,
  DEFAULT_MAX_CONCURRENT_RUNS,
  DEFAULT_MAX_INPUT_BYTES,
  DEFAULT_PARALLEL_MAX_CONCURRENCY,
  DEFAULT_PARALLEL_ON_FAILURE,
  DEFAULT_RETRY,
  DEFAULT_RUN_TIMEOUT_MS,
  DEFAULT_STAGE_TIMEOUT_MS,
  MAX_PARALLEL_STAGES,
  PARALLEL_FAILURE_MODES,
  PIPELINE_NAME_PATTERN,
  RESERVED_SIGNAL_NAMES,
  RESERVED_STAGE_NAMES,
  ROLES,
  SIGNAL_NAME_PATTERN,
  STAGE_NAME_PATTERN,
  agentStageSchema,
  approvalStageSchema,
  compileInputSchema,
  conditionSchema,
  createPipelineDefinitionSchema,
  parallelStageSchema,
  parseDuration,
  pipelineDefinitionSchema,
  stageSchema,
} from './definition-schema';
export type {
  AgentStage,
  AllCondition,
  AnyCondition,
  ApprovalOutput,
  ApprovalStage,
  ApprovalTimeoutAction,
  Condition,
  ConditionOperator,
  DefinitionSchemaOptions,
  JsonObject,
  JsonPrimitive,
  JsonValue,
  Mapping,
  NotCondition,
  ParallelFailureMode,
  ParallelStage,
  PipelineAccess,
  PipelineDefinition,
  PipelineDefinitionSource,
  PipelineLimits,
  RefCondition,
  RetryPolicy,
  Role,
  Stage,
} from './definition-schema';
export {
  collectReferenceSites,
  collectReferences,
  deepEqual,
  evaluateCondition,
  isValidPath,
  parseTemplate,
  resolveMapping,
  resolvePath,
  resolveTemplate,
} from './expressions';
export type { ExpressionScope, ReferenceSite, TemplatePart } from './expressions';
export { canonicalJson, definitionHash } from './definition-hash';
export { PipelineDefinitionError, formatProblem } from './pipeline-errors';
export type { PipelineProblem } from './pipeline-errors';
export { loadPipelineDir, loadPipelineFile, parsePipelineText } from './pipeline-loader';
export type { AgentCatalog, AgentShape, PipelineLoaderOptions } from './pipeline-loader';
