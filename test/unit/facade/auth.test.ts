import { KeyObject, sign as cryptoSign, type webcrypto } from 'node:crypto';
import { createLocalJWKSet, generateKeyPair, exportSPKI, exportJWK, SignJWT, base64url, type CryptoKey } from 'jose';
import type { JwtAlgorithm } from '../../../src/config';
import { createAuthenticator, mintToken } from '../../../src/facade/auth';
import { AppError } from '../../../src/facade/errors';
import { importPublicKey, KeySetUnavailableError, secretKey, type VerificationKey } from '../../../src/facade/verification-key';

const NOW_S = 1_800_000_000;
const clock = () => new Date(NOW_S * 1000);
const ISS = 'agentry';
const AUD = 'agentry-api';
const TOLERANCE_S = 30;

let rsa: { publicKey: CryptoKey; privateKey: CryptoKey };
let ec: { publicKey: CryptoKey; privateKey: CryptoKey };
let rsaPem: string;
let rsaKey: VerificationKey;

beforeAll(async () => {
  rsa = await generateKeyPair('RS256', { extractable: true });
  ec = await generateKeyPair('ES256', { extractable: true });
  rsaPem = await exportSPKI(rsa.publicKey);
  rsaKey = await importPublicKey(rsaPem, { source: 'JWT_PUBLIC_KEY', algorithms: ['RS256', 'PS256'], explicit: true });
});

const auth = (key: VerificationKey) => createAuthenticator({ key, issuer: ISS, audience: AUD, clockToleranceS: TOLERANCE_S, clock });

interface Claims {
  iss?: string;
  aud?: string;
  iat?: number;
  exp?: number;
  nbf?: number;
  sub?: string;
  tenant?: string;
  roles?: string[];
}
const claims = (over: Claims = {}): Claims => ({ iss: ISS, aud: AUD, iat: NOW_S - 60, exp: NOW_S + 300, sub: 'u1', tenant: 't1', roles: ['operator'], ...over });

function sign(key: CryptoKey | Uint8Array, alg: JwtAlgorithm | string, over: Claims = {}, header: Record<string, unknown> = {}) {
  return new SignJWT({ ...claims(over) }).setProtectedHeader({ alg, typ: 'JWT', ...header }).sign(key);
}

/** A token whose header says `alg` and whose signature is whatever is given: the forgeries jose must not sign. */
function forged(header: Record<string, unknown>, payload: object, signature = '') {
  const enc = (v: object) => base64url.encode(JSON.stringify(v));
  return `${enc(header)}.${enc(payload)}.${signature}`;
}

async function refusal(p: Promise<unknown>): Promise<AppError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err instanceof AppError) return err;
  throw new Error(`expected an AppError, got ${String(err)}`);
}

test('accepts a valid RS256 token and a PS256 token when both are configured', async () => {
  await expect(auth(rsaKey).verify(await sign(rsa.privateKey, 'RS256'))).resolves.toEqual({ subject: 'u1', tenant: 't1', roles: ['operator'] });
  const ps = await generateKeyPair('PS256');
  const psKey = await importPublicKey(await exportSPKI(ps.publicKey), { source: 'JWT_PUBLIC_KEY', algorithms: ['PS256'], explicit: true });
  await expect(auth(psKey).verify(await sign(ps.privateKey, 'PS256'))).resolves.toMatchObject({ subject: 'u1' });
});

test('accepts a valid ES256 token with an EC key', async () => {
  const key = await importPublicKey(await exportSPKI(ec.publicKey), { source: 'JWT_PUBLIC_KEY', algorithms: ['RS256', 'ES256'], explicit: false });
  await expect(auth(key).verify(await sign(ec.privateKey, 'ES256'))).resolves.toMatchObject({ tenant: 't1' });
});

test.each(['none', 'None', 'NONE', 'nOnE'])('rejects a token signed with alg %s', async (alg) => {
  for (const key of [rsaKey, secretKey('s'.repeat(40))]) {
    const err = await refusal(auth(key).verify(forged({ alg, typ: 'JWT' }, claims())));
    expect(err).toMatchObject({ status: 401, code: 'unauthorized', detail: 'token algorithm is not accepted' });
  }
});

