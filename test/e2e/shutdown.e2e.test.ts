import { randomBytes } from 'node:crypto';
import { Agent as HttpAgent, createServer, request, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createAuditStore } from '../../src/audit';
import { mintToken } from '../../src/facade/auth';
import { call } from '../helpers/http';
import { completion } from '../helpers/llm';
import { exitOf, type Service } from '../helpers/processes';
import { startStack, type Stack } from '../helpers/stack';
import { waitUntil } from '../helpers/wait';

const secret = randomBytes(32).toString('hex');
const tenant = `sd-${randomBytes(3).toString('hex')}`;

/** Redacts, then has the language model draft: the draft is the stage the test holds open at the provider. */
const SLOW_DRAFT = `
name: slow-draft
version: 1
description: a stage that takes as long as the language model provider makes it
input: { type: object, required: [text], properties: { text: { type: string } } }
stages:
  - name: redact
    agent: pii-redact
    with: { text: "\${input.text}" }
  - name: draft
    agent: llm
    with: { prompt: "\${redact.text}", maxTokens: 16 }
    timeout: 2m
    heartbeatTimeout: 5s
    retry: { maximumAttempts: 3, initialInterval: 200ms }
`;

/**
 * A Chat Completions provider that answers only when the test lets it: a stage is in flight exactly as long as the
 * test wants, without timing it.
 */
interface GatedProvider {
  baseUrl: string;
  /** Requests received so far whose body contains `text`, answered or not. */
  received(text: string): number;
  /** Requests waiting for an answer. */
  pending: number;
  /** Answers the waiting requests, and from now on every request at once. */
  open(): void;
  /** Holds every request from now on until `open()`. */
  hold(): void;
  close(): Promise<void>;
}

