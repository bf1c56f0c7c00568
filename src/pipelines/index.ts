/**
 * Public surface of the pipeline definition DSL.
 *
 * This barrel pulls in Node built-ins (the loader reads files, the hash uses `node:crypto`), so workflow code
 * must not import it: the interpreter imports `./expressions` (pure, type-only imports) and
 * `import type` from `./definition-schema` directly.
 */
export {
  CONDITION_OPERATORS,
  DEFAULT_ACCESS,
  DEFAULT_MAX_CONCURRENT_RUNS,
  DEFAULT_MAX_INPUT_BYTES,
  DEFAULT_RETRY,
  DEFAULT_RUN_TIMEOUT_MS,
  DEFAULT_STAGE_TIMEOUT_MS,
  PIPELINE_NAME_PATTERN,
  ROLES,
  STAGE_NAME_PATTERN,
  agentStageSchema,
  compileInputSchema,
  conditionSchema,
  parseDuration,
  pipelineDefinitionSchema,
} from './definition-schema';
export type {
  AgentStage,
  AllCondition,
  AnyCondition,
  Condition,
  ConditionOperator,
  JsonObject,
  JsonPrimitive,
  JsonValue,
  Mapping,
  NotCondition,
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
export type { AgentCatalog, AgentShape } from './pipeline-loader';
