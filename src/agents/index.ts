export { AgentRejectedError, type Agent, type AgentContext, type AgentLogger } from './agent-contract';
export {
  AgentInputError,
  AgentOutputError,
  DuplicateAgentError,
  TemplateLoadError,
  TrainingDataError,
  UnknownAgentError,
  type AgentIssue,
} from './agent-errors';
export {
  createAgentRegistry,
  createBuiltinAgents,
  type AgentRegistry,
  type BuiltinAgentOptions,
} from './registry';
export { createPiiRedactAgent, redactPii } from './pii-redact.agent';
export { PII_TYPES, type PiiSpan, type PiiType } from './pii/detectors';
export {
  createIntentClassifierAgent,
  DEFAULT_TRAINING_OPTIONS,
  loadIntentModel,
  parseLabelledCsv,
  predictIntent,
  readLabelledCsv,
  trainIntentModel,
  type IntentClassifierOptions,
  type IntentModel,
  type IntentPrediction,
  type LabelledExample,
  type LoadedIntentModel,
  type TrainingOptions,
} from './intent-classifier.agent';
export { createTemplateReplyAgent, loadReplyTemplates, type TemplateReplyOptions } from './template-reply.agent';
export { createLookupAgent } from './lookup.agent';
export {
  createLlmAgent,
  createLlmMetrics,
  createMemoryUsageStore,
  createPgUsageStore,
  llmAgentOptionsFromConfig,
  LlmBudgetExceededError,
  LlmMalformedResponseError,
  LlmOutputInvalidError,
  LlmProviderError,
  LlmRejectedError,
  LlmRequestRejectedError,
  LlmTimeoutError,
  type LlmAgentOptions,
  type LlmMetrics,
  type UsageStore,
} from './llm';
