import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { z } from 'zod';
import { KeyRingError, parseKeyRing } from '../codec';
import { DEFAULT_STATUS_THRESHOLDS, type StatusThresholds } from './status-thresholds';

const ROOT = resolve(__dirname, '..', '..');

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** `scheme://host[:port]` exactly, as browsers send it in `Origin`. */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === value;
  } catch {
    return false;
  }
}

/** JWS algorithms the facade can be configured to accept. `none` is deliberately absent. */
export const JWT_ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

// Strict decimal text: z.coerce.number() would take " " as 0, "0x1f" as 31 and "1e2" as 100.
const wholeNumber = z.string().regex(/^\d{1,15}$/, 'expected a whole number').transform(Number);
/** A JSON value given as text; a value that does not parse is refused with an example of the expected shape. */
const jsonText = (example: string) =>
  z.string().transform((v, ctx) => {
    try {
      return JSON.parse(v) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: `expected JSON such as ${example}` });
      return z.NEVER;
    }
  });
const port = wholeNumber.pipe(z.number().int().min(0).max(65535, 'expected a port from 0 to 65535'));
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Which proxies the facade believes about the client address: none, the nearest `n` hops, or these addresses. */
export type TrustProxy = false | number | string[];

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** TRUST_PROXY text to Express's `trust proxy` value, or a message saying what is wrong with it. */
function parseTrustProxy(text: string): TrustProxy | string {
  const value = text.trim().toLowerCase();
  if (value === 'off' || value === 'false') return false;
  if (value === 'true' || value === '*') return 'trusting every hop lets any caller choose its address: name the proxies (addresses, CIDR ranges, loopback) or a hop count';
  if (/^\d+$/.test(value)) {
    const hops = Number(value);
    return hops >= 1 && hops <= 10 ? hops : 'expected a hop count from 1 to 10, off, or proxy addresses';
  }
  const entries = value.split(',').map((e) => e.trim());
  for (const entry of entries) {
    if (PROXY_NAMES.has(entry)) continue;
    const [address, prefix, extra] = entry.split('/');
    const family = isIP(address);
    const bits = family === 4 ? 32 : 128;
    const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= bits);
    if (!family || extra !== undefined || !prefixOk) {
      return `"${entry}" is not an IP address, a CIDR range or one of loopback, linklocal, uniquelocal (expected off, a hop count or a comma-separated list)`;
    }
  }
  return entries;
}

/**
 * Every setting the processes read, parsed once at start-up. Each key names its environment variable, default
 * and unit. Nothing else in the code reads `process.env`. Never log the parsed object: it holds secrets.
 */