async function startGatedProvider(answer: string): Promise<GatedProvider> {
  const waiting = new Set<ServerResponse>();
  let gateOpen = false;
  const bodies: string[] = [];
  const reply = (res: ServerResponse) => {
    const r = completion(answer) as { status: number; body: string; headers: Record<string, string> };
    res.writeHead(r.status, r.headers);
    res.end(r.body);
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      bodies.push(body);
      if (gateOpen) return reply(res);
      waiting.add(res);
      res.on('close', () => waiting.delete(res));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    received: (text) => bodies.filter((b) => b.includes(text)).length,
    get pending() {
      return waiting.size;
    },
    open() {
      gateOpen = true;
      for (const res of waiting) reply(res);
      waiting.clear();
    },
    hold() {
      gateOpen = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

let stack: Stack;
let provider: GatedProvider;

const token = () => mintToken({ secret, issuer: 'agentry', audience: 'agentry-api', subject: 'sd-user', tenant, roles: ['operator', 'viewer'] });

async function startFacade(env: Record<string, string> = {}): Promise<{ service: Service; base: string; port: number }> {
  const { service, url, port } = await stack.startFacade(env);
  return { service, base: url, port };
}

async function startWorker(graceMs: number): Promise<Service> {
  // Info level: the test waits for the worker to say it is shutting down.
  return (await stack.startWorker({ LOG_LEVEL: 'info', WORKER_SHUTDOWN_GRACE_MS: String(graceMs) })).service;
}

async function startRun(base: string, text: string): Promise<string> {
  const started = await call(base, 'POST', '/v1/pipelines/slow-draft/runs', { token: await token(), body: { input: { text } } });
  expect(started.status).toBe(202);
  return started.json.runId as string;
}

async function runToEnd(base: string, runId: string) {
  const tk = await token();
  return waitUntil(`run ${runId} to finish`, async () => {
    const r = await call(base, 'GET', `/v1/runs/${runId}`, { token: tk });
    return r.status === 200 && !['running', 'awaiting-approval'].includes(r.json.status) ? r.json : undefined;
  }, 90_000, 200);
}

beforeAll(async () => {
  provider = await startGatedProvider('We are on it.');
  // No processes yet: each test starts the facades and workers it needs.
  stack = await startStack({
    label: 'sd',
    secret,
    pipelines: { 'slow-draft.yaml': SLOW_DRAFT },
    env: {
      LLM_BASE_URL: provider.baseUrl,
      LLM_MODEL: 'fake-model',
      // One call per attempt: a hand-back shows as a second stage attempt, not as a client retry.
      LLM_MAX_RETRIES: '0',
    },
    facades: 0,
    workers: 0,
  });
});

afterAll(async () => {
  await stack?.stop('SIGKILL');
  await provider?.close();
});

describe('facade', () => {
  test('SIGTERM finishes the in-flight request, ends event streams, drops idle connections, refuses new ones and exits 0', async () => {
    const { service, base, port } = await startFacade();
    const tk = await token();
    const streamed = await startRun(base, 'a run to follow');

    // A request in flight: the headers and half the body are sent; the rest follows after SIGTERM.
    const body = JSON.stringify({ input: { text: 'a ticket that arrives slowly' } });
    const keepAlive = new HttpAgent({ keepAlive: true });
    let replied = false;
    const slow = request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/v1/pipelines/slow-draft/runs',
      agent: keepAlive,
      headers: { authorization: `Bearer ${tk}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    const slowReply = new Promise<{ status: number; json: { runId: string } }>((resolve, reject) => {
      slow.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          replied = true;
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) });
        });
      });
      slow.on('error', reject);
    });
    slow.write(body.slice(0, 20));

    // An idle keep-alive connection: one answered request, the socket left open in the agent's pool. Opened after
    // the slow request's connection, so by its answer the server has accepted both.
    const idle = await new Promise<Socket>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/health', agent: keepAlive }, (res) => {
        res.resume();
        res.on('end', () => resolve(req.socket!));
      });
      req.on('error', reject);
      req.end();
    });
    let idleClosed = false;
    idle.on('close', () => (idleClosed = true));

    // An open event stream of the run started above.
    let streamEnded = false;
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: `/v1/runs/${streamed}/events`, headers: { authorization: `Bearer ${tk}` }, agent: false }, (res) => {
        expect(res.statusCode).toBe(200);
        res.resume();
        res.on('end', () => (streamEnded = true));
        res.on('close', () => (streamEnded = true));
        resolve();
      });
      req.on('error', reject);
      req.end();
    });

    service.child.kill('SIGTERM');

    // The stream and the idle connection are let go while the slow request is still being received.
    await waitUntil('the event stream and the idle connection to be closed', async () => (streamEnded && idleClosed ? true : undefined), 10_000, 50);
    expect(replied).toBe(false);
    expect(service.child.exitCode).toBeNull();

    // A new caller is turned away: the listener is closed (or, if it still answers, /ready says draining).
    const fresh = await fetch(`${base}/ready`).then(
      async (res) => ({ status: res.status, json: (await res.json()) as { code?: string } }),
      (err: Error & { cause?: { code?: string } }) => ({ refused: err.cause?.code }),
    );
    if ('refused' in fresh) expect(fresh.refused).toBe('ECONNREFUSED');
    else expect(fresh).toMatchObject({ status: 503, json: { code: 'draining' } });

    slow.end(body.slice(20));
    const answer = await slowReply;
    expect(answer.status).toBe(202);
    expect(answer.json.runId).toMatch(/^slow-draft\//);
    // The run it answered for really started.
    const started = await stack.temporal.client.workflow.getHandle(`${tenant}/${answer.json.runId}`).describe();
    expect(started.status.name).toBe('RUNNING');

    // The connection that carried it does not hold the process either: it exits on its own, cleanly.
    const exit = await exitOf(service, 15_000);
    expect(exit.code).toBe(0);
    expect(exit.output).not.toMatch(/drain did not finish/);
    keepAlive.destroy();
    // No worker ran them; the worker tests must not either.
    for (const runId of [streamed, answer.json.runId]) await stack.temporal.client.workflow.getHandle(`${tenant}/${runId}`).terminate('test cleanup');
  }, 180_000);
});

describe('facade leaving rotation', () => {
  test('with SHUTDOWN_READY_DELAY_MS, SIGTERM first turns /ready to 503 draining while requests are still served', async () => {
    const { service, base } = await startFacade({ SHUTDOWN_READY_DELAY_MS: '4000', LOG_LEVEL: 'info' });
    const tk = await token();
    // No worker polls in this test, so /ready already fails its workers check: what changes is the reason.
    expect((await call(base, 'GET', '/ready')).json.code).toBe('not_ready');

    service.child.kill('SIGTERM');
    await waitUntil('the facade to leave rotation', async () => (/still serving/.test(service.output()) ? true : undefined), 10_000, 50);
    const ready = await call(base, 'GET', '/ready');
    expect(ready.status).toBe(503);
    expect(ready.json.code).toBe('draining');
    // Still serving: a load balancer that has not yet noticed loses nothing.
    expect((await call(base, 'GET', '/v1/runs', { token: tk })).status).toBe(200);
    expect(service.child.exitCode).toBeNull();

    const exit = await exitOf(service, 30_000);
    expect(exit.code).toBe(0);
    expect(exit.output.indexOf('still serving')).toBeLessThan(exit.output.indexOf('draining in-flight requests'));
  }, 120_000);
});

describe('worker', () => {
  let facade: { service: Service; base: string };

  beforeAll(async () => {
    facade = await startFacade();
  });

  afterAll(async () => {
    await facade?.service.stop();
  });

  async function expectOneAuditEventPerStep(runId: string) {
    const events = await createAuditStore(stack.db.pool).listByRun(tenant, runId);
    expect(events.map((e) => `${e.type}${e.stage ? `:${e.stage}` : ''}`)).toEqual(['run.started', 'stage.completed:redact', 'stage.completed:draft', 'run.completed']);
  }

  test('SIGTERM lets the running activity finish within the grace period; the run completes once, exactly', async () => {
    provider.hold();
    const first = await startWorker(60_000);
    const text = 'please call me back';
    const runId = await startRun(facade.base, text);
    await waitUntil('the draft stage to reach the provider', async () => (provider.received(text) === 1 ? true : undefined), 90_000, 100);
    expect(provider.pending).toBe(1);

    first.child.kill('SIGTERM');
    await waitUntil('the worker to begin its shutdown', async () => (/shutting down: finishing in-flight activities/.test(first.output()) ? true : undefined), 10_000, 50);
    // The activity is still running and the worker waits for it.
    expect(first.child.exitCode).toBeNull();

    provider.open();
    const exit = await exitOf(first, 30_000);
    expect(exit.code).toBe(0);

    // The worker took no more work after SIGTERM: the rest of the run is for the next worker.
    await startWorker(60_000);
    const run = await runToEnd(facade.base, runId);
    expect(run.status).toBe('completed');
    expect(run.outputs.draft.text).toBe('We are on it.');
    // The draft was answered by the first worker's call and not asked again.
    expect(provider.received(text)).toBe(1);
    await expectOneAuditEventPerStep(runId);
  }, 300_000);

  test('an activity longer than the grace period is handed back and another worker completes it', async () => {
    // Only the worker under test may poll the queue.
    await Promise.all(stack.services.filter((s) => s !== facade.service && s.child.exitCode === null).map((s) => s.stop()));
    provider.hold();
    const short = await startWorker(1_000);
    const text = 'my card is stuck in the machine';
    const runId = await startRun(facade.base, text);
    await waitUntil('the draft stage to reach the provider', async () => (provider.received(text) === 1 ? true : undefined), 90_000, 100);
    expect(provider.pending).toBe(1);

    short.child.kill('SIGTERM');
    // The grace period ends and the worker leaves with the stage unanswered.
    const exit = await exitOf(short, 30_000);
    expect(exit.code).toBe(0);
    expect(provider.pending).toBe(0);

    provider.open();
    await startWorker(60_000);
    const run = await runToEnd(facade.base, runId);
    expect(run.status).toBe('completed');
    expect(run.outputs.draft.text).toBe('We are on it.');
    // Asked twice: once by the worker that left, once by the one that took the stage over.
    expect(provider.received(text)).toBe(2);
    await expectOneAuditEventPerStep(runId);
  }, 300_000);
});
