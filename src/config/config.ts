import { resolve } from 'node:path';
import { z } from 'zod';

const ROOT = resolve(__dirname, '..', '..');

const port = z.coerce.number().int().min(0).max(65535);
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** JWS algorithms the facade can be configured to accept. `none` is deliberately absent. */
export const JWT_ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

// Strict decimal text: z.coerce.number() would take " " as 0, "0x1f" as 31 and "1e2" as 100.
const wholeNumber = z.string().regex(/^\d{1,15}$/, 'expected a whole number').transform(Number);
const decimalNumber = z.string().regex(/^\d{1,15}(\.\d{1,9})?$/, 'expected a non-negative decimal number').transform(Number);
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Every setting the processes read, parsed once at start-up. Each key names its environment variable, default
 * and unit. Nothing else in the code reads `process.env`. Never log the parsed object: it holds secrets.
 */
const schema = z.object({
  /** NODE_ENV. `production` refuses development conveniences such as minting tokens. @default development */
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  /** LOG_LEVEL: pino level. @default info */
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** HOST: address the facade binds. @default 127.0.0.1 */
  HOST: z.string().min(1).default('127.0.0.1'),
  /** PORT: facade HTTP port; 0 picks a free one. @default 3000 */
  PORT: port.default(3000),
  /** TEMPORAL_ADDRESS: host:port of the Temporal frontend. @default 127.0.0.1:7233 */
  TEMPORAL_ADDRESS: z.string().regex(/^[^:\s]+:\d+$/, 'expected host:port').default('127.0.0.1:7233'),
  /** TEMPORAL_NAMESPACE. @default default */
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  /** TEMPORAL_TASK_QUEUE: the queue the default worker polls. @default agentry-agents */
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('agentry-agents'),
  /** TEMPORAL_UI_URL: base address of the Temporal Web UI, used to print links to runs. @default http://127.0.0.1:8233 */
  TEMPORAL_UI_URL: z.string().url().default('http://127.0.0.1:8233'),
  /** DATABASE_URL: PostgreSQL for the audit trail (required by the facade and the worker). */
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'expected a postgres:// URL').optional(),
  /** DATABASE_POOL_MAX: connections per process. @default 10 */
  DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),
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
      const url = new URL(u);
      return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname));
    }, 'must be an https:// URL (http:// is accepted for localhost only)')
    .optional(),
  /**
   * JWT_ALGORITHMS: comma list of accepted JWS algorithms; HS* needs JWT_SECRET, RS/PS/ES* JWT_PUBLIC_KEY or JWT_JWKS_URL.
   * @default HS256 with JWT_SECRET, else RS256,ES256
   */
  JWT_ALGORITHMS: z
    .string()
    .transform((v) => [...new Set(v.split(',').map((a) => a.trim()).filter((a) => a !== ''))])
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
  JWT_CLOCK_TOLERANCE_S: decimalNumber.pipe(z.number().min(0).max(300)).default(5),
  /** RATE_LIMIT_PER_MINUTE: requests per subject per minute. @default 600 */
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(600),
  /** BODY_LIMIT_BYTES: largest accepted request body. @default 262144 @format bytes */
  BODY_LIMIT_BYTES: z.coerce.number().int().min(1024).max(16 * 1024 * 1024).default(256 * 1024),
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
  STAGE_OUTPUT_INLINE_MAX_BYTES: z.coerce.number().int().min(1024).max(1024 * 1024).default(256 * 1024),
  /** WORKER_SHUTDOWN_GRACE_MS: time in-flight activities get to finish on SIGTERM. @default 30000 @format ms */
  WORKER_SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(30_000),
  /** TEMPORAL_CLI_PATH: a `temporal` binary to use instead of searching PATH and `.tools/`. */
  TEMPORAL_CLI_PATH: z.string().min(1).optional(),
  /** AGENTRY_DEV_TOKENS: allow `agentry token` to mint HS256 tokens. @default true outside production */
  AGENTRY_DEV_TOKENS: bool.optional(),
});

export type Config = z.infer<typeof schema> & { stateDir: string; modelCacheDir: string };

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
  const stateDir = resolve(cfg.AGENTRY_STATE_DIR);
  return { ...cfg, stateDir, modelCacheDir: resolve(stateDir, 'models') };
}

/** Requires keys that a given process cannot run without, naming them all at once. */
export function requireKeys<K extends keyof Config>(cfg: Config, keys: readonly K[]): Config & Required<Pick<Config, K>> {
  const missing = keys.filter((k) => cfg[k] === undefined);
  if (missing.length > 0) {
    throw new ConfigError(missing.map((k) => ({ key: String(k), message: 'required' })));
  }
  return cfg as Config & Required<Pick<Config, K>>;
}
