/**
 * The stack the fault-injection tests break and mend: a Temporal dev server, a PostgreSQL cluster and a Redis of the
 * file's own (each can be stopped without disturbing anyone else), two worker processes and one facade process.
 * Runs are started over HTTP like a caller would; completion is read from Temporal, the audit trail from PostgreSQL.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { Pool } from 'pg';
import { createAuditStore, type VerifyResult } from '../../src/audit';
import { mintToken, type Role } from '../../src/facade/auth';
import { createLimitsRedis, createRunSlots } from '../../src/security';
import { TEST_AUDIT_SEAL_KEYS } from '../helpers/audit-seal';
import { testDataConverter } from '../helpers/codec';
import { createDevServer, type DevServer } from '../helpers/dev-server';
import { createPgCluster, type PgCluster } from '../helpers/pg-cluster';
import { freePort, spawnService, waitForHttp, type Service } from '../helpers/processes';
import { createRedisServer, type RedisServer } from '../helpers/redis-server';
import { waitUntil } from '../helpers/wait';

export const PIPELINE = 'chaos';

/**
 * Three agent stages of built-in agents (the worker processes host no test agents). Short heartbeat timeouts and
 * generous attempts: a stage whose worker is killed is retried within seconds, and never runs out of attempts.
 */
const CHAOS_YAML = `
name: ${PIPELINE}
version: 1
description: redacts, classifies and answers a message
input: { type: object, required: [text], properties: { text: { type: string } } }
access:
  start: [operator]
  read: [viewer, operator, auditor]
limits:
  runTimeout: 30m
  maxConcurrentRuns: 1000
stages:
  - name: redact
    agent: pii-redact
    with: { text: "\${input.text}" }
    timeout: 20s
    heartbeatTimeout: 2s
    retry: { maximumAttempts: 20, initialInterval: 200ms, maximumInterval: 2s }
  - name: classify
    agent: intent-classifier
    with: { text: "\${redact.text}" }
    timeout: 20s
    heartbeatTimeout: 2s
    retry: { maximumAttempts: 20, initialInterval: 200ms, maximumInterval: 2s }
  - name: reply
    agent: template-reply
    with: { intent: "\${classify.label}", team: general-support }
    timeout: 20s
    heartbeatTimeout: 2s
    retry: { maximumAttempts: 20, initialInterval: 200ms, maximumInterval: 2s }
`;

/** The audit trail of every completed run of the chaos pipeline, in order. */
export const EXPECTED_EVENTS = [
  'run.started',
  ...['redact', 'classify', 'reply'].map(() => 'stage.completed'),
  'run.completed',
];

const TEXTS = [
  'I lost my card yesterday, please block it. Reach me at {n}@example.org',
  'My new card has not arrived yet, it has been two weeks. Call me on +44 20 7946 0{n}',
  'Why was I charged twice for the same payment? Card 4111 1111 1111 1111, ticket {n}',
  'How do I top up my account by bank transfer? IBAN GB82 WEST 1234 5698 7654 32, ref {n}',
];

export interface HttpReply {
  status: number;
  type: string;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- bodies are asserted field by field
  json: any;
}

export interface AuditCheck {
  /** Runs whose trail is exactly EXPECTED_EVENTS with ids `{workflowId}#1..n`. */
  exact: number;
  /** What is wrong with the others, one line per run (empty when every run is exact). */
  problems: string[];
  /** Stage completions that needed more than one attempt (a kill or an outage landed mid-stage). */
  retriedStages: number;
  verify: VerifyResult;
}

export interface ChaosStack {
  temporal: DevServer;
  cluster: PgCluster;
  redis: RedisServer;
  /** The test's own Temporal client (reconnects by itself after a dev server restart). */
  client: Client;
  /** The test's pool on the cluster; its connections are cut by an outage and replaced after it. */
  pool: Pool;
  base: string;
  facade: Service;
  workers: Service[];
  /** Kills worker `i` (SIGKILL) and waits until the process is gone. */
  killWorker(i: number): Promise<void>;
  /** Starts worker `i` again and waits until it serves /health. */
  startWorker(i: number): Promise<void>;
  call(method: string, path: string, opts?: { tenant?: string; roles?: Role[]; body?: unknown }): Promise<HttpReply>;
  /** POST one run of the chaos pipeline for `tenant`; answers the reply (202 carries `runId`). */
  startRun(tenant: string, n: number): Promise<HttpReply>;
  /** Starts `count` runs, `parallel` requests at a time, and answers their run ids; every start must be accepted. */
  startRuns(tenant: string, count: number, parallel?: number): Promise<string[]>;
  /** Temporal's count of the tenant's runs matching an extra visibility clause. */
  countRuns(tenant: string, clause: string): Promise<number>;
  /** Waits until every run is closed, then answers each run's Temporal status; fails early when one fails. */
  awaitRuns(tenant: string, runIds: string[], timeoutMs: number): Promise<Record<string, string>>;
  /** Checks the tenant's audit trail against the runs: each event exactly once, in order, and the chain verifies. */
  checkAudit(tenant: string, runIds: string[]): Promise<AuditCheck>;
  /**
   * What the faults interrupted, read from the runs' histories: workflow tasks that timed out (their worker died
   * holding them) and activities that completed only on a later attempt.
   */
  interruptions(tenant: string, runIds: string[]): Promise<{ workflowTaskTimeouts: number; activityRetries: number }>;
  /** Active run slots of the tenant in Redis. */
  activeSlots(tenant: string): Promise<{ tenant: number; pipeline: number }>;
  /** Process output of every service, for a failed assertion. */
  outputs(): string;
  stop(): Promise<void>;
}

