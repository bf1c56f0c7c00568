import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  createRemoteJWKSet,
  errors as joseErrors,
  importSPKI,
  type CryptoKey,
  type JWTHeaderParameters,
  type JWTVerifyGetKey,
} from 'jose';
import { ConfigError, type Config, type JwtAlgorithm } from '../config';

/** The configuration key that supplies the verification key. */
export type KeySource = 'JWT_SECRET' | 'JWT_PUBLIC_KEY' | 'JWT_JWKS_URL';

export type IdentityConfig = Pick<
  Config,
  | 'JWT_SECRET'
  | 'JWT_PUBLIC_KEY'
  | 'JWT_JWKS_URL'
  | 'JWT_ALGORITHMS'
  | 'JWT_JWKS_TIMEOUT_MS'
  | 'JWT_JWKS_COOLDOWN_MS'
  | 'JWT_JWKS_CACHE_MAX_AGE_MS'
>;

export interface VerificationPlan {
  source: KeySource;
  algorithms: JwtAlgorithm[];
  /** True when JWT_ALGORITHMS was set: every algorithm named must then be usable with the key. */
  explicit: boolean;
}

/** What verifies bearer tokens. Safe to log: `describe` never includes key material. */
export interface VerificationKey {
  source: KeySource;
  /** Accepted JWS algorithms, pinned: a token whose header names another one is refused before any key is used. */
  algorithms: JwtAlgorithm[];
  key: Uint8Array | JWTVerifyGetKey;
  /** For logs: which kind of key verifies tokens, e.g. `rsa 2048`, `ec P-256`, `hmac`, `jwks`. */
  keyType: string;
  /** Fetches the key set once (JWKS only) so a wrong URL shows in the start-up log; requests never wait for it. */
  warmUp(): Promise<void>;
}

/** The identity provider's key set could not be fetched or read: the caller is not at fault (503, not 401). */
export class KeySetUnavailableError extends Error {
  override readonly name = 'KeySetUnavailableError';
  constructor(readonly reason: string) {
    super(`the token signing keys could not be fetched: ${reason}`);
  }
}

const SOURCES: readonly KeySource[] = ['JWT_SECRET', 'JWT_PUBLIC_KEY', 'JWT_JWKS_URL'];
const ANY_SOURCE = 'JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL';
const isHmac = (alg: JwtAlgorithm) => alg.startsWith('HS');
/** RFC 7518 §3.2: an HMAC key at least as long as the hash output. */
const HMAC_MIN_BYTES: Record<string, number> = { HS256: 32, HS384: 48, HS512: 64 };

/**
 * Decides, without I/O, which key verifies tokens and with which algorithms. Exactly one key source may be set,
 * and the algorithms must fit it: HS* only with JWT_SECRET, RS/PS/ES* only with JWT_PUBLIC_KEY or JWT_JWKS_URL.
 * Keeping the families apart is what makes HS/RS key confusion impossible. Throws `ConfigError` naming the key.
 */
export function planVerification(cfg: Pick<IdentityConfig, 'JWT_SECRET' | 'JWT_PUBLIC_KEY' | 'JWT_JWKS_URL' | 'JWT_ALGORITHMS'>): VerificationPlan {
  const set = SOURCES.filter((k) => cfg[k] !== undefined);
  if (set.length === 0) {
    throw new ConfigError([
      {
        key: ANY_SOURCE,
        message: 'none is set, so bearer tokens cannot be verified; set JWT_PUBLIC_KEY or JWT_JWKS_URL (JWT_SECRET for development)',
      },
    ]);
  }
  if (set.length > 1) {
    throw new ConfigError([{ key: set.join(', '), message: 'set only one verification key source' }]);
  }
  const source = set[0];
  if (source === 'JWT_SECRET' && cfg.JWT_SECRET!.includes('-----BEGIN')) {
    // A PEM used as an HMAC secret is the classic key-confusion setup: anyone holding the public key can sign.
    throw new ConfigError([{ key: 'JWT_SECRET', message: 'holds a PEM key; set a public key as JWT_PUBLIC_KEY instead' }]);
  }
  const explicit = cfg.JWT_ALGORITHMS !== undefined;
  const algorithms: JwtAlgorithm[] = cfg.JWT_ALGORITHMS ?? (source === 'JWT_SECRET' ? ['HS256'] : ['RS256', 'ES256']);
  if (source === 'JWT_SECRET') {
    const asymmetric = algorithms.filter((a) => !isHmac(a));
    if (asymmetric.length > 0) {
      throw new ConfigError([
        { key: 'JWT_ALGORITHMS', message: `${asymmetric.join(', ')} need JWT_PUBLIC_KEY or JWT_JWKS_URL; JWT_SECRET verifies HS256, HS384 and HS512 only` },
      ]);
    }
    const secretBytes = Buffer.byteLength(cfg.JWT_SECRET!, 'utf8');
    const tooShort = algorithms.filter((a) => secretBytes < HMAC_MIN_BYTES[a]);
    if (tooShort.length > 0) {
      throw new ConfigError([{ key: 'JWT_SECRET', message: `is too short for ${tooShort.join(', ')} (needs ${HMAC_MIN_BYTES[tooShort.at(-1)!]} bytes)` }]);
    }
  } else {
    const hmac = algorithms.filter(isHmac);
    if (hmac.length > 0) {
      throw new ConfigError([
        { key: 'JWT_ALGORITHMS', message: `${hmac.join(', ')} need JWT_SECRET; ${source} verifies RS*, PS* and ES* algorithms only` },
      ]);
    }
  }
  return { source, algorithms, explicit };
}

