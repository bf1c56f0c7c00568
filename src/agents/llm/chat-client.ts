/**
 * A client for the OpenAI-compatible Chat Completions API (`POST {baseUrl}/chat/completions`, non-streaming), used
 * for remote providers and the embedded local server alike.
 *
 * Failure handling, per call:
 * - 408, 429, 5xx and network errors are retried up to `maxRetries` times, waiting out the provider's Retry-After
 *   (seconds or an HTTP date) when it gives one and it is at most `retryAfterMaxMs`, else backing off
 *   exponentially. A longer Retry-After, or running out of retries, throws the retryable `LlmProviderError`: the
 *   stage's retry policy takes it from there.
 * - Other 4xx throw the non-retryable `LlmRequestRejectedError` (bad key, unknown model, request too large).
 * - A 2xx body that is not a Chat Completions response throws the retryable `LlmMalformedResponseError`.
 * - A call that outlives `timeoutMs` throws the retryable `LlmTimeoutError` (not retried here: the attempt's time
 *   is spent).
 * - The caller's AbortSignal aborts the HTTP request at once, in a retry wait too, and rethrows its reason.
 *
 * Each call is one client span, `chat {model}`, with the OpenTelemetry GenAI attributes (model, token usage, finish
 * reason), and every request carries its `traceparent`: Node's fetch is not instrumented under the OTel 1.x line.
 * Prompts and answers never go into the span; they are customer data.
 */
import { context, propagation, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { z } from 'zod';
import { LlmMalformedResponseError, LlmProviderError, LlmRequestRejectedError, LlmTimeoutError } from './llm-errors';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export type ResponseFormat = { type: 'json_object' } | { type: 'json_schema'; name: string; schema: Record<string, unknown> };

export interface ChatRequest {
  model: string;
  messages: readonly ChatMessage[];
  /** @format tokens */
  maxTokens: number;
  temperature?: number;
  responseFormat?: ResponseFormat;
}

export interface ChatUsage {
  /** @format tokens */
  promptTokens: number;
  /** @format tokens */
  completionTokens: number;
}

export interface ChatResult {
  text: string;
  /** `stop`, `length` (cut off at max tokens), or whatever else the provider says. */
  finishReason: string;
  /** The model the provider says answered. */
  model: string;
  usage: ChatUsage;
  /** HTTP requests this call took, retries included. */
  requests: number;
}

export interface ChatClientOptions {
  /** API base, up to and including `/v1`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer`; absent for the local server. */
  apiKey?: string;
  /** @default 120000 @format ms */
  timeoutMs: number;
  /** @default 2 */
  maxRetries: number;
  /** @default 30000 @format ms */
  retryAfterMaxMs: number;
  /** First backoff without Retry-After; doubles per retry, capped at 8 s. @default 500 @format ms */
  backoffMs?: number;
  fetch?: typeof fetch;
}

export interface ChatCallOptions {
  signal?: AbortSignal;
  /** Told about each retry before its wait. */
  onRetry?: (info: { status: number | undefined; waitMs: number; retry: number }) => void;
}

export interface ChatClient {
  readonly baseUrl: string;
  complete(request: ChatRequest, opts?: ChatCallOptions): Promise<ChatResult>;
}

const responseSchema = z.object({
  model: z.string().optional(),
  choices: z
    .array(
      z.object({
        message: z.object({ content: z.string().nullable().optional() }),
        finish_reason: z.string().nullable().optional(),
      }),
    )
    .min(1),
  usage: z
    .object({ prompt_tokens: z.number().int().nonnegative(), completion_tokens: z.number().int().nonnegative() })
    .optional(),
});

const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504, 529]);
const MAX_BACKOFF_MS = 8_000;

/** Retry-After as milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** A rough, deliberately high token count for text a provider will tokenize: about 3 characters a token. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 3);
}

/** Worst-case prompt size of a message list: the text plus a few tokens of chat template per message. */
export function estimatePromptTokens(messages: readonly ChatMessage[]): number {
  return messages.reduce((sum, m) => sum + estimateTokens(m.content) + 8, 8);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolveSleep, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolveSleep();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The provider's own error message, shortened, for failures that name what went wrong. */
function providerMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown };
    const msg = typeof parsed.error === 'string' ? parsed.error : (parsed.error?.message ?? parsed.message);
    if (typeof msg === 'string') return msg.slice(0, 300);
  } catch {
    // not JSON: fall through
  }
  return body.slice(0, 120).replace(/\s+/g, ' ');
}

function describeBody(res: Response, body: string): string {
  return `${res.headers.get('content-type') ?? 'no content type'}, ${Buffer.byteLength(body)} bytes`;
}