export const newTenant = (what: string) => `chaos-${what}-${randomBytes(3).toString('hex')}`;

/** Runs `fn` over `items`, at most `parallel` at a time, answering results in order. */
export async function inBatches<T, R>(items: T[], parallel: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < items.length; i = next++) results[i] = await fn(items[i], i);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, items.length) }, lane));
  return results;
}

export async function startChaosStack(opts: { workers?: number } = {}): Promise<ChaosStack> {
  const secret = randomBytes(32).toString('hex');
  const stateDir = mkdtempSync(join(tmpdir(), 'agentry-chaos-'));
  const pipelinesDir = join(stateDir, 'pipelines');
  mkdirSync(pipelinesDir);
  writeFileSync(join(pipelinesDir, `${PIPELINE}.yaml`), CHAOS_YAML);

  const [temporal, cluster, redis] = await Promise.all([createDevServer(), createPgCluster(), createRedisServer({ persistent: true })]);
  cluster.start();
  await Promise.all([temporal.start(), redis.start()]);

  const common = {
    DATABASE_URL: cluster.url,
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_TASK_QUEUE: 'chaos',
    REDIS_URL: redis.url,
    JWT_SECRET: secret,
    PIPELINES_DIR: pipelinesDir,
    RATE_LIMIT_PER_MINUTE: '100000',
    TENANT_RATE_LIMIT_PER_MINUTE: '100000',
    AGENTRY_STATE_DIR: stateDir,
    AUDIT_SEAL_KEYS: TEST_AUDIT_SEAL_KEYS,
    BACKUP_SCHEDULE: 'off',
    // Teardown only: killed workers are the point of the exercise, an orderly stop need not wait long.
    WORKER_SHUTDOWN_GRACE_MS: '2000',
  };
  const workers: Service[] = [];
  const spawnWorker = async (i: number) => {
    // LOG_LEVEL info for the "worker ready" line: logged once the workflow bundle is built, just before polling. The
    // metrics port is picked afresh on each start: a fixed one may meanwhile be some outgoing connection's local port.
    const worker = spawnService('src/worker.ts', { ...common, LOG_LEVEL: 'info', WORKER_METRICS_PORT: '0', WORKER_SDK_METRICS_PORT: 'off' });
    workers[i] = worker;
    await waitUntil(`worker ${i} to poll`, async () => {
      if (worker.child.exitCode !== null) throw Object.assign(new Error(`worker ${i} exited (${worker.child.exitCode}):\n${worker.output()}`), { fatal: true });
      return worker.output().includes('"msg":"worker ready"') ? true : undefined;
    }, 120_000, 100);
  };
  const port = await freePort();
  const facade = spawnService('src/server.ts', { ...common, PORT: String(port) });
  const base = `http://127.0.0.1:${port}`;
  // Both workers and the facade apply the migrations at start; node-pg-migrate serialises them with a lock.
  await Promise.all([...Array.from({ length: opts.workers ?? 2 }, (_, i) => spawnWorker(i)), waitForHttp(`${base}/ready`, facade, 120_000)]);

  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({ connection, dataConverter: testDataConverter });
  const pool = new Pool({ connectionString: cluster.url, max: 4, connectionTimeoutMillis: 2_000 });
  // Connections cut by an outage are reported here; the pool replaces them once the server is back.
  pool.on('error', () => undefined);
  const limitsRedis = createLimitsRedis(redis.url);
  limitsRedis.on('error', () => undefined);
  const slots = createRunSlots(limitsRedis);

  const call: ChaosStack['call'] = async (method, path, o = {}) => {
    const headers: Record<string, string> = {};
    if (o.tenant) {
      const roles = o.roles ?? ['operator'];
      headers.authorization = `Bearer ${await mintToken({ secret, issuer: 'agentry', audience: 'agentry-api', subject: `chaos-${roles[0]}`, tenant: o.tenant, roles })}`;
    }
    if (o.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${base}${path}`, { method, headers, body: o.body !== undefined ? JSON.stringify(o.body) : undefined });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, type: res.headers.get('content-type') ?? '', text, json };
  };

  const startRun: ChaosStack['startRun'] = (tenant, n) =>
    call('POST', `/v1/pipelines/${PIPELINE}/runs`, { tenant, body: { input: { text: TEXTS[n % TEXTS.length].replace('{n}', String(n)) } } });

  const countRuns: ChaosStack['countRuns'] = async (tenant, clause) =>
    Number((await client.workflow.count(`AgentryTenant = "${tenant}" AND ${clause}`)).count);

  const stack: ChaosStack = {
    temporal,
    cluster,
    redis,
    client,
    pool,
    base,
    facade,
    workers,
    killWorker: async (i) => {
      await workers[i].stop('SIGKILL');
    },
    startWorker: (i) => spawnWorker(i),
    call,
    startRun,
    async startRuns(tenant, count, parallel = 10) {
      return inBatches(Array.from({ length: count }, (_, n) => n), parallel, async (n) => {
        const res = await startRun(tenant, n);
        if (res.status !== 202) throw new Error(`run ${n} of ${tenant} was not accepted: ${res.status} ${res.text}`);
        return res.json.runId as string;
      });
    },
    countRuns,
    async awaitRuns(tenant, runIds, timeoutMs) {
      await waitUntil(`${runIds.length} runs of ${tenant} to close`, async () => {
        const broken = await countRuns(tenant, 'ExecutionStatus != "Running" AND ExecutionStatus != "Completed"');
        if (broken > 0) throw Object.assign(new Error(`${broken} runs of ${tenant} closed without completing`), { fatal: true });
        return (await countRuns(tenant, 'ExecutionStatus = "Running"')) === 0 && (await countRuns(tenant, 'ExecutionStatus = "Completed"')) >= runIds.length
          ? true
          : undefined;
      }, timeoutMs, 1000);
      // Visibility can lag the executions: each run's own state is the answer.
      const statuses = await inBatches(runIds, 20, async (runId) => (await client.workflow.getHandle(`${tenant}/${runId}`).describe()).status.name);
      return Object.fromEntries(runIds.map((runId, i) => [runId, statuses[i]]));
    },
    async checkAudit(tenant, runIds) {
      const rows = (
        await pool.query<{ run_id: string; ids: string[]; types: string[]; attempts: (number | null)[] }>(
          `SELECT run_id, array_agg(id ORDER BY chain_index) AS ids, array_agg(type ORDER BY chain_index) AS types,
                  array_agg((data->>'attempts')::int ORDER BY chain_index) AS attempts
             FROM audit_events WHERE tenant = $1 GROUP BY run_id`,
          [tenant],
        )
      ).rows;
      const byRun = new Map(rows.map((r) => [r.run_id, r]));
      const problems: string[] = [];
      let exact = 0;
      let retriedStages = 0;
      for (const runId of runIds) {
        const row = byRun.get(runId);
        byRun.delete(runId);
        const expectedIds = EXPECTED_EVENTS.map((_, i) => `${tenant}/${runId}#${i + 1}`);
        if (!row) problems.push(`${runId}: no events`);
        else if (JSON.stringify(row.types) !== JSON.stringify(EXPECTED_EVENTS) || JSON.stringify(row.ids) !== JSON.stringify(expectedIds)) {
          problems.push(`${runId}: ${row.ids.map((id, i) => `${id.slice(id.lastIndexOf('#'))} ${row.types[i]}`).join(', ')}`);
        } else exact++;
        retriedStages += (row?.attempts ?? []).filter((a) => a !== null && a > 1).length;
      }
      for (const runId of byRun.keys()) problems.push(`${runId}: events of a run the test did not start`);
      return { exact, problems, retriedStages, verify: await createAuditStore(pool).verify(tenant) };
    },
    async interruptions(tenant, runIds) {
      const counts = await inBatches(runIds, 10, async (runId) => {
        const { events } = await client.workflow.getHandle(`${tenant}/${runId}`).fetchHistory();
        return {
          workflowTaskTimeouts: (events ?? []).filter((e) => e.workflowTaskTimedOutEventAttributes).length,
          activityRetries: (events ?? []).filter((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1).length,
        };
      });
      return counts.reduce((a, b) => ({ workflowTaskTimeouts: a.workflowTaskTimeouts + b.workflowTaskTimeouts, activityRetries: a.activityRetries + b.activityRetries }));
    },
    activeSlots: (tenant) => slots.active(tenant, PIPELINE),
    outputs: () =>
      [['facade', facade.output()], ...workers.map((w, i) => [`worker ${i}`, w.output()]), ['temporal', temporal.output()]]
        .map(([name, out]) => `--- ${name} ---\n${out.slice(-4000)}`)
        .join('\n'),
    async stop() {
      await Promise.all([facade.stop(), ...workers.map((w) => w.stop())]);
      limitsRedis.disconnect();
      await connection.close().catch(() => undefined);
      await pool.end().catch(() => undefined);
      await Promise.all([temporal.destroy(), redis.destroy()]);
      cluster.destroy();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
  return stack;
}