/** The algorithms an asymmetric public key can verify, by key type (and curve for EC). */
export function algorithmsForKey(key: KeyObject): JwtAlgorithm[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
    case 'rsa-pss':
      return ['PS256', 'PS384', 'PS512'];
    case 'ec':
      switch (key.asymmetricKeyDetails?.namedCurve) {
        case 'prime256v1':
          return ['ES256'];
        case 'secp384r1':
          return ['ES384'];
        case 'secp521r1':
          return ['ES512'];
        default:
          return [];
      }
    default:
      return [];
  }
}

function describeKey(key: KeyObject): string {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec') return `ec ${d?.namedCurve === 'prime256v1' ? 'P-256' : d?.namedCurve === 'secp384r1' ? 'P-384' : d?.namedCurve === 'secp521r1' ? 'P-521' : d?.namedCurve}`;
  return `${key.asymmetricKeyType}${d?.modulusLength ? ` ${d.modulusLength}` : ''}`;
}

/** JWT_PUBLIC_KEY is PEM text when it holds a PEM header, otherwise the path of a file holding one. */
async function readPem(value: string): Promise<string> {
  if (value.includes('-----BEGIN')) return value.replace(/\\n/g, '\n');
  try {
    return await readFile(value, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    const where = value.length <= 256 && !/[\r\n]/.test(value) ? ` "${value}"` : '';
    throw new ConfigError([{ key: 'JWT_PUBLIC_KEY', message: `is neither PEM text nor a readable PEM file (${code} reading the file${where})` }]);
  }
}

/**
 * Imports a PEM public key for each algorithm it may verify. With JWT_ALGORITHMS set, every algorithm named must
 * fit the key; by default (RS256,ES256) the list narrows to the one the key fits. Refuses private keys, RSA keys
 * under 2048 bits and key types no JWS algorithm here can use.
 */
export async function importPublicKey(pemValue: string, plan: VerificationPlan): Promise<VerificationKey> {
  const pem = await readPem(pemValue);
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new ConfigError([{ key: 'JWT_PUBLIC_KEY', message: 'holds a private key; give the facade the public key only' }]);
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(pem);
  } catch {
    throw new ConfigError([{ key: 'JWT_PUBLIC_KEY', message: 'is not a PEM public key or certificate' }]);
  }
  const keyType = describeKey(publicKey);
  const fits = algorithmsForKey(publicKey);
  if (fits.length === 0) {
    throw new ConfigError([{ key: 'JWT_PUBLIC_KEY', message: `holds an ${keyType} key; use an RSA key or an EC P-256, P-384 or P-521 key` }]);
  }
  const modulus = publicKey.asymmetricKeyDetails?.modulusLength;
  if (modulus !== undefined && modulus < 2048) {
    throw new ConfigError([{ key: 'JWT_PUBLIC_KEY', message: `holds a ${modulus}-bit RSA key; at least 2048 bits are required` }]);
  }
  const unfit = plan.algorithms.filter((a) => !fits.includes(a));
  if (plan.explicit && unfit.length > 0) {
    throw new ConfigError([
      { key: 'JWT_ALGORITHMS', message: `${unfit.join(', ')} cannot be verified with the ${keyType} key in JWT_PUBLIC_KEY (it fits ${fits.join(', ')})` },
    ]);
  }
  const algorithms = plan.algorithms.filter((a) => fits.includes(a));
  if (algorithms.length === 0) {
    throw new ConfigError([
      { key: 'JWT_PUBLIC_KEY', message: `holds an ${keyType} key, which fits none of ${plan.algorithms.join(', ')}; set JWT_ALGORITHMS to one of ${fits.join(', ')}` },
    ]);
  }
  const spki = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  // WebCrypto keys are bound to one algorithm: import one per accepted algorithm and pick by the (pinned) header.
  const keys = new Map<string, CryptoKey>();
  for (const alg of algorithms) keys.set(alg, await importSPKI(spki, alg));
  const key: JWTVerifyGetKey = async (header: JWTHeaderParameters) => {
    const k = keys.get(header.alg);
    if (!k) throw new joseErrors.JOSEAlgNotAllowed('"alg" (Algorithm) Header Parameter value not allowed');
    return k;
  };
  return { source: 'JWT_PUBLIC_KEY', algorithms, key, keyType, warmUp: async () => undefined };
}