export function createChatClient(opts: ChatClientOptions): ChatClient {
  const doFetch = opts.fetch ?? fetch;
  const url = `${opts.baseUrl.replace(/\/+$/, '')}/chat/completions`;
  const backoff = opts.backoffMs ?? 500;

  const body = (request: ChatRequest) => {
    const payload: Record<string, unknown> = {
      model: request.model,
      messages: request.messages,
      max_tokens: request.maxTokens,
      temperature: request.temperature ?? 0,
      stream: false,
    };
    const format = request.responseFormat;
    if (format?.type === 'json_object') payload.response_format = { type: 'json_object' };
    if (format?.type === 'json_schema') payload.response_format = { type: 'json_schema', json_schema: { name: format.name, schema: format.schema } };
    return JSON.stringify(payload);
  };

  const server = new URL(url);
  const tracer = trace.getTracer('agentry-llm');

  const complete = async (request: ChatRequest, callOpts: ChatCallOptions, span: Span): Promise<ChatResult> => {
    const { signal } = callOpts;
    const payload = body(request);
    for (let requests = 1; ; requests++) {
      signal?.throwIfAborted();
      const timeout = AbortSignal.timeout(opts.timeoutMs);
      const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
      let res: Response;
      let text: string;
      try {
        const headers: Record<string, string> = {
          'content-type': 'application/json',
          accept: 'application/json',
          ...(opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}),
        };
        propagation.inject(context.active(), headers);
        res = await doFetch(url, {
          method: 'POST',
          headers,
          body: payload,
          signal: combined,
        });
        text = await res.text();
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        if (timeout.aborted) throw new LlmTimeoutError(opts.timeoutMs);
        // A network failure (refused, reset, DNS): worth another try, like a 503.
        const reason = err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
        if (requests > opts.maxRetries) throw new LlmProviderError(`the LLM provider at ${opts.baseUrl} is unreachable: ${reason}`, undefined);
        const waitMs = Math.min(MAX_BACKOFF_MS, backoff * 2 ** (requests - 1));
        callOpts.onRetry?.({ status: undefined, waitMs, retry: requests });
        span.addEvent('retry', { 'error.type': 'network', 'agentry.llm.wait_ms': waitMs });
        await sleep(waitMs, signal);
        continue;
      }

      if (res.ok) {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          throw new LlmMalformedResponseError(`the body is not JSON (${describeBody(res, text)})`);
        }
        const parsed = responseSchema.safeParse(json);
        if (!parsed.success) {
          const issue = parsed.error.issues[0]!;
          throw new LlmMalformedResponseError(`not a Chat Completions response (${issue.path.map(String).join('.') || 'body'}: ${issue.message})`);
        }
        const choice = parsed.data.choices[0]!;
        const content = choice.message.content ?? '';
        const usage = parsed.data.usage
          ? { promptTokens: parsed.data.usage.prompt_tokens, completionTokens: parsed.data.usage.completion_tokens }
          : // Providers that leave usage out are charged by estimate, so budgets still hold.
            { promptTokens: estimatePromptTokens(request.messages), completionTokens: estimateTokens(content) };
        const result = { text: content, finishReason: choice.finish_reason ?? 'stop', model: parsed.data.model ?? request.model, usage, requests };
        span.setAttributes({
          'gen_ai.response.model': result.model,
          'gen_ai.response.finish_reasons': [result.finishReason],
          'gen_ai.usage.input_tokens': usage.promptTokens,
          'gen_ai.usage.output_tokens': usage.completionTokens,
          'http.response.status_code': res.status,
          'agentry.llm.requests': requests,
        });
        return result;
      }

      const detail = providerMessage(text);
      if (!RETRYABLE_STATUS.has(res.status)) {
        throw new LlmRequestRejectedError(`the LLM provider refused the request (HTTP ${res.status}): ${detail}`, res.status);
      }
      const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
      if (requests > opts.maxRetries) {
        throw new LlmProviderError(`the LLM provider failed (HTTP ${res.status}) after ${requests} requests: ${detail}`, res.status, retryAfterMs);
      }
      if (retryAfterMs !== undefined && retryAfterMs > opts.retryAfterMaxMs) {
        throw new LlmProviderError(
          `the LLM provider asks to wait ${Math.ceil(retryAfterMs / 1000)} s (HTTP ${res.status}), longer than LLM_RETRY_AFTER_MAX_MS: ${detail}`,
          res.status,
          retryAfterMs,
        );
      }
      const waitMs = retryAfterMs ?? Math.min(MAX_BACKOFF_MS, backoff * 2 ** (requests - 1));
      callOpts.onRetry?.({ status: res.status, waitMs, retry: requests });
      span.addEvent('retry', { 'http.response.status_code': res.status, 'agentry.llm.wait_ms': waitMs });
      await sleep(waitMs, signal);
    }
  };

  return {
    baseUrl: opts.baseUrl,
    complete(request, callOpts = {}) {
      return tracer.startActiveSpan(
        `chat ${request.model}`,
        {
          kind: SpanKind.CLIENT,
          attributes: {
            'gen_ai.operation.name': 'chat',
            'gen_ai.request.model': request.model,
            'gen_ai.request.max_tokens': request.maxTokens,
            'server.address': server.hostname,
            'server.port': Number(server.port || (server.protocol === 'https:' ? 443 : 80)),
          },
        },
        async (span) => {
          try {
            return await complete(request, callOpts, span);
          } catch (err) {
            // The error's kind and HTTP status only: its message can quote the provider, and the provider the prompt.
            const type = err instanceof Error ? err.name : 'Error';
            const status = (err as { status?: unknown }).status;
            span.setAttribute('error.type', type);
            if (typeof status === 'number') span.setAttribute('http.response.status_code', status);
            span.setStatus({ code: SpanStatusCode.ERROR, message: typeof status === 'number' ? `${type} (HTTP ${status})` : type });
            throw err;
          } finally {
            span.end();
          }
        },
      );
    },
  };
}
