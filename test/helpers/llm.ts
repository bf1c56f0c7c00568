import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MockActivityEnvironment } from '@temporalio/testing';
import { Registry } from 'prom-client';
import { createRunAgentActivity, type RunAgentArgs } from '../../activities/run-agent.activity';
import { createAgentRegistry, type Agent } from '../../src/agents';
import type { ClaimStore } from '../../src/storage/claim-store';
import { createLogger, createRunMetrics } from '../../src/telemetry';
import { quietLogger } from './temporal';

/** One scripted answer of the fake provider; `hang` never answers (until the client gives up). */
export type ScriptedReply = { status: number; body: string; headers?: Record<string, string> } | 'hang';

export interface FakeProvider {
  /** API base, `http://127.0.0.1:{port}/v1`. */
  baseUrl: string;
  /** Bodies of the chat completion requests received, in order. */
  requests: Array<{ model: string; messages: { role: string; content: string }[]; max_tokens: number; response_format?: unknown }>;
  /** `traceparent` header of each of those requests, in the same order (undefined when absent). */
  traceparents: Array<string | undefined>;
  /** Requests whose client went away before an answer. */
  abandoned: number;
  /** Queues answers for the next requests; a request with nothing queued gets a 500. */
  script(...replies: ScriptedReply[]): void;
  close(): Promise<void>;
}

/** A Chat Completions answer with the given content and usage. */
export function completion(content: string, usage = { prompt: 10, completion: 5 }, finishReason = 'stop'): ScriptedReply {
  return {
    status: 200,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      id: 'chatcmpl-test',
      object: 'chat.completion',
      created: 0,
      model: 'fake-model',
      choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: finishReason }],
      usage: { prompt_tokens: usage.prompt, completion_tokens: usage.completion, total_tokens: usage.prompt + usage.completion },
    }),
  };
}

/** An OpenAI-style error answer. */
export function failure(status: number, headers: Record<string, string> = {}, message = `status ${status}`): ScriptedReply {
  return { status, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ error: { message, type: 'error' } }) };
}

/** A provider on loopback that answers from a script: for the failure paths a real provider shows only sometimes. */
export async function startFakeProvider(): Promise<FakeProvider> {
  const queue: ScriptedReply[] = [];
  const provider = { requests: [] as FakeProvider['requests'], traceparents: [] as FakeProvider['traceparents'], abandoned: 0 };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/chat/completions' && req.method === 'POST') {
        provider.requests.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        provider.traceparents.push(req.headers.traceparent as string | undefined);
      }
      const reply = queue.shift() ?? failure(500, {}, 'no scripted reply');
      if (reply === 'hang') {
        res.on('close', () => {
          if (!res.writableFinished) provider.abandoned++;
        });
        return;
      }
      res.writeHead(reply.status, reply.headers ?? {});
      res.end(reply.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    get requests() {
      return provider.requests;
    },
    get traceparents() {
      return provider.traceparents;
    },
    get abandoned() {
      return provider.abandoned;
    },
    script: (...replies) => queue.push(...replies),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Inputs without claim references never reach the store; anything else is a test bug. */
const noClaims = {
  resolve: async (value: unknown) => value,
  put: async () => {
    throw new Error('no claim store in this test');
  },
  get: async () => {
    throw new Error('no claim store in this test');
  },
} as unknown as ClaimStore;

/**
 * Runs one agent through the real `runAgent` activity in a mocked activity context, so a test sees the failure type
 * and retryability Temporal would see. `env.cancel()` cancels it as a cancelled run would.
 */
export function agentActivity(agent: Agent, args: { tenant: string; run: string; stage?: string; attempt?: number }) {
  const env = new MockActivityEnvironment({ attempt: args.attempt ?? 1, heartbeatTimeoutMs: 1000 }, { logger: quietLogger });
  const activity = createRunAgentActivity({
    agents: createAgentRegistry([agent]),
    metrics: createRunMetrics(new Registry()),
    logger: createLogger({ level: 'silent', name: 'test' }),
    claims: noClaims,
    inlineMaxBytes: 256 * 1024,
  });
  const stage = args.stage ?? 'draft';
  return {
    env,
    run: (input: Record<string, unknown>) => {
      const call: RunAgentArgs = { workflowId: `${args.tenant}/llm-test/${args.run}`, tenant: args.tenant, runId: `llm-test/${args.run}`, stage, agent: agent.name, input };
      return env.run(activity, call);
    },
  };
}
