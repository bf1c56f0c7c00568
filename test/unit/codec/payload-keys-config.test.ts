import { randomBytes } from 'node:crypto';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { generateKeyRingText, loadOrCreateDevKeyRing, parseKeyRing, payloadCodecFromConfig } from '../../../src/codec';
import { ConfigError, loadConfig, requirePayloadKeys } from '../../../src/config';

const key = () => randomBytes(32).toString('base64');

function configProblem(env: Record<string, string>): { message: string; keys: string[] } {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return { message: (err as ConfigError).message, keys: (err as ConfigError).problems.map((p) => p.key) };
  }
  throw new Error('expected a ConfigError');
}

describe('PAYLOAD_KEYS', () => {
  test('parses a ring: the first key is active, every key decrypts', () => {
    const [a, b] = [key(), key()];
    const ring = loadConfig({ PAYLOAD_KEYS: ` k2:${a} , k1:${b}` }).PAYLOAD_KEYS!;
    expect(ring.activeKeyId).toBe('k2');
    expect(ring.keyIds).toEqual(['k2', 'k1']);
    expect(ring.key('k1')?.toString('base64')).toBe(b);
    expect(ring.activeKey.toString('base64')).toBe(a);
  });

  test.each([
    ['a key of the wrong length', () => `k1:${randomBytes(16).toString('base64')}`, /key "k1" must be 32 bytes, got 16/],
    ['bad base64', () => `k1:${key().slice(0, 20)}!!${key().slice(22)}`, /key "k1" is not valid base64/],
    ['an entry without an id', () => key(), /entry 1 must be id:base64key/],
    ['a repeated id', () => `k1:${key()},k1:${key()}`, /key id "k1" appears twice/],
    ['an id with spaces', () => `my key:${key()}`, /entry 1: key id must be/],
    ['only commas', () => ',,', /expected id:base64key entries/],
  ])('refuses %s, naming PAYLOAD_KEYS and never printing the key', (_what, make, message) => {
    const value = make();
    const problem = configProblem({ PAYLOAD_KEYS: value });
    expect(problem.keys).toEqual(['PAYLOAD_KEYS']);
    expect(problem.message).toMatch(message);
    for (const part of value.split(/[,:]/).filter((p) => p.length >= 16)) expect(problem.message).not.toContain(part);
  });

  test('a parsed ring logs and serialises as key ids only', () => {
    const secret = key();
    const ring = parseKeyRing(`k9:${secret}`);
    expect(JSON.stringify({ ring })).toBe('{"ring":{"activeKeyId":"k9","keyIds":["k9"]}}');
    expect(inspect(ring)).not.toContain(secret);
    expect(inspect({ nested: ring }, { depth: 5 })).not.toContain(secret);
  });

  test('generated rings parse and hold 32 random bytes', () => {
    const text = generateKeyRingText('kx');
    expect(parseKeyRing(text).activeKey).toHaveLength(32);
    expect(generateKeyRingText()).toMatch(/^k\d{8}-[0-9a-f]{4}:/);
  });

  test('production refuses to start without PAYLOAD_KEYS unless encryption is off', () => {
    expect(() => requirePayloadKeys(loadConfig({ NODE_ENV: 'production' }))).toThrow(/PAYLOAD_KEYS: required when NODE_ENV=production/);
    expect(() => requirePayloadKeys(loadConfig({ NODE_ENV: 'production', PAYLOAD_KEYS: `k1:${key()}` }))).not.toThrow();
    expect(() => requirePayloadKeys(loadConfig({ NODE_ENV: 'production', PAYLOAD_ENCRYPTION: 'false' }))).not.toThrow();
    expect(() => requirePayloadKeys(loadConfig({}))).not.toThrow();
  });

  test('PAYLOAD_ENCRYPTION defaults to on', () => {
    expect(loadConfig({}).PAYLOAD_ENCRYPTION).toBe(true);
    expect(loadConfig({ PAYLOAD_ENCRYPTION: 'false' }).PAYLOAD_ENCRYPTION).toBe(false);
    expect(configProblem({ PAYLOAD_ENCRYPTION: 'maybe' }).keys).toEqual(['PAYLOAD_ENCRYPTION']);
  });
});

describe('CODEC_CORS_ORIGINS', () => {
  test('defaults to the local Web UI', () => {
    expect(loadConfig({}).CODEC_CORS_ORIGINS).toEqual(['http://127.0.0.1:8233', 'http://localhost:8233']);
  });

  test('takes a comma list of origins', () => {
    expect(loadConfig({ CODEC_CORS_ORIGINS: 'https://temporal.example.com, http://localhost:8080' }).CODEC_CORS_ORIGINS).toEqual([
      'https://temporal.example.com',
      'http://localhost:8080',
    ]);
  });

  test.each(['*', 'https://ui.example.com/', 'https://ui.example.com/path', 'ui.example.com', 'ftp://ui.example.com'])('refuses %j', (value) => {
    expect(configProblem({ CODEC_CORS_ORIGINS: value }).keys).toEqual(['CODEC_CORS_ORIGINS']);
  });
});

describe('development key file', () => {
  test('is generated once per state directory with mode 0600, then reused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'agentry-keys-'));
    const first = loadOrCreateDevKeyRing(join(dir, 'state'));
    expect(first.created).toBe(true);
    expect(statSync(first.path).mode & 0o777).toBe(0o600);
    const again = loadOrCreateDevKeyRing(join(dir, 'state'));
    expect(again).toMatchObject({ created: false, text: first.text, path: first.path });
    expect(loadOrCreateDevKeyRing(join(dir, 'other')).text).not.toBe(first.text);
  });

  test('outside production, a process without PAYLOAD_KEYS uses its state directory key; processes sharing it agree', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentry-keys-'));
    const config = loadConfig({ AGENTRY_STATE_DIR: stateDir });
    const facade = payloadCodecFromConfig(config);
    const worker = payloadCodecFromConfig(config);
    expect(facade.keySource).toBe('development key file');
    const encoded = await facade.codec.encode([{ metadata: {}, data: new TextEncoder().encode('hi') }]);
    expect(Buffer.from((await worker.codec.decode(encoded))[0].data!).toString()).toBe('hi');
  });

  test('PAYLOAD_KEYS wins over the key file', () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'agentry-keys-'));
    const setup = payloadCodecFromConfig(loadConfig({ AGENTRY_STATE_DIR: stateDir, PAYLOAD_KEYS: `prod-1:${key()}` }));
    expect(setup).toMatchObject({ keySource: 'PAYLOAD_KEYS' });
    expect(setup.codec.activeKeyId).toBe('prod-1');
  });
});