const schema = z.object({
  /** NODE_ENV. `production` refuses development conveniences such as minting tokens. @default development */
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  /** LOG_LEVEL: pino level. @default info */
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /**
   * OTEL_EXPORTER_OTLP_ENDPOINT: OTLP/HTTP address of a trace collector (Jaeger, the OpenTelemetry Collector), such as
   * `http://jaeger:4318`; spans are posted to `{endpoint}/v1/traces`. Unset: tracing is off, nothing is instrumented.
   */
  OTEL_EXPORTER_OTLP_ENDPOINT: z
    .string()
    .refine((v) => /^https?:\/\/[^/\s]/.test(v) && URL.canParse(v), 'expected an http:// or https:// URL')
    .optional(),
  /** OTEL_EXPORTER_OTLP_PROTOCOL: encoding of exported spans, `http/protobuf` or `http/json` (gRPC is not offered). @default http/protobuf */
  OTEL_EXPORTER_OTLP_PROTOCOL: z.enum(['http/protobuf', 'http/json'], { error: 'expected http/protobuf or http/json' }).default('http/protobuf'),
  /** HOST: address the facade binds. @default 127.0.0.1 */
  HOST: z.string().min(1).default('127.0.0.1'),
  /** PORT: facade HTTP port; 0 picks a free one. @default 3000 */
  PORT: port.default(3000),
  /** TEMPORAL_ADDRESS: host:port of the Temporal frontend. @default 127.0.0.1:7233 */
  TEMPORAL_ADDRESS: z.string().regex(/^[^:\s]+:\d+$/, 'expected host:port').default('127.0.0.1:7233'),
  /** TEMPORAL_NAMESPACE. @default default */
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  /**
   * TEMPORAL_RPC_ATTEMPTS: attempts the facade makes of a Temporal call that fails with a retryable status (the
   * frontend unreachable, say) before it answers 503 `temporal_unavailable`, with backoff from 0.17 s growing 1.7x.
   * The SDK's default of 10 kept callers waiting over half a minute during an outage; 6 answers within a few seconds.
   * @default 6
   */
  TEMPORAL_RPC_ATTEMPTS: wholeNumber.pipe(z.number().int().min(1).max(20)).default(6),
  /** TEMPORAL_TASK_QUEUE: the queue the default worker polls. @default agentry-agents */
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('agentry-agents'),
  /** TEMPORAL_UI_URL: base address of the Temporal Web UI, used to print links to runs. @default http://127.0.0.1:8233 */
  TEMPORAL_UI_URL: z.string().url().default('http://127.0.0.1:8233'),
  /** DATABASE_URL: PostgreSQL for the audit trail (required by the facade and the worker). */
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'expected a postgres:// URL').optional(),
  /** DATABASE_POOL_MAX: connections per process. @default 10 */
  DATABASE_POOL_MAX: wholeNumber.pipe(z.number().int().min(1).max(200)).default(10),
  /** REDIS_URL: Redis for rate limits shared across facades; unset means an in-process limiter (one facade only). */
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'expected a redis:// URL').optional(),
  /** JWT_SECRET: HMAC key (HS256/384/512) that verifies bearer tokens, for development; at least 32 characters. */
  JWT_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  /**
   * JWT_PUBLIC_KEY: public key that verifies RS*, PS* or ES* tokens. Either the PEM text itself (SPKI `PUBLIC KEY`,
   * PKCS#1 `RSA PUBLIC KEY` or an X.509 `CERTIFICATE`; `\n` escapes are accepted) or the path of a file holding it.
   */
  JWT_PUBLIC_KEY: z.string().min(1).optional(),
  /** JWT_JWKS_URL: JSON Web Key Set of the identity provider; https:// (http:// only for localhost). */
  JWT_JWKS_URL: z
    .string()
    .url('expected a URL')
    .refine((u) => {
      const url = URL.canParse(u) ? new URL(u) : undefined;
      return url?.protocol === 'https:' || (url?.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname));
    }, 'must be an https:// URL (http:// is accepted for localhost only)')
    .optional(),
  /**
   * JWT_ALGORITHMS: comma list of accepted JWS algorithms; HS* needs JWT_SECRET, RS/PS/ES* JWT_PUBLIC_KEY or JWT_JWKS_URL.
   * @default HS256 with JWT_SECRET, else RS256,ES256
   */
  JWT_ALGORITHMS: z
    .string()
    // Empty entries ("HS256,,") are a typo, not a wish: refused rather than skipped.
    .refine((v) => v.split(',').every((a) => a.trim() !== ''), 'a comma list of algorithm names, without empty entries')
    .transform((v) => [...new Set(v.split(',').map((a) => a.trim()))])
    .pipe(z.array(z.enum(JWT_ALGORITHMS, { error: `each must be one of ${JWT_ALGORITHMS.join(', ')}` })).min(1, 'name at least one algorithm'))
    .optional(),
  /** JWT_JWKS_TIMEOUT_MS: how long one fetch of the key set may take. @default 5000 @format ms, 100..60000 */
  JWT_JWKS_TIMEOUT_MS: wholeNumber.pipe(z.number().int().min(100).max(60_000)).default(5000),
  /** JWT_JWKS_COOLDOWN_MS: least time between two fetches of the key set (an unknown `kid` refetches). @default 30000 @format ms */
  JWT_JWKS_COOLDOWN_MS: wholeNumber.pipe(z.number().int().min(0).max(86_400_000)).default(30_000),
  /** JWT_JWKS_CACHE_MAX_AGE_MS: most time a fetched key set is used before it is fetched again. @default 600000 @format ms */
  JWT_JWKS_CACHE_MAX_AGE_MS: wholeNumber.pipe(z.number().int().min(1000).max(86_400_000)).default(600_000),
  /** JWT_ISSUER: required `iss` claim. @default agentry */
  JWT_ISSUER: z.string().min(1).default('agentry'),
  /** JWT_AUDIENCE: required `aud` claim. @default agentry-api */
  JWT_AUDIENCE: z.string().min(1).default('agentry-api'),
  /** JWT_CLOCK_TOLERANCE_S: allowed clock skew for exp/nbf. @default 5 @format seconds, 0..300 */
  JWT_CLOCK_TOLERANCE_S: z
    .string()
    .regex(/^\d{1,3}(\.\d{1,3})?$/, 'expected a number of seconds from 0 to 300')
    .transform(Number)
    .pipe(z.number().min(0).max(300, 'expected a number of seconds from 0 to 300'))
    .default(5),
  /**
   * JWT_MAX_TOKEN_LIFETIME_S: longest lifetime (`exp - iat`) a bearer token may declare; tokens without `exp` or
   * `iat`, or with `iat` in the future, are refused too. @default 86400 @format seconds, 60..2592000 (30 days)
   */
  JWT_MAX_TOKEN_LIFETIME_S: wholeNumber.pipe(z.number().int().min(60).max(2_592_000, 'expected at most 2592000 seconds (30 days)')).default(86_400),
  /** RATE_LIMIT_PER_MINUTE: requests per subject per minute. @default 600 */
  RATE_LIMIT_PER_MINUTE: wholeNumber.pipe(z.number().int().min(1)).default(600),
  /** TENANT_RATE_LIMIT_PER_MINUTE: requests per tenant per minute, every subject of the tenant together. @default 6000 */
  TENANT_RATE_LIMIT_PER_MINUTE: wholeNumber.pipe(z.number().int().min(1)).default(6000),
  /** EVENT_STREAMS_PER_SUBJECT: run event streams (SSE) one caller may hold open on one facade replica; more answer 429. @default 10 */
  EVENT_STREAMS_PER_SUBJECT: wholeNumber.pipe(z.number().int().min(1).max(10_000)).default(10),
  /** EVENT_STREAMS_PER_TENANT: run event streams one tenant may hold open on one facade replica, over all its callers; more answer 429. @default 200 */
  EVENT_STREAMS_PER_TENANT: wholeNumber.pipe(z.number().int().min(1).max(100_000)).default(200),
  /** EVENT_STREAMS_MAX: run event streams one facade replica holds open at once, over all callers; more answer 503. @default 1000 */
  EVENT_STREAMS_MAX: wholeNumber.pipe(z.number().int().min(1).max(100_000)).default(1000),
  /** TENANT_MAX_ACTIVE_RUNS: runs one tenant may have active at once, over all pipelines. @default 1000 */
  TENANT_MAX_ACTIVE_RUNS: wholeNumber.pipe(z.number().int().min(1)).default(1000),
  /** RATE_LIMIT_FAIL_OPEN: serve requests unchecked while Redis is unreachable, instead of answering 503. @default false */
  RATE_LIMIT_FAIL_OPEN: bool.default(false),
  /** IDS_WINDOW_S: window the intrusion detector counts 401/403 answers in, per subject and per address. @default 60 @format seconds */
  IDS_WINDOW_S: wholeNumber.pipe(z.number().int().min(1).max(86_400)).default(60),
  /** IDS_MAX_FAILURES: 401/403 answers within one window that block the subject or address. @default 20 */
  IDS_MAX_FAILURES: wholeNumber.pipe(z.number().int().min(1)).default(20),
  /** IDS_BLOCK_S: how long a block lasts. @default 300 @format seconds */
  IDS_BLOCK_S: wholeNumber.pipe(z.number().int().min(1).max(86_400)).default(300),
  /** IDS_EXEMPT_LOOPBACK: never block loopback client addresses (subjects still are). @default true */
  IDS_EXEMPT_LOOPBACK: bool.default(true),
  /**
   * TRUST_PROXY: the reverse proxies in front of the facade whose `X-Forwarded-For` names the client address that
   * audit events, rate limits and the intrusion detector use. `off`, a hop count (1..10), or a comma-separated list
   * of proxy addresses, CIDR ranges and the names `loopback`, `linklocal`, `uniquelocal`. Off, the client address is
   * the connection's peer and the header is ignored, so callers cannot choose their own address. @default off
   */
  TRUST_PROXY: z
    .string()
    .default('off')
    .transform((v, ctx) => {
      const trust = parseTrustProxy(v);
      if (typeof trust === 'string') {
        ctx.addIssue({ code: 'custom', message: trust });
        return z.NEVER;
      }
      return trust;
    }),
  /** BODY_LIMIT_BYTES: largest accepted request body. @default 262144 @format bytes */
  BODY_LIMIT_BYTES: wholeNumber.pipe(z.number().int().min(1024).max(16 * 1024 * 1024)).default(256 * 1024),
  /** HTTP_HEADERS_TIMEOUT_MS: longest time a client may take to send a request's line and headers (slow senders). @default 20000 @format ms, 1000..300000 */
  HTTP_HEADERS_TIMEOUT_MS: wholeNumber.pipe(z.number().int().min(1000).max(300_000)).default(20_000),
  /**
   * HTTP_REQUEST_TIMEOUT_MS: longest time a client may take to send a whole request, body included; at least
   * HTTP_HEADERS_TIMEOUT_MS. Receiving only: streamed responses (run events) are not cut by it. @default 60000 @format ms, 1000..3600000
   */
  HTTP_REQUEST_TIMEOUT_MS: wholeNumber.pipe(z.number().int().min(1000).max(3_600_000)).default(60_000),
  /** HTTP_KEEP_ALIVE_TIMEOUT_MS: how long an idle keep-alive connection stays open; keep it above a proxy's idle timeout (nginx: 60 s). @default 65000 @format ms, 1000..600000 */
  HTTP_KEEP_ALIVE_TIMEOUT_MS: wholeNumber.pipe(z.number().int().min(1000).max(600_000)).default(65_000),
  /** PIPELINES_DIR: folder of pipeline definitions (YAML or JSON). @default src/pipelines/definitions */
  PIPELINES_DIR: z.string().min(1).default(resolve(ROOT, 'src/pipelines/definitions')),
  /** CLASSIFIER_TRAIN_FILE: labelled CSV (`text,category`) the intent classifier trains from. @default src/demo/train.csv */
  CLASSIFIER_TRAIN_FILE: z.string().min(1).default(resolve(ROOT, 'src/demo/train.csv')),
  /** AGENTRY_STATE_DIR: local state (models, embedded database, dev server file). @default .agentry */
  AGENTRY_STATE_DIR: z.string().min(1).default(resolve(ROOT, '.agentry')),
  /** WORKER_METRICS_HOST: address of the worker's /metrics and /health endpoint. @default 127.0.0.1 */
  WORKER_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  /** WORKER_METRICS_PORT: port of the worker's /metrics and /health endpoint; 0 picks a free one. @default 9464 */
  WORKER_METRICS_PORT: port.default(9464),
  /** STAGE_OUTPUT_INLINE_MAX_BYTES: stage outputs above this travel by reference (claim check in PostgreSQL). @default 262144 @format bytes */
  STAGE_OUTPUT_INLINE_MAX_BYTES: wholeNumber.pipe(z.number().int().min(1024).max(1024 * 1024)).default(256 * 1024),
  /**
   * SHUTDOWN_READY_DELAY_MS: on SIGTERM the facade first answers /ready with 503 for this long while still serving,
   * so load balancers take it out of rotation before it stops accepting connections. @default 0 @format ms
   */
  SHUTDOWN_READY_DELAY_MS: wholeNumber.pipe(z.number().int().min(0).max(120_000)).default(0),
  /**
   * WORKER_MAX_CACHED_WORKFLOWS: runs a worker keeps in memory between their tasks (sticky cache). With the SDK's
   * heap-based default (about 2,300 here) 2,000 parked runs overwhelmed one worker (BENCHMARKS.md, parked runs); an
   * evicted run is replayed from its history when its next task comes. @default 500
   */
  WORKER_MAX_CACHED_WORKFLOWS: wholeNumber.pipe(z.number().int().min(0).max(100_000)).default(500),
  /** WORKER_SHUTDOWN_GRACE_MS: time in-flight activities get to finish on SIGTERM. @default 30000 @format ms */
  WORKER_SHUTDOWN_GRACE_MS: wholeNumber.pipe(z.number().int().min(0)).default(30_000),
  /**
   * WORKER_SDK_METRICS_PORT: port of the Temporal SDK's own Prometheus exporter in the worker (task slots, pollers,
   * schedule-to-start latency), bound on WORKER_METRICS_HOST apart from the process's /metrics; `off` turns it off.
   * @default 9465
   */
  WORKER_SDK_METRICS_PORT: z
    .union([z.literal('off'), wholeNumber.pipe(z.number().int().min(1).max(65535))], { error: 'expected a port from 1 to 65535, or off' })
    .default(9465),
  /** AGENT_HEALTH_INTERVAL_MS: how often the worker runs each agent's health check (gauge agent_health). @default 30000 @format ms */
  AGENT_HEALTH_INTERVAL_MS: wholeNumber.pipe(z.number().int().min(1000).max(3_600_000)).default(30_000),
  /** AGENT_HEALTH_TIMEOUT_MS: longest one agent health check may take before it counts as failed. @default 5000 @format ms */
  AGENT_HEALTH_TIMEOUT_MS: wholeNumber.pipe(z.number().int().min(100).max(600_000)).default(5000),
  /**
   * READY_WORKER_POLL_MAX_AGE_S: the facade's /ready wants a worker that polled the task queue (workflow and activity
   * tasks) within this time. Idle workers renew their long polls about once a minute. @default 120 @format seconds
   */
  READY_WORKER_POLL_MAX_AGE_S: wholeNumber.pipe(z.number().int().min(5).max(3600)).default(120),
  /**
   * READY_REQUIRE_WORKERS: whether /ready fails (503) while no worker polls the task queue. `false` still reports the
   * `workers` check in /ready's body, marked advisory, but keeps the facade in its load balancer's rotation: during a
   * worker outage run reads, audit reads and status stay available, and AgentryNoWorkerUp pages. The Kubernetes
   * manifests set false. @default true
   */
  READY_REQUIRE_WORKERS: bool.default(true),
  /**
   * STATUS_THRESHOLDS: levels of `GET /v1/system/status`, as JSON overriding any of the defaults, e.g.
   * `{"approvalAgeSeconds": {"warning": 3600}}`. Keys: cpuCores, memoryBytes, httpErrorRatio (0..1),
   * runTimeP95Seconds, taskQueueBacklog, approvalAgeSeconds; each `{"warning": n, "critical": n}`.
   * @default warning/critical: cpuCores 0.8/0.95, memoryBytes 768/900 MiB, httpErrorRatio 0.01/0.05,
   * runTimeP95Seconds 900/3600, taskQueueBacklog 100/1000, approvalAgeSeconds 14400/86400
   */
  STATUS_THRESHOLDS: jsonText('{"approvalAgeSeconds": {"warning": 3600}}')
    .pipe(
      z.strictObject(
        Object.fromEntries(
          Object.keys(DEFAULT_STATUS_THRESHOLDS).map((k) => [k, z.strictObject({ warning: z.number().min(0).optional(), critical: z.number().min(0).optional() }).optional()]),
        ) as Record<keyof StatusThresholds, z.ZodOptional<z.ZodObject<{ warning: z.ZodOptional<z.ZodNumber>; critical: z.ZodOptional<z.ZodNumber> }>>>,
        { error: `expected an object with some of the keys ${Object.keys(DEFAULT_STATUS_THRESHOLDS).join(', ')}, each {"warning": n, "critical": n}` },
      ),
    )
    .transform((given) => {
      const merged = { ...DEFAULT_STATUS_THRESHOLDS };
      for (const key of Object.keys(merged) as (keyof StatusThresholds)[]) merged[key] = { ...merged[key], ...given[key] };
      return merged;
    })
    .superRefine((merged, ctx) => {
      for (const [key, { warning, critical }] of Object.entries(merged)) {
        if (warning > critical) ctx.addIssue({ code: 'custom', path: [key], message: `${key}: warning (${warning}) is above critical (${critical})` });
      }
    })
    .default(DEFAULT_STATUS_THRESHOLDS),
  /**
   * PAYLOAD_KEYS: AES-256-GCM keys for everything stored in Temporal, as comma-separated `id:base64` entries, each key
   * 32 random bytes (`openssl rand -base64 32`). The first encrypts; all of them decrypt, so rotation is: put the new
   * key first and keep the old ones while stored histories need them. Required when NODE_ENV=production; elsewhere,
   * when unset, the state directory's `payload-keys` file is used (generated on first start).
   */
  PAYLOAD_KEYS: z
    .string()
    .transform((v, ctx) => {
      try {
        return parseKeyRing(v);
      } catch (err) {
        // KeyRingError messages name key ids, never key material.
        ctx.addIssue({ code: 'custom', message: err instanceof KeyRingError ? err.message : 'is not a valid key ring' });
        return z.NEVER;
      }
    })
    .optional(),
  /** PAYLOAD_ENCRYPTION: encrypt new payloads. When off they are stored in plaintext; encrypted ones still decrypt. @default true */
  PAYLOAD_ENCRYPTION: bool.default(true),
  /**
   * CODEC_CORS_ORIGINS: comma list of origins (the Temporal Web UI) whose browsers may call the facade's /codec
   * endpoints. @default http://127.0.0.1:8233,http://localhost:8233
   */
  CODEC_CORS_ORIGINS: z
    .string()
    .transform((v) => [...new Set(v.split(',').map((o) => o.trim()).filter((o) => o !== ''))])
    .pipe(z.array(z.string().refine(isOrigin, 'each must be an origin such as http://127.0.0.1:8233 (no path, no *)')).min(1, 'name at least one origin'))
    .default(['http://127.0.0.1:8233', 'http://localhost:8233']),
  /**
   * AUDIT_SEAL_KEYS: AES-256-GCM keys that seal the sensitive fields of audit events (`ip`, `userAgent`, `comment`,
   * `reason`), as comma-separated `id:base64` entries of 32 random bytes each; the first seals, all of them open.
   * Required when NODE_ENV=production; elsewhere, when unset, the state directory's `audit-seal-keys` file is used
   * (generated on first start).
   */
  AUDIT_SEAL_KEYS: z
    .string()
    .transform((v, ctx) => {
      try {
        return parseKeyRing(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: err instanceof KeyRingError ? err.message : 'is not a valid key ring' });
        return z.NEVER;
      }
    })
    .optional(),
  /** BACKUP_DIR: folder that holds the backups, one sub-folder each. @default {AGENTRY_STATE_DIR}/backups */
  BACKUP_DIR: z.string().min(1).optional(),
  /** BACKUP_KEEP: how many backups to keep; older ones are deleted after each new one. @default 7 */
  BACKUP_KEEP: wholeNumber.pipe(z.number().int().min(1).max(10_000)).default(7),
  /**
   * BACKUP_SCHEDULE: cron expression (5 fields, or @daily/@hourly/...) of the Temporal Schedule the worker
   * registers for backups, in UTC; `off` leaves the schedule alone. @default 0 3 * * * (daily at 03:00 UTC)
   */
  BACKUP_SCHEDULE: z
    .string()
    .trim()
    .refine(
      (v) => v === 'off' || /^@(yearly|annually|monthly|weekly|daily|midnight|hourly)$/.test(v) || /^[\w*/,?#-]+(\s+[\w*/,?#-]+){4}$/.test(v),
      'expected a cron expression with 5 fields (e.g. "0 3 * * *"), an @daily-style shorthand, or off',
    )
    .default('0 3 * * *'),
  /** TEMPORAL_CLI_PATH: a `temporal` binary to use instead of searching PATH and `.tools/`. */
  TEMPORAL_CLI_PATH: z.string().min(1).optional(),
  /** AGENTRY_EXIT_WITH_PARENT: stop when the parent process goes away (set by `agentry demo` for its children). @default false */
  AGENTRY_EXIT_WITH_PARENT: bool.optional(),
  /** AGENTRY_DEV_TOKENS: allow `agentry token` to mint HS256 tokens. @default true outside production */
  AGENTRY_DEV_TOKENS: bool.optional(),
  /**
   * LLM_BASE_URL: OpenAI-compatible Chat Completions API of the `llm` agent, up to and including `/v1`
   * (e.g. `https://api.openai.com/v1`). Unset: the embedded local model, served on loopback (the demo starts it;
   * a worker without it starts its own on first use).
   */
  LLM_BASE_URL: z
    .string()
    .url('expected a URL')
    .refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol), 'expected an http:// or https:// URL')
    .optional(),
  /** LLM_MODEL: model name sent to the provider. @default SmolLM2-135M-Instruct (the embedded model) */
  LLM_MODEL: z.string().min(1).max(200).default('SmolLM2-135M-Instruct'),
  /** LLM_API_KEY: bearer key for the provider. Prefer LLM_API_KEY_FILE, which keeps it out of the environment. */
  LLM_API_KEY: z.string().min(1).optional(),
  /** LLM_API_KEY_FILE: file holding the provider's API key (a mounted secret), read at start-up; wins over LLM_API_KEY. */
  LLM_API_KEY_FILE: z.string().min(1).optional(),
  /** LLM_TIMEOUT_MS: longest one HTTP call to the provider may take, queueing at the local server included. @default 120000 @format ms */
  LLM_TIMEOUT_MS: wholeNumber.pipe(z.number().int().min(1000).max(3_600_000)).default(120_000),
  /** LLM_MAX_RETRIES: retries of one call on 429, 5xx or a network error, before the stage's own retry policy takes over. @default 2 */
  LLM_MAX_RETRIES: wholeNumber.pipe(z.number().int().min(0).max(10)).default(2),
  /** LLM_RETRY_AFTER_MAX_MS: longest Retry-After waited out in process; a longer one fails the attempt (retryable). @default 30000 @format ms */
  LLM_RETRY_AFTER_MAX_MS: wholeNumber.pipe(z.number().int().min(0).max(600_000)).default(30_000),
  /** LLM_DEFAULT_MAX_TOKENS: completion limit of a stage that sets no `maxTokens`. @default 256 @format tokens */
  LLM_DEFAULT_MAX_TOKENS: wholeNumber.pipe(z.number().int().min(1).max(32_768)).default(256),
  /**
   * LLM_PRICES: USD per 1,000 tokens by model, as JSON: `{"gpt-4o-mini": {"input": 0.00015, "output": 0.0006}}`.
   * Models not listed cost 0 (the embedded model). @default {}
   */
  LLM_PRICES: jsonText('{"model": {"input": 0.00015, "output": 0.0006}}')
    .pipe(z.record(z.string().min(1), z.strictObject({ input: z.number().min(0), output: z.number().min(0) }), { error: 'expected {"model": {"input": USD per 1k tokens, "output": USD per 1k tokens}}' }))
    .default({}),
  /** LLM_BUDGET_PER_RUN_TOKENS: most tokens (prompt and completion) the `llm` stages of one run may use. @default 20000 @format tokens */
  LLM_BUDGET_PER_RUN_TOKENS: wholeNumber.pipe(z.number().int().min(1)).default(20_000),
  /** LLM_BUDGET_PER_TENANT_DAY_TOKENS: most tokens one tenant's runs may use per UTC day. @default 2000000 @format tokens */
  LLM_BUDGET_PER_TENANT_DAY_TOKENS: wholeNumber.pipe(z.number().int().min(1)).default(2_000_000),
  /** LLM_BUDGET_PER_TENANT_DAY_COST: most USD one tenant's runs may spend per UTC day (priced by LLM_PRICES); unset: no cost budget. @format USD */
  LLM_BUDGET_PER_TENANT_DAY_COST: z.string().regex(/^\d{1,12}(\.\d{1,9})?$/, 'expected an amount in USD such as 25 or 0.50').transform(Number).optional(),
  /** LLM_LOCAL_MODEL_PATH: GGUF file of the embedded model. @default the SmolLM2-135M-Instruct copy `npm run setup` puts in .tools/models/ */
  LLM_LOCAL_MODEL_PATH: z.string().min(1).optional(),
  /** LLM_LOCAL_HOST: loopback address `agentry llm serve` binds; the local server has no authentication. @default 127.0.0.1 */
  LLM_LOCAL_HOST: z.enum(['127.0.0.1', '::1', 'localhost'], { error: 'the local model is served on loopback only: 127.0.0.1, ::1 or localhost' }).default('127.0.0.1'),
  /** LLM_LOCAL_PORT: port of `agentry llm serve`; 0 picks a free one. @default 8088 */
  LLM_LOCAL_PORT: port.default(8088),
  /** LLM_LOCAL_THREADS: CPU threads per generation. More than idle cores is slower, not faster. @default 1 */
  LLM_LOCAL_THREADS: wholeNumber.pipe(z.number().int().min(1).max(64)).default(1),
  /** LLM_LOCAL_PARALLEL: requests the local model generates at once; more wait in line. @default 2 */
  LLM_LOCAL_PARALLEL: wholeNumber.pipe(z.number().int().min(1).max(16)).default(2),
  /** LLM_LOCAL_CONTEXT_SIZE: context window per request of the local model, prompt and completion together. @default 2048 @format tokens */
  LLM_LOCAL_CONTEXT_SIZE: wholeNumber.pipe(z.number().int().min(256).max(32_768)).default(2048),
});

