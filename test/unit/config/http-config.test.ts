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

test('HTTP server timeouts default to 20 s for headers, 60 s for the request and 65 s for idle keep-alive', () => {
  const cfg = loadConfig({});
  expect([cfg.HTTP_HEADERS_TIMEOUT_MS, cfg.HTTP_REQUEST_TIMEOUT_MS, cfg.HTTP_KEEP_ALIVE_TIMEOUT_MS]).toEqual([20_000, 60_000, 65_000]);
});

test.each([
  ['HTTP_HEADERS_TIMEOUT_MS', '999'],
  ['HTTP_HEADERS_TIMEOUT_MS', '300001'],
  ['HTTP_REQUEST_TIMEOUT_MS', '0'],
  ['HTTP_REQUEST_TIMEOUT_MS', '1e4'],
  ['HTTP_KEEP_ALIVE_TIMEOUT_MS', '600001'],
  ['HTTP_KEEP_ALIVE_TIMEOUT_MS', '5s'],
])('refuses %s=%j, naming the key', (key, value) => {
  expect(problemsOf({ [key]: value }).map((p) => p.key)).toEqual([key]);
});

test('refuses a header timeout longer than the request timeout, which Node would reject at start', () => {
  expect(problemsOf({ HTTP_HEADERS_TIMEOUT_MS: '30000', HTTP_REQUEST_TIMEOUT_MS: '20000' })).toEqual([
    { key: 'HTTP_HEADERS_TIMEOUT_MS', message: 'must not exceed HTTP_REQUEST_TIMEOUT_MS (20000)' },
  ]);
  expect(loadConfig({ HTTP_HEADERS_TIMEOUT_MS: '5000', HTTP_REQUEST_TIMEOUT_MS: '5000' }).HTTP_REQUEST_TIMEOUT_MS).toBe(5000);
});

describe('numbers and lists in configuration are strict', () => {
  test.each([
    ['PORT', ' 80'],
    ['PORT', '1e3'],
    ['PORT', '70000'],
    ['DATABASE_POOL_MAX', '0x10'],
    ['RATE_LIMIT_PER_MINUTE', '-5'],
    ['WORKER_SHUTDOWN_GRACE_MS', '1.5'],
    ['JWT_ALGORITHMS', 'HS256,,'],
  ])('%s=%j is refused, naming the key', (key, value) => {
    expect(() => loadConfig({ [key]: value })).toThrow(new RegExp(key));
  });

  test('plain decimal values are taken', () => {
    const config = loadConfig({ PORT: '8080', DATABASE_POOL_MAX: '20', JWT_ALGORITHMS: 'HS256, HS384' });
    expect(config).toMatchObject({ PORT: 8080, DATABASE_POOL_MAX: 20, JWT_ALGORITHMS: ['HS256', 'HS384'] });
  });
});
