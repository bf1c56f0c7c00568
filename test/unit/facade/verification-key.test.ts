import { generateKeyPairSync } from 'node:crypto';
import { ConfigError, type JwtAlgorithm } from '../../../src/config';
import { importPublicKey, planVerification, secretKey, type VerificationPlan } from '../../../src/facade/verification-key';

const SECRET = 's'.repeat(40);
const spki = (key: { export(o: { type: 'spki'; format: 'pem' }): string | Buffer }) => key.export({ type: 'spki', format: 'pem' }).toString();
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ec384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

async function configErrorAsync(p: Promise<unknown>): Promise<ConfigError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err instanceof ConfigError) return err;
  throw new Error(`expected a ConfigError, got ${String(err)}`);
}

const plan = (algorithms: JwtAlgorithm[], explicit = true): VerificationPlan => ({ source: 'JWT_PUBLIC_KEY', algorithms, explicit });

describe('planVerification', () => {
  test('refuses when no key is configured, naming all three keys', () => {
    const err = configError(() => planVerification({}));
    expect(err.message).toContain('JWT_SECRET');
    expect(err.message).toContain('JWT_PUBLIC_KEY');
    expect(err.message).toContain('JWT_JWKS_URL');
  });

  test('refuses more than one key source', () => {
    const err = configError(() => planVerification({ JWT_SECRET: SECRET, JWT_JWKS_URL: 'https://idp.example/jwks' }));
    expect(err.problems[0].key).toBe('JWT_SECRET, JWT_JWKS_URL');
  });

  test('defaults to HS256 with a secret and RS256,ES256 with a public key or JWKS', () => {
    expect(planVerification({ JWT_SECRET: SECRET })).toEqual({ source: 'JWT_SECRET', algorithms: ['HS256'], explicit: false });
    expect(planVerification({ JWT_PUBLIC_KEY: 'x.pem' }).algorithms).toEqual(['RS256', 'ES256']);
    expect(planVerification({ JWT_JWKS_URL: 'https://idp.example/jwks' })).toEqual({ source: 'JWT_JWKS_URL', algorithms: ['RS256', 'ES256'], explicit: false });
  });

  test('refuses HS algorithms with a public key or JWKS, naming JWT_ALGORITHMS', () => {
    for (const source of [{ JWT_PUBLIC_KEY: 'x.pem' }, { JWT_JWKS_URL: 'https://idp.example/jwks' }]) {
      const err = configError(() => planVerification({ ...source, JWT_ALGORITHMS: ['RS256', 'HS256'] }));
      expect(err.problems).toEqual([{ key: 'JWT_ALGORITHMS', message: expect.stringContaining('HS256 need JWT_SECRET') }]);
    }
  });

  test('refuses asymmetric algorithms with a secret', () => {
    const err = configError(() => planVerification({ JWT_SECRET: SECRET, JWT_ALGORITHMS: ['RS256'] }));
    expect(err.problems).toEqual([{ key: 'JWT_ALGORITHMS', message: expect.stringContaining('RS256 need JWT_PUBLIC_KEY or JWT_JWKS_URL') }]);
  });

  test('refuses a PEM key used as the HMAC secret (the key-confusion setup)', () => {
    const err = configError(() => planVerification({ JWT_SECRET: spki(rsa.publicKey) }));
    expect(err.problems[0].key).toBe('JWT_SECRET');
    expect(err.message).not.toContain('BEGIN PUBLIC KEY');
  });

  test('refuses a secret shorter than the HMAC output for HS384 and HS512', () => {
    expect(configError(() => planVerification({ JWT_SECRET: SECRET, JWT_ALGORITHMS: ['HS512'] })).message).toContain('JWT_SECRET: is too short for HS512');
    expect(planVerification({ JWT_SECRET: 'k'.repeat(64), JWT_ALGORITHMS: ['HS256', 'HS512'] }).algorithms).toEqual(['HS256', 'HS512']);
  });

  test('never echoes the secret', () => {
    const secret = `${'q'.repeat(20)}-----BEGIN-${'z'.repeat(20)}`;
    expect(configError(() => planVerification({ JWT_SECRET: secret })).message).not.toContain(secret);
  });
});

