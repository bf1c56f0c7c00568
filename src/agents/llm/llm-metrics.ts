import { Counter, type Registry } from 'prom-client';

/**
 * Metrics of the `llm` agent, on the worker's registry. `model` comes from configuration and stage definitions, so
 * it is bounded; tenants and runs are never labels (their spend is in the `llm_usage` table and the run outputs).
 */
export function createLlmMetrics(registry: Registry) {
  return {
    tokens: new Counter({
      name: 'llm_tokens_total',
      help: 'Tokens used by LLM calls, by model and kind (prompt or completion).',
      labelNames: ['model', 'kind'] as const,
      registers: [registry],
    }),
    cost: new Counter({
      name: 'llm_cost_total',
      help: 'Cost of LLM calls in USD, priced by LLM_PRICES, by model.',
      labelNames: ['model'] as const,
      registers: [registry],
    }),
    calls: new Counter({
      name: 'llm_calls_total',
      help: 'LLM calls by model and outcome: ok, invalid_output (did not match responseSchema), error, cancelled, budget_exceeded (refused before it was made).',
      labelNames: ['model', 'outcome'] as const,
      registers: [registry],
    }),
    budgetRejections: new Counter({
      name: 'llm_budget_rejections_total',
      help: 'LLM calls refused before they were made because a budget would be exceeded, by budget.',
      labelNames: ['budget'] as const,
      registers: [registry],
    }),
  };
}
export type LlmMetrics = ReturnType<typeof createLlmMetrics>;
