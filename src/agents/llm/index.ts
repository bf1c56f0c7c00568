export {
  createChatClient,
  estimatePromptTokens,
  estimateTokens,
  parseRetryAfter,
  type ChatClient,
  type ChatClientOptions,
  type ChatMessage,
  type ChatRequest,
  type ChatResult,
  type ResponseFormat,
} from './chat-client';
export {
  LlmBudgetExceededError,
  LlmMalformedResponseError,
  LlmOutputInvalidError,
  LlmProviderError,
  LlmRejectedError,
  LlmRequestRejectedError,
  LlmTimeoutError,
  type LlmBudget,
} from './llm-errors';
export { createLlmMetrics, type LlmMetrics } from './llm-metrics';
export { createLlmAgent, DEFAULT_LLM_BUDGETS, llmAgentOptionsFromConfig, type LlmAgentOptions, type LlmPrice } from './llm.agent';
export { checkStructured, compileResponseSchema, extractJson } from './structured-output';
export {
  checkBudgets,
  createMemoryUsageStore,
  createPgUsageStore,
  utcDay,
  type BudgetLimits,
  type SpendTotals,
  type UsageKey,
  type UsageReservation,
  type UsageStore,
} from './usage-store';
