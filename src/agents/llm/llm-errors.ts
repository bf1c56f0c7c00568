/**
 * Errors of the `llm` agent. Class names are part of the retry contract (the worker maps `LlmRejectedError` and its
 * subclasses to the non-retryable `AgentRejected` failure type; everything else here is retried under the stage's
 * policy), so do not rename them casually.
 */

/** Base of the failures that retrying will not fix. */
export abstract class LlmRejectedError extends Error {}

/** Which hard budget a call would break. */
export type LlmBudget = 'run-tokens' | 'tenant-day-tokens' | 'tenant-day-cost';

/** A call would take a run or tenant over a budget, counting its worst case (prompt estimate plus `max_tokens`). */
export class LlmBudgetExceededError extends LlmRejectedError {
  override readonly name = 'LlmBudgetExceededError';
  constructor(
    readonly budget: LlmBudget,
    readonly limit: number,
    readonly used: number,
    readonly requested: number,
  ) {
    const unit = budget === 'tenant-day-cost' ? 'USD' : 'tokens';
    const scope = budget === 'run-tokens' ? 'this run' : "this tenant today (UTC)";
    super(
      `LLM budget "${budget}" exceeded: ${scope} has used ${fmt(used)} of ${fmt(limit)} ${unit}, and this call may use up to ${fmt(requested)} more`,
    );
  }
}

/** The model's answer did not match the stage's `responseSchema`, also after the one repair attempt. */
export class LlmOutputInvalidError extends LlmRejectedError {
  override readonly name = 'LlmOutputInvalidError';
  constructor(
    readonly problems: string,
    readonly calls: number,
  ) {
    super(`the model's answer does not match responseSchema after ${calls} calls (one repair attempt): ${problems}`);
  }
}

/** The provider refused the request itself (4xx other than 408/429), or the request cannot be made as configured. */
export class LlmRequestRejectedError extends LlmRejectedError {
  override readonly name = 'LlmRequestRejectedError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** The provider answered 429, 5xx or not at all, also after the in-process retries: retryable. */
export class LlmProviderError extends Error {
  override readonly name = 'LlmProviderError';
  constructor(
    message: string,
    readonly status: number | undefined,
    /** The provider's Retry-After, when it gave one. @format ms */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/**
 * The provider answered 2xx with a body that is not a Chat Completions response (not JSON, or no choices).
 * Retryable: the usual causes are a proxy's error page or a cut-off body, which the next attempt does not repeat;
 * a base URL that points at something else fails every attempt, and the message says what came back.
 */
export class LlmMalformedResponseError extends Error {
  override readonly name = 'LlmMalformedResponseError';
  constructor(readonly detail: string) {
    super(`the LLM provider answered with a malformed response: ${detail}`);
  }
}

/** One call took longer than LLM_TIMEOUT_MS: retryable. */
export class LlmTimeoutError extends Error {
  override readonly name = 'LlmTimeoutError';
  constructor(readonly timeoutMs: number) {
    super(`the LLM provider did not answer within ${timeoutMs} ms`);
  }
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(6).replace(/0+$/, '');
}
