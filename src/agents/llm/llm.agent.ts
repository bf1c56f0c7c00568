/**
 * The `llm` agent: one chat completion from an OpenAI-compatible provider (or the embedded local model), with
 * optional structured output, usage and cost in its output, and hard token and cost budgets checked before every
 * call.
 *
 * A stage passes its text already resolved by the mapping (`${...}` interpolates inside strings):
 *
 *   agent: llm
 *   with:
 *     system: You write short, polite replies for a bank's support team.
 *     prompt: "Customer message: ${redact.text}\nIntent: ${classify.label}"
 *     maxTokens: 64
 *
 * or a whole conversation as `messages`. With `responseSchema` (a JSON Schema) the model is asked for JSON, the
 * answer is validated, and a non-matching answer gets one repair request quoting the validation errors; a second
 * miss fails the stage without retries (`LlmOutputInvalidError`).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, type Config } from '../../config';
import { LOCAL_MODEL_NAME } from '../../llm';
import type { Agent, AgentContext } from '../agent-contract';
import { AgentInputError } from '../agent-errors';
import { createChatClient, estimatePromptTokens, type ChatClient, type ChatMessage, type ChatResult, type ResponseFormat } from './chat-client';
import { embeddedServerBaseUrl } from './embedded-server';
import { LlmBudgetExceededError, LlmOutputInvalidError, LlmTimeoutError } from './llm-errors';
import type { LlmMetrics } from './llm-metrics';
import { checkStructured, compileResponseSchema } from './structured-output';
import { createMemoryUsageStore, utcDay, type BudgetLimits, type SpendTotals, type UsageStore } from './usage-store';

/** USD per 1,000 tokens. */
export interface LlmPrice {
  input: number;
  output: number;
}

export interface LlmAgentOptions {
  /**
   * The provider's API base (up to and including `/v1`), or a function that yields it when first needed.
   * @default this process's embedded local model server, started on first use
   */
  baseUrl?: string | (() => Promise<string>);
  /** Bearer key for the provider. */
  apiKey?: string;
  /** @default SmolLM2-135M-Instruct */
  model?: string;
  /** One HTTP call. @default 120000 @format ms */
  timeoutMs?: number;
  /** @default 2 */
  maxRetries?: number;
  /** @default 30000 @format ms */
  retryAfterMaxMs?: number;
  /** First retry backoff without Retry-After. @default 500 @format ms */
  backoffMs?: number;
  /** Completion limit of a stage that sets no `maxTokens`. @default 256 @format tokens */
  defaultMaxTokens?: number;
  /** By model. Models not listed cost 0. @default {} */
  prices?: Record<string, LlmPrice>;
  /** @default 20000 tokens per run, 2000000 tokens per tenant and UTC day, no cost budget */
  budgets?: BudgetLimits;
  /** @default an in-process store (budgets hold per process) */
  usage?: UsageStore;
  metrics?: LlmMetrics;
  fetch?: typeof fetch;
}

export const DEFAULT_LLM_BUDGETS: Readonly<BudgetLimits> = Object.freeze({ runTokens: 20_000, tenantDayTokens: 2_000_000 });

const messageSchema = z.object({
  role: z.enum(['system', 'user', 'assistant']),
  content: z.string().max(200_000),
});

const input = z.object({
  /** Instructions to the model, sent as the system message. */
  system: z.string().max(50_000).optional(),
  /** The user message; sent after `messages` when both are given. */
  prompt: z.string().max(200_000).optional(),
  /** A conversation so far. */
  messages: z.array(messageSchema).max(100).optional(),
  /** JSON Schema the answer must match; the parsed answer is the output's `json`. */
  responseSchema: z.record(z.string(), z.unknown()).optional(),
  /** Completion limit. @default LLM_DEFAULT_MAX_TOKENS */
  maxTokens: z.number().int().min(1).max(32_768).optional(),
  /** @default 0 */
  temperature: z.number().min(0).max(2).optional(),
  /** @default LLM_MODEL */
  model: z.string().min(1).max(200).optional(),
});