test('rejects an HS256 token signed with the RS256 public key PEM as the HMAC secret', async () => {
  const token = await sign(new TextEncoder().encode(rsaPem), 'HS256');
  const err = await refusal(auth(rsaKey).verify(token));
  expect(err).toMatchObject({ status: 401, detail: 'token algorithm is not accepted' });
});

test('rejects a token signed by another key that carries its own key in the header (jwk, jku, x5u)', async () => {
  const attacker = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(attacker.publicKey);
  const token = await sign(attacker.privateKey, 'RS256', {}, { jwk, jku: 'https://attacker.example/jwks', x5u: 'https://attacker.example/cert', kid: 'x' });
  expect(await refusal(auth(rsaKey).verify(token))).toMatchObject({ status: 401, detail: 'token signature is invalid' });
});

test('rejects an ES256 token when only RS/PS algorithms are configured', async () => {
  expect(await refusal(auth(rsaKey).verify(await sign(ec.privateKey, 'ES256')))).toMatchObject({ detail: 'token algorithm is not accepted' });
});

test('rejects a correctly signed token with a critical header extension it does not understand', async () => {
  // jose refuses to sign such a header, so sign the bytes directly.
  const unsigned = forged({ alg: 'RS256', typ: 'JWT', crit: ['exp-ext'], 'exp-ext': true }, claims()).slice(0, -1);
  const signature = cryptoSign('sha256', Buffer.from(unsigned), KeyObject.from(rsa.privateKey as unknown as webcrypto.CryptoKey));
  const token = `${unsigned}.${base64url.encode(signature)}`;
  expect(await refusal(auth(rsaKey).verify(token))).toMatchObject({ status: 401, detail: 'token is invalid' });
});

test('accepts expiry one second inside the clock tolerance and refuses one second outside', async () => {
  await expect(auth(rsaKey).verify(await sign(rsa.privateKey, 'RS256', { exp: NOW_S - TOLERANCE_S + 1 }))).resolves.toBeDefined();
  expect(await refusal(auth(rsaKey).verify(await sign(rsa.privateKey, 'RS256', { exp: NOW_S - TOLERANCE_S })))).toMatchObject({ detail: 'token has expired' });
  expect(await refusal(auth(rsaKey).verify(await sign(rsa.privateKey, 'RS256', { exp: NOW_S - TOLERANCE_S - 1 })))).toMatchObject({ detail: 'token has expired' });
});

test('accepts nbf inside the tolerance and refuses nbf beyond it', async () => {
  await expect(auth(rsaKey).verify(await sign(rsa.privateKey, 'RS256', { nbf: NOW_S + TOLERANCE_S }))).resolves.toBeDefined();
  expect(await refusal(auth(rsaKey).verify(await sign(rsa.privateKey, 'RS256', { nbf: NOW_S + TOLERANCE_S + 1 })))).toMatchObject({
    status: 401,
    detail: 'token is not valid yet (nbf)',
  });
});

test('refuses a wrong issuer or audience, and a token without exp or sub', async () => {
  expect((await refusal(auth(rsaKey).verify(await sign(rsa.privateKey, 'RS256', { iss: 'someone-else' })))).detail).toBe('token claim "iss" failed: check_failed');
  expect((await refusal(auth(rsaKey).verify(await sign(rsa.privateKey, 'RS256', { aud: 'other-api' })))).detail).toBe('token claim "aud" failed: check_failed');
  expect((await refusal(auth(rsaKey).verify(await sign(rsa.privateKey, 'RS256', { exp: undefined })))).detail).toBe('token claim "exp" is missing');
  expect((await refusal(auth(rsaKey).verify(await sign(rsa.privateKey, 'RS256', { sub: undefined })))).detail).toBe('token claim "sub" is missing');
});