/**
 * A remote key set (jose `createRemoteJWKSet`): fetched on first use, refetched when a token names an unknown
 * `kid` (at most once per cooldown) and when older than the cache age. Failures to fetch become
 * `KeySetUnavailableError` so the caller gets 503, not 401.
 */
export function remoteKeySet(cfg: Pick<IdentityConfig, 'JWT_JWKS_URL' | 'JWT_JWKS_TIMEOUT_MS' | 'JWT_JWKS_COOLDOWN_MS' | 'JWT_JWKS_CACHE_MAX_AGE_MS'>, plan: VerificationPlan): VerificationKey {
  const jwks = createRemoteJWKSet(new URL(cfg.JWT_JWKS_URL!), {
    timeoutDuration: cfg.JWT_JWKS_TIMEOUT_MS,
    cooldownDuration: cfg.JWT_JWKS_COOLDOWN_MS,
    cacheMaxAge: cfg.JWT_JWKS_CACHE_MAX_AGE_MS,
  });
  const unavailable = (err: unknown) =>
    new KeySetUnavailableError(err instanceof joseErrors.JWKSTimeout ? 'timed out' : err instanceof Error ? err.message : String(err));
  const key: JWTVerifyGetKey = async (header, token) => {
    try {
      return await jwks(header, token);
    } catch (err) {
      // No (or several) matching keys, or an unusable algorithm, is the token's problem; anything else is the set's.
      if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys || err instanceof joseErrors.JOSENotSupported) throw err;
      throw unavailable(err);
    }
  };
  return {
    source: 'JWT_JWKS_URL',
    algorithms: plan.algorithms,
    key,
    keyType: 'jwks',
    warmUp: async () => {
      try {
        await jwks.reload();
      } catch (err) {
        throw unavailable(err);
      }
    },
  };
}

/** An HMAC secret (development). The algorithms must be HS*; `planVerification` enforces that for configuration. */
export function secretKey(secret: string, algorithms: JwtAlgorithm[] = ['HS256']): VerificationKey {
  if (algorithms.some((a) => !isHmac(a))) throw new Error('a secret verifies HS256, HS384 and HS512 only');
  return { source: 'JWT_SECRET', algorithms, key: new TextEncoder().encode(secret), keyType: 'hmac', warmUp: async () => undefined };
}

/**
 * Builds the facade's verification key from configuration at start-up: refuses (ConfigError naming the key) when
 * no source, several sources, or an algorithm that does not fit the key is configured.
 */
export async function loadVerificationKey(cfg: IdentityConfig): Promise<VerificationKey> {
  const plan = planVerification(cfg);
  switch (plan.source) {
    case 'JWT_SECRET':
      return secretKey(cfg.JWT_SECRET!, plan.algorithms);
    case 'JWT_PUBLIC_KEY':
      return importPublicKey(cfg.JWT_PUBLIC_KEY!, plan);
    case 'JWT_JWKS_URL':
      return remoteKeySet(cfg, plan);
  }
}