const usageSchema = z.object({
  promptTokens: z.number().int().nonnegative(),
  completionTokens: z.number().int().nonnegative(),
  totalTokens: z.number().int().nonnegative(),
  /** Priced by LLM_PRICES. @format USD */
  costUsd: z.number().nonnegative(),
  /** Provider calls made: 2 when the answer needed the repair request. */
  calls: z.number().int().min(1),
  repaired: z.boolean(),
});

const output = z.object({
  text: z.string(),
  /** The parsed answer; present only with `responseSchema`. */
  json: z.unknown().optional(),
  model: z.string(),
  /** `stop`, or `length` when the answer was cut off at `maxTokens`. */
  finishReason: z.string(),
  usage: usageSchema,
  /** Spend against the budgets after this stage. */
  budget: z.object({
    runTokens: z.number().int().nonnegative(),
    runTokensLimit: z.number().int().positive(),
    tenantDayTokens: z.number().int().nonnegative(),
    tenantDayTokensLimit: z.number().int().positive(),
    tenantDayCostUsd: z.number().nonnegative(),
    tenantDayCostLimitUsd: z.number().nonnegative().optional(),
  }),
});

/** Workflow ids are `{tenant}/{pipeline}/{id}` and the idempotency key is `{workflowId}/{stage}`. */
function tenantOf(ctx: AgentContext): string {
  return ctx.idempotencyKey.split('/')[0] || 'default';
}

function costOf(prices: Record<string, LlmPrice>, model: string, promptTokens: number, completionTokens: number): number {
  const price = prices[model];
  if (!price) return 0;
  // Rounded to nano-dollars, the precision of the usage table.
  return Math.round(((promptTokens * price.input + completionTokens * price.output) / 1000) * 1e9) / 1e9;
}

function buildMessages(inp: z.infer<typeof input>, schema: Record<string, unknown> | undefined): ChatMessage[] {
  const messages: ChatMessage[] = [];
  let system = inp.system ?? '';
  if (schema) {
    // Providers that honour response_format do not need this; small local models and older APIs do.
    system = `${system ? `${system}\n\n` : ''}Answer with one JSON value and nothing else. It must match this JSON Schema:\n${JSON.stringify(schema)}`;
  }
  if (system) messages.push({ role: 'system', content: system });
  messages.push(...(inp.messages ?? []));
  if (inp.prompt !== undefined) messages.push({ role: 'user', content: inp.prompt });
  return messages;
}

/** Options for the worker's `llm` agent from configuration (reads LLM_API_KEY_FILE). */
export function llmAgentOptionsFromConfig(config: Config, deps: { usage: UsageStore; metrics?: LlmMetrics }): LlmAgentOptions {
  let apiKey = config.LLM_API_KEY;
  if (config.LLM_API_KEY_FILE) {
    try {
      apiKey = readFileSync(config.LLM_API_KEY_FILE, 'utf8').trim();
    } catch (err) {
      throw new ConfigError([{ key: 'LLM_API_KEY_FILE', message: `cannot read ${config.LLM_API_KEY_FILE} (${(err as NodeJS.ErrnoException).code ?? 'error'})` }]);
    }
    if (!apiKey) throw new ConfigError([{ key: 'LLM_API_KEY_FILE', message: `${config.LLM_API_KEY_FILE} is empty` }]);
  }
  return {
    ...(config.LLM_BASE_URL ? { baseUrl: config.LLM_BASE_URL } : {}),
    ...(apiKey ? { apiKey } : {}),
    model: config.LLM_MODEL,
    timeoutMs: config.LLM_TIMEOUT_MS,
    maxRetries: config.LLM_MAX_RETRIES,
    retryAfterMaxMs: config.LLM_RETRY_AFTER_MAX_MS,
    defaultMaxTokens: config.LLM_DEFAULT_MAX_TOKENS,
    prices: config.LLM_PRICES,
    budgets: {
      runTokens: config.LLM_BUDGET_PER_RUN_TOKENS,
      tenantDayTokens: config.LLM_BUDGET_PER_TENANT_DAY_TOKENS,
      ...(config.LLM_BUDGET_PER_TENANT_DAY_COST !== undefined ? { tenantDayCostUsd: config.LLM_BUDGET_PER_TENANT_DAY_COST } : {}),
    },
    usage: deps.usage,
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
  };
}