test('refuses claims that do not fit the principal (tenant slug, known roles)', async () => {
  expect((await refusal(auth(rsaKey).verify(await sign(rsa.privateKey, 'RS256', { tenant: '../Other' })))).detail).toContain('"tenant" is invalid');
  expect((await refusal(auth(rsaKey).verify(await sign(rsa.privateKey, 'RS256', { roles: ['root'] })))).detail).toContain('"roles.0" is invalid');
  // A subject is recorded in the audit trail: it must be text that can be stored as it is.
  expect((await refusal(auth(rsaKey).verify(await sign(rsa.privateKey, 'RS256', { sub: 'a\ud800' })))).detail).toContain('"sub" is invalid');
  expect((await refusal(auth(rsaKey).verify(await sign(rsa.privateKey, 'RS256', { sub: 'a\u0007' })))).detail).toContain('"sub" is invalid');
  await expect(auth(rsaKey).verify(await sign(rsa.privateKey, 'RS256', { sub: 'José 😀' }))).resolves.toMatchObject({ subject: 'José 😀' });
  // Subjects that would look like another actor, or like no one, in the audit trail.
  for (const sub of ['ad\u202emin', 'ad\u200bmin', '   ', ' alice', 'alice\t', 'a\u2028b']) {
    expect((await refusal(auth(rsaKey).verify(await sign(rsa.privateKey, 'RS256', { sub })))).detail).toContain('"sub" is invalid');
  }
  await expect(auth(rsaKey).verify(await sign(rsa.privateKey, 'RS256', { sub: 'Ada Lovelace' }))).resolves.toMatchObject({ subject: 'Ada Lovelace' });
});

test('mintToken refuses claims the facade would refuse, naming the claim', async () => {
  const base = { secret: 'm'.repeat(40), issuer: ISS, audience: AUD, subject: 'dev', tenant: 't1', roles: ['viewer' as const] };
  await expect(mintToken({ ...base, subject: '' })).rejects.toThrow("the token's subject must not be empty; the facade would refuse it");
  await expect(mintToken({ ...base, subject: 'a\nb' })).rejects.toThrow("the token's subject must not contain control characters");
  await expect(mintToken({ ...base, tenant: 'Bad Tenant!' })).rejects.toThrow(/^the token's tenant must be a lowercase slug \(/);
});

test('the Authorization scheme is case-insensitive', async () => {
  const token = await sign(rsa.privateKey, 'RS256');
  for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
    const req = { headers: { authorization: `${scheme} ${token}` } } as unknown as Parameters<ReturnType<typeof auth>['middleware']>[0];
    const next = jest.fn();
    await auth(rsaKey).middleware(req, { getHeader: () => undefined } as never, next);
    expect(next).toHaveBeenCalledWith();
  }
});

test('refuses malformed tokens as invalid', async () => {
  for (const token of ['a.b.c', 'not-a-jwt', forged({ typ: 'JWT' }, claims(), 'sig')]) {
    expect(await refusal(auth(rsaKey).verify(token))).toMatchObject({ status: 401, detail: 'token is invalid' });
  }
});

test('answers 503 identity_unavailable when the key set cannot be fetched, 401 when no key matches', async () => {
  const failing: VerificationKey = {
    source: 'JWT_JWKS_URL',
    algorithms: ['RS256'],
    keyType: 'jwks',
    key: async () => {
      throw new KeySetUnavailableError('timed out');
    },
    warmUp: async () => undefined,
  };
  const token = await sign(rsa.privateKey, 'RS256');
  expect(await refusal(auth(failing).verify(token))).toMatchObject({ status: 503, code: 'identity_unavailable' });

  const set = createLocalJWKSet({ keys: [{ ...(await exportJWK(rsa.publicKey)), kid: 'k1', alg: 'RS256' }] });
  const local: VerificationKey = { ...failing, key: set };
  await expect(auth(local).verify(await sign(rsa.privateKey, 'RS256', {}, { kid: 'k1' }))).resolves.toMatchObject({ subject: 'u1' });
  expect(await refusal(auth(local).verify(await sign(rsa.privateKey, 'RS256', {}, { kid: 'k2' })))).toMatchObject({
    status: 401,
    detail: 'no signing key matches the token',
  });
});

test('createAuthenticator keeps the HS256 secret shorthand', async () => {
  const secret = 'k'.repeat(40);
  const a = createAuthenticator({ secret, issuer: ISS, audience: AUD, clockToleranceS: 5, clock });
  await expect(a.verify(await sign(new TextEncoder().encode(secret), 'HS256'))).resolves.toMatchObject({ subject: 'u1' });
  expect(a.algorithms).toEqual(['HS256']);
});

