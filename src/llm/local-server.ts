/**
 * The embedded model behind the OpenAI Chat Completions API, on loopback: `POST /v1/chat/completions` (non-streaming,
 * with `usage`), `GET /v1/models` and `GET /health`. The `llm` agent talks to it with the same HTTP client it uses
 * for remote providers, so local and remote differ by base URL only.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import type { Logger } from '../telemetry';
import { LocalEngineBusyError, PromptTooLongError, type LocalChatMessage, type LocalEngine } from './local-engine';

export interface LocalServerOptions {
  engine: LocalEngine;
  /** Loopback address to bind. @default 127.0.0.1 */
  host: string;
  /** 0 picks a free port. */
  port: number;
  logger: Logger;
  /** Completion length when a request names none. @default 256 @format tokens */
  defaultMaxTokens?: number;
  /** Largest accepted request body. @default 1048576 @format bytes */
  bodyLimitBytes?: number;
}

export interface LocalServer {
  /** The API base URL to give clients, e.g. `http://127.0.0.1:8088/v1`. */
  readonly baseUrl: string;
  readonly port: number;
  close(): Promise<void>;
}

const textPart = z.object({ type: z.literal('text'), text: z.string() });
const chatRequestSchema = z.object({
  model: z.string().optional(),
  messages: z
    .array(
      z.object({
        // `developer` is the newer name OpenAI gives system instructions.
        role: z.enum(['system', 'developer', 'user', 'assistant']),
        content: z.union([z.string(), z.array(textPart), z.null()]),
      }),
    )
    .min(1, 'at least one message'),
  max_tokens: z.number().int().min(1).optional(),
  max_completion_tokens: z.number().int().min(1).optional(),
  temperature: z.number().min(0).max(2).optional(),
  seed: z.number().int().optional(),
  n: z.literal(1).optional(),
  stream: z.boolean().optional(),
  response_format: z
    .discriminatedUnion('type', [
      z.object({ type: z.literal('text') }),
      z.object({ type: z.literal('json_object') }),
      z.object({
        type: z.literal('json_schema'),
        json_schema: z.object({ name: z.string().optional(), schema: z.record(z.string(), z.unknown()).optional(), strict: z.boolean().nullish() }),
      }),
    ])
    .optional(),
});

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolveBody, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new HttpError(413, 'invalid_request_error', 'request_too_large', `the request body exceeds ${limit} bytes`));
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolveBody(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function contentText(content: string | { text: string }[] | null): string {
  if (content === null) return '';
  return typeof content === 'string' ? content : content.map((p) => p.text).join('');
}

/** Starts the server; resolves once it listens. */
export async function startLocalServer(opts: LocalServerOptions): Promise<LocalServer> {
  const { engine, logger } = opts;
  const bodyLimit = opts.bodyLimitBytes ?? 1024 * 1024;
  const defaultMaxTokens = opts.defaultMaxTokens ?? 256;

  async function chatCompletions(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      throw new HttpError(415, 'invalid_request_error', 'unsupported_media_type', 'send the body as application/json');
    }
    let raw: unknown;
    try {
      raw = JSON.parse(await readBody(req, bodyLimit));
    } catch (err) {
      if (err instanceof HttpError) throw err;
      throw new HttpError(400, 'invalid_request_error', 'invalid_json', 'the request body is not valid JSON');
    }
    const parsed = chatRequestSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new HttpError(400, 'invalid_request_error', 'invalid_request', `${issue.path.map(String).join('.') || 'body'}: ${issue.message}`);
    }
    const body = parsed.data;
    if (body.stream) throw new HttpError(400, 'invalid_request_error', 'unsupported', 'streaming is not supported by the local server; send stream: false');
    const messages: LocalChatMessage[] = body.messages.map((m) => ({
      role: m.role === 'developer' ? 'system' : m.role,
      content: contentText(m.content),
    }));
    const format = body.response_format;
    const json = format?.type === 'json_object' ? {} : format?.type === 'json_schema' ? { schema: format.json_schema.schema } : undefined;

    // A client that goes away (cancellation, its own timeout) stops the generation: the CPU is the scarce thing here.
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort(new Error('client disconnected'));
    });
    const started = performance.now();
    try {
      const result = await engine.chat({
        messages,
        maxTokens: body.max_completion_tokens ?? body.max_tokens ?? defaultMaxTokens,
        temperature: body.temperature ?? 0,
        ...(body.seed !== undefined ? { seed: body.seed } : {}),
        ...(json ? { json } : {}),
        signal: abort.signal,
      });
      logger.info(
        { promptTokens: result.promptTokens, completionTokens: result.completionTokens, finishReason: result.finishReason, ms: Math.round(performance.now() - started) },
        'chat completion',
      );
      send(res, 200, {
        id: `chatcmpl-${randomUUID()}`,
        object: 'chat.completion',
        created: Math.floor(Date.now() / 1000),
        model: engine.modelName,
        choices: [{ index: 0, message: { role: 'assistant', content: result.text }, finish_reason: result.finishReason }],
        usage: {
          prompt_tokens: result.promptTokens,
          completion_tokens: result.completionTokens,
          total_tokens: result.promptTokens + result.completionTokens,
        },
      });
    } catch (err) {
      if (abort.signal.aborted) {
        logger.info({ ms: Math.round(performance.now() - started) }, 'chat completion cancelled by the client');
        return;
      }
      if (err instanceof LocalEngineBusyError) {
        throw new HttpError(503, 'server_error', 'overloaded', err.message, { 'Retry-After': '1' });
      }
      if (err instanceof PromptTooLongError) throw new HttpError(400, 'invalid_request_error', 'context_length_exceeded', err.message);
      throw err;
    }
  }

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const handle = async () => {
      if (req.method === 'POST' && path === '/v1/chat/completions') return chatCompletions(req, res);
      if (req.method === 'GET' && path === '/v1/models') {
        return send(res, 200, { object: 'list', data: [{ id: engine.modelName, object: 'model', created: 0, owned_by: 'local' }] });
      }
      if (req.method === 'GET' && path === '/health') return send(res, 200, { status: 'ok', model: engine.modelName });
      throw new HttpError(404, 'invalid_request_error', 'not_found', `no route ${req.method} ${path}`);
    };
    handle().catch((err: unknown) => {
      if (err instanceof HttpError) {
        send(res, err.status, { error: { message: err.message, type: err.type, code: err.code, param: null } }, err.headers);
        return;
      }
      logger.error({ err: { name: (err as Error)?.name, message: (err as Error)?.message } }, 'chat completion failed');
      send(res, 500, { error: { message: 'the local model failed to answer', type: 'server_error', code: 'internal_error', param: null } });
    });
  });
  // Generation on a CPU can take minutes; Node's default request timeout would cut it off.
  server.requestTimeout = 0;
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolveListen());
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    baseUrl: `http://${host}:${port}/v1`,
    port,
    close: () =>
      new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        server.closeAllConnections();
      }),
  };
}
