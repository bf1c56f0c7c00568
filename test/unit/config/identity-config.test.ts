import { ConfigError, loadConfig } from '../../../src/config';

function problemsOf(env: Record<string, string>): { key: string; message: string }[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

describe('JWT_CLOCK_TOLERANCE_S', () => {
  test.each(['301', '-1', 'NaN', 'Infinity', '-Infinity', 'abc', ' ', '0x1f', '1e2', '5s', '1,5'])('refuses %j, naming the key', (value) => {
    const problems = problemsOf({ JWT_CLOCK_TOLERANCE_S: value });
    expect(problems).toEqual([{ key: 'JWT_CLOCK_TOLERANCE_S', message: 'expected a number of seconds from 0 to 300' }]);
  });

  test.each([
    ['0', 0],
    ['5', 5],
    ['2.5', 2.5],
    ['300', 300],
  ])('accepts %j', (value, expected) => {
    expect(loadConfig({ JWT_CLOCK_TOLERANCE_S: value }).JWT_CLOCK_TOLERANCE_S).toBe(expected);
  });

  test('defaults to 5 seconds', () => {
    expect(loadConfig({}).JWT_CLOCK_TOLERANCE_S).toBe(5);
  });
});

describe('JWT_MAX_TOKEN_LIFETIME_S', () => {
  test('defaults to one day and accepts whole seconds from 60 to 30 days', () => {
    expect(loadConfig({}).JWT_MAX_TOKEN_LIFETIME_S).toBe(86_400);
    expect(loadConfig({ JWT_MAX_TOKEN_LIFETIME_S: '60' }).JWT_MAX_TOKEN_LIFETIME_S).toBe(60);
    expect(loadConfig({ JWT_MAX_TOKEN_LIFETIME_S: '2592000' }).JWT_MAX_TOKEN_LIFETIME_S).toBe(2_592_000);
  });

  test.each(['59', '2592001', '-1', '1e5', '3600s', ' ', '0x100', '86400.5'])('refuses %j, naming the key', (value) => {
    expect(problemsOf({ JWT_MAX_TOKEN_LIFETIME_S: value }).map((p) => p.key)).toEqual(['JWT_MAX_TOKEN_LIFETIME_S']);
  });
});

describe('JWT_ALGORITHMS', () => {
  test('parses a comma list, trimming and dropping repeats', () => {
    expect(loadConfig({ JWT_ALGORITHMS: ' RS256, ES256 ,RS256' }).JWT_ALGORITHMS).toEqual(['RS256', 'ES256']);
  });

  test('is unset by default (the verification key decides)', () => {
    expect(loadConfig({}).JWT_ALGORITHMS).toBeUndefined();
  });

  test.each(['none', 'RS256,none', 'rs256', 'EdDSA', ','])('refuses %j, naming the key', (value) => {
    expect(problemsOf({ JWT_ALGORITHMS: value }).map((p) => p.key)).toContain('JWT_ALGORITHMS');
  });
});

describe('JWT_JWKS_URL and its timings', () => {
  test('accepts https anywhere and http on loopback only', () => {
    expect(loadConfig({ JWT_JWKS_URL: 'https://idp.example/.well-known/jwks.json' }).JWT_JWKS_URL).toBeDefined();
    expect(loadConfig({ JWT_JWKS_URL: 'http://127.0.0.1:8080/jwks' }).JWT_JWKS_URL).toBeDefined();
    expect(problemsOf({ JWT_JWKS_URL: 'http://idp.example/jwks' })).toEqual([
      { key: 'JWT_JWKS_URL', message: 'must be an https:// URL (http:// is accepted for localhost only)' },
    ]);
    expect(problemsOf({ JWT_JWKS_URL: 'not a url' }).every((p) => p.key === 'JWT_JWKS_URL')).toBe(true);
  });

  test('has defaults and refuses non-numbers', () => {
    expect(loadConfig({})).toMatchObject({ JWT_JWKS_TIMEOUT_MS: 5000, JWT_JWKS_COOLDOWN_MS: 30_000, JWT_JWKS_CACHE_MAX_AGE_MS: 600_000 });
    expect(problemsOf({ JWT_JWKS_TIMEOUT_MS: '5s' })[0].key).toBe('JWT_JWKS_TIMEOUT_MS');
    expect(problemsOf({ JWT_JWKS_TIMEOUT_MS: '10' })[0].key).toBe('JWT_JWKS_TIMEOUT_MS');
    expect(problemsOf({ JWT_JWKS_COOLDOWN_MS: '-1' })[0].key).toBe('JWT_JWKS_COOLDOWN_MS');
  });
});

test('configuration errors never echo the secret', () => {
  const secret = 'too-short-but-secret';
  const problems = problemsOf({ JWT_SECRET: secret });
  expect(problems).toEqual([{ key: 'JWT_SECRET', message: 'must be at least 32 characters' }]);
  expect(JSON.stringify(problems)).not.toContain(secret);
});