export type Config = z.infer<typeof schema> & { stateDir: string; modelCacheDir: string; backupDir: string };

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: readonly { key: string; message: string }[]) {
    super(`invalid configuration: ${problems.map((p) => `${p.key}: ${p.message}`).join('; ')}`);
  }
}

/** Parses the environment once. Throws `ConfigError` naming every bad key; never echoes secret values. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const relevant: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') relevant[key] = value;
  }
  const parsed = schema.safeParse(relevant);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => ({ key: String(i.path[0] ?? '?'), message: i.message })));
  }
  const cfg = parsed.data;
  // Node refuses to create a server whose header timeout exceeds its request timeout.
  if (cfg.HTTP_HEADERS_TIMEOUT_MS > cfg.HTTP_REQUEST_TIMEOUT_MS) {
    throw new ConfigError([{ key: 'HTTP_HEADERS_TIMEOUT_MS', message: `must not exceed HTTP_REQUEST_TIMEOUT_MS (${cfg.HTTP_REQUEST_TIMEOUT_MS})` }]);
  }
  const stateDir = resolve(cfg.AGENTRY_STATE_DIR);
  return { ...cfg, stateDir, modelCacheDir: resolve(stateDir, 'models'), backupDir: resolve(cfg.BACKUP_DIR ?? resolve(stateDir, 'backups')) };
}

/** Requires keys that a given process cannot run without, naming them all at once. */
export function requireKeys<K extends keyof Config>(cfg: Config, keys: readonly K[]): Config & Required<Pick<Config, K>> {
  const missing = keys.filter((k) => cfg[k] === undefined);
  if (missing.length > 0) {
    throw new ConfigError(missing.map((k) => ({ key: String(k), message: 'required' })));
  }
  return cfg as Config & Required<Pick<Config, K>>;
}

/**
 * Refuses to start a process that reads or writes Temporal payloads (facade, worker) in production without
 * PAYLOAD_KEYS: a generated development key would make every stored payload unreadable to the other processes.
 */
export function requirePayloadKeys<C extends Config>(cfg: C): C {
  if (cfg.NODE_ENV === 'production' && cfg.PAYLOAD_ENCRYPTION && cfg.PAYLOAD_KEYS === undefined) {
    throw new ConfigError([{ key: 'PAYLOAD_KEYS', message: 'required when NODE_ENV=production (or set PAYLOAD_ENCRYPTION=false)' }]);
  }
  return cfg;
}