export function createLlmAgent(opts: LlmAgentOptions = {}): Agent<typeof input, typeof output> {
  const defaultModel = opts.model ?? LOCAL_MODEL_NAME;
  const prices = opts.prices ?? {};
  const budgets = opts.budgets ?? DEFAULT_LLM_BUDGETS;
  const usage = opts.usage ?? createMemoryUsageStore();
  const metrics = opts.metrics;
  const baseUrl = opts.baseUrl ?? embeddedServerBaseUrl;
  let client: ChatClient | undefined;

  async function clientFor(): Promise<ChatClient> {
    const url = typeof baseUrl === 'string' ? baseUrl : await baseUrl();
    if (client?.baseUrl !== url) {
      client = createChatClient({
        baseUrl: url,
        ...(opts.apiKey ? { apiKey: opts.apiKey } : {}),
        timeoutMs: opts.timeoutMs ?? 120_000,
        maxRetries: opts.maxRetries ?? 2,
        retryAfterMaxMs: opts.retryAfterMaxMs ?? 30_000,
        ...(opts.backoffMs !== undefined ? { backoffMs: opts.backoffMs } : {}),
        ...(opts.fetch ? { fetch: opts.fetch } : {}),
      });
    }
    return client;
  }

  return {
    name: 'llm',
    version: '1',
    description: 'Asks a language model (OpenAI-compatible API, or the embedded local model) for a reply or structured JSON, within token and cost budgets.',
    input,
    output,
    usage: (out) => ({
      model: out.model,
      promptTokens: out.usage.promptTokens,
      completionTokens: out.usage.completionTokens,
      totalTokens: out.usage.totalTokens,
      costUsd: out.usage.costUsd,
    }),
    async run(inp, ctx) {
      if (inp.prompt === undefined && !(inp.messages ?? []).some((m) => m.role !== 'system')) {
        throw new AgentInputError('llm', [{ path: 'prompt', message: 'give a prompt, or messages with at least one user or assistant message' }]);
      }
      const model = inp.model ?? defaultModel;
      const maxTokens = inp.maxTokens ?? opts.defaultMaxTokens ?? 256;
      const validate = inp.responseSchema ? compileResponseSchema(inp.responseSchema) : undefined;
      const responseFormat: ResponseFormat | undefined = inp.responseSchema ? { type: 'json_schema', name: 'response', schema: inp.responseSchema } : undefined;
      const tenant = tenantOf(ctx);
      const day = utcDay();
      const chat = await clientFor();
      const spent = { promptTokens: 0, completionTokens: 0, costUsd: 0, calls: 0 };
      let totals: SpendTotals = { runTokens: 0, tenantDayTokens: 0, tenantDayCostUsd: 0 };

      const call = async (n: number, messages: ChatMessage[]): Promise<ChatResult> => {
        const key = { idempotencyKey: ctx.idempotencyKey, attempt: ctx.attempt, call: n };
        const promptEstimate = estimatePromptTokens(messages);
        const worst = { tokens: promptEstimate + maxTokens, costUsd: costOf(prices, model, promptEstimate, maxTokens) };
        let before: SpendTotals;
        try {
          before = await usage.reserve({ ...key, tenant, runId: ctx.runId, stage: ctx.stage, model, day, ...worst }, budgets);
        } catch (err) {
          if (err instanceof LlmBudgetExceededError) {
            metrics?.budgetRejections.inc({ budget: err.budget });
            metrics?.calls.inc({ model, outcome: 'budget_exceeded' });
          }
          throw err;
        }
        ctx.heartbeat({ llmCall: n });
        let result: ChatResult;
        try {
          result = await chat.complete(
            { model, messages, maxTokens, ...(inp.temperature !== undefined ? { temperature: inp.temperature } : {}), ...(responseFormat ? { responseFormat } : {}) },
            {
              signal: ctx.signal,
              onRetry: (info) => {
                ctx.heartbeat({ llmCall: n, retry: info.retry });
                ctx.logger.warn({ status: info.status, waitMs: info.waitMs, retry: info.retry }, 'LLM provider call failed; retrying');
              },
            },
          );
        } catch (err) {
          const cancelled = ctx.signal.aborted;
          metrics?.calls.inc({ model, outcome: cancelled ? 'cancelled' : 'error' });
          // A cancelled or timed-out call may have been generating (and, remotely, billed): it is charged at its
          // worst case, so budgets stay hard. A refused or failed request generated nothing and is released.
          const settle = cancelled || err instanceof LlmTimeoutError
            ? usage.record(key, { promptTokens: promptEstimate, completionTokens: maxTokens, costUsd: worst.costUsd })
            : usage.release(key);
          await settle.catch((e: unknown) => ctx.logger.warn({ err: { message: (e as Error).message } }, 'could not settle an LLM usage reservation'));
          throw err;
        }
        const { promptTokens, completionTokens } = result.usage;
        const costUsd = costOf(prices, model, promptTokens, completionTokens);
        await usage.record(key, { promptTokens, completionTokens, costUsd });
        metrics?.tokens.inc({ model, kind: 'prompt' }, promptTokens);
        metrics?.tokens.inc({ model, kind: 'completion' }, completionTokens);
        if (costUsd > 0) metrics?.cost.inc({ model }, costUsd);
        spent.promptTokens += promptTokens;
        spent.completionTokens += completionTokens;
        spent.costUsd += costUsd;
        spent.calls++;
        totals = {
          runTokens: before.runTokens + promptTokens + completionTokens,
          tenantDayTokens: before.tenantDayTokens + promptTokens + completionTokens,
          tenantDayCostUsd: before.tenantDayCostUsd + costUsd,
        };
        return result;
      };

      const answer = (result: ChatResult, json: { value: unknown } | undefined, repaired: boolean): z.infer<typeof output> => ({
        text: result.text,
        ...(json ? { json: json.value } : {}),
        model: result.model,
        finishReason: result.finishReason,
        usage: {
          promptTokens: spent.promptTokens,
          completionTokens: spent.completionTokens,
          totalTokens: spent.promptTokens + spent.completionTokens,
          costUsd: Math.round(spent.costUsd * 1e9) / 1e9,
          calls: spent.calls,
          repaired,
        },
        budget: {
          runTokens: totals.runTokens,
          runTokensLimit: budgets.runTokens,
          tenantDayTokens: totals.tenantDayTokens,
          tenantDayTokensLimit: budgets.tenantDayTokens,
          tenantDayCostUsd: Math.round(totals.tenantDayCostUsd * 1e9) / 1e9,
          ...(budgets.tenantDayCostUsd !== undefined ? { tenantDayCostLimitUsd: budgets.tenantDayCostUsd } : {}),
        },
      });

      const messages = buildMessages(inp, inp.responseSchema);
      const first = await call(1, messages);
      if (!validate) {
        metrics?.calls.inc({ model, outcome: 'ok' });
        return answer(first, undefined, false);
      }
      const checked = checkStructured(first.text, first.finishReason, validate);
      if (checked.ok) {
        metrics?.calls.inc({ model, outcome: 'ok' });
        return answer(first, { value: checked.value }, false);
      }
      metrics?.calls.inc({ model, outcome: 'invalid_output' });
      ctx.logger.info({ problems: checked.problems }, 'the answer does not match responseSchema; asking once more');
      const repair: ChatMessage[] = [
        ...messages,
        { role: 'assistant', content: first.text },
        {
          role: 'user',
          content: `That answer does not match the required JSON Schema: ${checked.problems}. Reply again with only the corrected JSON value.`,
        },
      ];
      const second = await call(2, repair);
      const rechecked = checkStructured(second.text, second.finishReason, validate);
      if (!rechecked.ok) {
        metrics?.calls.inc({ model, outcome: 'invalid_output' });
        throw new LlmOutputInvalidError(rechecked.problems, 2);
      }
      metrics?.calls.inc({ model, outcome: 'ok' });
      return answer(second, { value: rechecked.value }, true);
    },
  };
}