describe('importPublicKey', () => {
  test('narrows the default algorithms to the one an RSA or EC key fits', async () => {
    expect((await importPublicKey(spki(rsa.publicKey), plan(['RS256', 'ES256'], false))).algorithms).toEqual(['RS256']);
    const ec = await importPublicKey(spki(ec256.publicKey), plan(['RS256', 'ES256'], false));
    expect(ec).toMatchObject({ source: 'JWT_PUBLIC_KEY', algorithms: ['ES256'], keyType: 'ec P-256' });
  });

  test('accepts RS and PS algorithms together for one RSA key', async () => {
    const key = await importPublicKey(spki(rsa.publicKey), plan(['RS256', 'PS256']));
    expect(key.algorithms).toEqual(['RS256', 'PS256']);
    expect(key.keyType).toBe('rsa 2048');
  });

  test('refuses an explicitly configured algorithm the key does not fit, naming both keys', async () => {
    const rsaWithEs = await configErrorAsync(importPublicKey(spki(rsa.publicKey), plan(['RS256', 'ES256'])));
    expect(rsaWithEs.problems[0].key).toBe('JWT_ALGORITHMS');
    expect(rsaWithEs.message).toMatch(/ES256 cannot be verified with the rsa 2048 key in JWT_PUBLIC_KEY/);
    const wrongCurve = await configErrorAsync(importPublicKey(spki(ec384.publicKey), plan(['ES256'])));
    expect(wrongCurve.message).toContain('ES256 cannot be verified with the ec P-384 key');
  });

  test('refuses a default list the key fits none of', async () => {
    const err = await configErrorAsync(importPublicKey(spki(ec384.publicKey), plan(['RS256', 'ES256'], false)));
    expect(err.problems[0]).toEqual({ key: 'JWT_PUBLIC_KEY', message: expect.stringContaining('set JWT_ALGORITHMS to one of ES384') });
  });

  test('refuses private keys, short RSA keys, unsupported key types and garbage', async () => {
    const priv = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect((await configErrorAsync(importPublicKey(priv, plan(['RS256'])))).message).toContain('JWT_PUBLIC_KEY: holds a private key');
    const short = generateKeyPairSync('rsa', { modulusLength: 1024 });
    expect((await configErrorAsync(importPublicKey(spki(short.publicKey), plan(['RS256'])))).message).toContain('1024-bit RSA key');
    const ed = generateKeyPairSync('ed25519');
    expect((await configErrorAsync(importPublicKey(spki(ed.publicKey), plan(['RS256'])))).message).toContain('holds an ed25519 key');
    const garbage = '-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n';
    expect((await configErrorAsync(importPublicKey(garbage, plan(['RS256'])))).message).toContain('JWT_PUBLIC_KEY: is not a PEM public key');
  });

  test('accepts PEM text with escaped newlines, as environment files often hold it', async () => {
    const escaped = spki(rsa.publicKey).replace(/\n/g, '\\n');
    expect((await importPublicKey(escaped, plan(['RS256']))).algorithms).toEqual(['RS256']);
  });

  test('accepts an X.509 certificate and uses its public key', async () => {
    // Self-signed P-256 certificate (public material only), made with openssl for this test.
    const cert = [
      '-----BEGIN CERTIFICATE-----',
      'MIIBgjCCASmgAwIBAgIUI34wdPx945/VjFqqL9QFBE+qDEAwCgYIKoZIzj0EAwIw',
      'FzEVMBMGA1UEAwwMYWdlbnRyeS10ZXN0MB4XDTI2MTIwMzE0MTAxNVoXDTM2MTEz',
      'MDE0MTAxNVowFzEVMBMGA1UEAwwMYWdlbnRyeS10ZXN0MFkwEwYHKoZIzj0CAQYI',
      'KoZIzj0DAQcDQgAE4kjsOAQczvftIb2jaFpN9+IY8i4nIaVSsua9U7rBxijLpHkX',
      '6AsEXY49eNNsFl0Dkdrk5CjGoQ87Ht9OElYHn6NTMFEwHQYDVR0OBBYEFFBXFW/0',
      'AzMo0FNBbFVo+DKFyV/mMB8GA1UdIwQYMBaAFFBXFW/0AzMo0FNBbFVo+DKFyV/m',
      'MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgVmoIfVYA5lbAcZUc',
      'aKAPmwMKXN7dEGPJtp3EAOCpqH8CIHFCrVRNA8Ng8ChhRwZjYB1HTeQp/nbSNmEA',
      'dPXD3fFE',
      '-----END CERTIFICATE-----',
    ].join('\n');
    expect(await importPublicKey(cert, plan(['RS256', 'ES256'], false))).toMatchObject({ algorithms: ['ES256'], keyType: 'ec P-256' });
  });

  test('accepts a PKCS#1 RSA PUBLIC KEY', async () => {
    const pkcs1 = rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    expect(pkcs1).toContain('BEGIN RSA PUBLIC KEY');
    expect((await importPublicKey(pkcs1, plan(['RS256']))).algorithms).toEqual(['RS256']);
  });
});

test('secretKey verifies HS algorithms only', () => {
  expect(secretKey(SECRET).algorithms).toEqual(['HS256']);
  expect(() => secretKey(SECRET, ['RS256'])).toThrow('HS256, HS384 and HS512 only');
});