describe('token lifetime (JWT_MAX_TOKEN_LIFETIME_S)', () => {
  const MAX_S = 3600;
  const bounded = (key: VerificationKey) =>
    createAuthenticator({ key, issuer: ISS, audience: AUD, clockToleranceS: TOLERANCE_S, clock, maxTokenLifetimeS: MAX_S });

  test('accepts exp - iat equal to the bound and refuses one second more, naming the rule', async () => {
    const a = bounded(rsaKey);
    await expect(a.verify(await sign(rsa.privateKey, 'RS256', { iat: NOW_S - 100, exp: NOW_S - 100 + MAX_S }))).resolves.toMatchObject({ subject: 'u1' });
    const err = await refusal(a.verify(await sign(rsa.privateKey, 'RS256', { iat: NOW_S - 100, exp: NOW_S - 100 + MAX_S + 1 })));
    expect(err).toMatchObject({ status: 401, code: 'token_lifetime', detail: `token lifetime (exp - iat) is ${MAX_S + 1} s; at most ${MAX_S} s is accepted` });
    expect(err.headers['WWW-Authenticate']).toContain('Bearer');
  });

  test('refuses a token without iat or without exp under the token_lifetime rule', async () => {
    const a = bounded(rsaKey);
    expect(await refusal(a.verify(await sign(rsa.privateKey, 'RS256', { iat: undefined })))).toMatchObject({
      status: 401,
      code: 'token_lifetime',
      detail: 'token claim "iat" is missing',
    });
    expect(await refusal(a.verify(await sign(rsa.privateKey, 'RS256', { exp: undefined })))).toMatchObject({
      status: 401,
      code: 'token_lifetime',
      detail: 'token claim "exp" is missing',
    });
  });

  test('refuses iat in the future beyond the clock tolerance, which would stretch the lifetime from now', async () => {
    const a = bounded(rsaKey);
    await expect(a.verify(await sign(rsa.privateKey, 'RS256', { iat: NOW_S + TOLERANCE_S, exp: NOW_S + TOLERANCE_S + 60 }))).resolves.toBeDefined();
    const future = NOW_S + 10 * 365 * 86_400;
    expect(await refusal(a.verify(await sign(rsa.privateKey, 'RS256', { iat: future, exp: future + 60 })))).toMatchObject({
      code: 'token_lifetime',
      detail: 'token claim "iat" is in the future',
    });
  });

  test('bounds lifetimes at one day when no bound is configured', async () => {
    const a = auth(rsaKey);
    await expect(a.verify(await sign(rsa.privateKey, 'RS256', { iat: NOW_S - 10, exp: NOW_S - 10 + 86_400 }))).resolves.toBeDefined();
    const err = await refusal(a.verify(await sign(rsa.privateKey, 'RS256', { iat: NOW_S - 10, exp: NOW_S + 365 * 86_400 })));
    expect(err).toMatchObject({ status: 401, code: 'token_lifetime' });
  });

  test('mintToken mints exactly the lifetime asked for, and refuses one beyond the bound', async () => {
    const secret = 'm'.repeat(40);
    const base = { secret, issuer: ISS, audience: AUD, subject: 'dev', tenant: 't1', roles: ['viewer' as const] };
    const token = await mintToken({ ...base, ttlS: MAX_S, maxLifetimeS: MAX_S });
    const payload = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as { iat: number; exp: number };
    expect(payload.exp - payload.iat).toBe(MAX_S);
    const verifier = createAuthenticator({ secret, issuer: ISS, audience: AUD, clockToleranceS: 5, maxTokenLifetimeS: MAX_S });
    await expect(verifier.verify(token)).resolves.toMatchObject({ subject: 'dev', roles: ['viewer'] });
    await expect(mintToken({ ...base, ttlS: MAX_S + 1, maxLifetimeS: MAX_S })).rejects.toThrow(/exceeds JWT_MAX_TOKEN_LIFETIME_S \(3600 s\)/);
    await expect(mintToken({ ...base, ttlS: 86_401 })).rejects.toThrow(RangeError);
  });
});
