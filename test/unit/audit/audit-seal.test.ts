import { randomBytes } from 'node:crypto';
import { AuditSealError, isSealed, sealFields, unsealFields, type SealKeyRing } from '../../../src/audit/audit-seal';
import { configWithoutSecrets } from '../../../src/backup/config-snapshot';

function ring(...ids: string[]): SealKeyRing & { keys: Map<string, Buffer> } {
  const keys = new Map(ids.map((id) => [id, randomBytes(32)]));
  return { keys, activeKeyId: ids[0], activeKey: keys.get(ids[0])!, keyIds: ids, key: (id) => keys.get(id) };
}

const context = 'acme\nacme/support-triage/r1#7';

test('seals ip, userAgent, comment and reason, and nothing else', () => {
  const keys = ring('k1');
  const data = { ip: '203.0.113.9', userAgent: 'curl/8.5', comment: 'looks right', reason: 'customer withdrew', stage: 'review', attempts: 2 };
  const sealed = sealFields(data, keys, context);
  for (const f of ['ip', 'userAgent', 'comment', 'reason']) {
    expect(isSealed(sealed[f])).toBe(true);
    expect(sealed[f]).toMatchObject({ $sealed: 'A256GCM', kid: 'k1' });
    expect(JSON.stringify(sealed[f])).not.toContain(String(data[f as keyof typeof data]));
  }
  expect(sealed).toMatchObject({ stage: 'review', attempts: 2 });
  expect(data.comment).toBe('looks right');
});

test('opens what it sealed, keeping value types, and leaves absent fields absent', () => {
  const keys = ring('k1');
  const sealed = sealFields({ reason: { code: 'x', n: 3 }, comment: undefined, ip: null }, keys, context);
  expect(sealed.comment).toBeUndefined();
  expect(sealed.ip).toBeNull();
  expect(unsealFields(sealed, keys, context)).toEqual({ data: { reason: { code: 'x', n: 3 }, comment: undefined, ip: null }, failures: [] });
});

test('a sealed value opens only under its own event and field', () => {
  const keys = ring('k1');
  const sealed = sealFields({ comment: 'secret' }, keys, context);
  const moved = unsealFields({ comment: sealed.comment }, keys, 'acme\nacme/support-triage/r1#8');
  expect(moved.failures).toHaveLength(1);
  expect(moved.failures[0]).toMatchObject({ name: 'AuditSealError', reason: 'authentication_failed', field: 'comment' });
  const renamed = unsealFields({ reason: sealed.comment }, keys, context);
  expect(renamed.failures[0]).toBeInstanceOf(AuditSealError);
});

test('an altered ciphertext or an unknown key id is reported, never thrown past the caller', () => {
  const keys = ring('k1');
  const sealed = sealFields({ ip: '198.51.100.1', comment: 'c' }, keys, context) as Record<string, { ct: string }>;
  const ct = Buffer.from(sealed.ip.ct, 'base64url');
  ct[0] ^= 1;
  const tampered = { ...sealed, ip: { ...sealed.ip, ct: ct.toString('base64url') } };
  const res = unsealFields(tampered, keys, context);
  expect(res.failures.map((f) => [f.field, f.reason])).toEqual([['ip', 'authentication_failed']]);
  expect(res.data.comment).toBe('c');
  const other = unsealFields(sealed, ring('k2'), context);
  expect(other.failures.map((f) => [f.field, f.reason, f.keyId])).toEqual([
    ['ip', 'unknown_key_id', 'k1'],
    ['comment', 'unknown_key_id', 'k1'],
  ]);
  expect(other.failures[0].message).not.toMatch(/198\.51/);
});

test('after rotation the new key seals and the old one still opens', () => {
  const old = ring('k1');
  const sealedBefore = sealFields({ comment: 'before' }, old, context);
  const rotated = { ...ring('k2'), key: (id: string) => (id === 'k1' ? old.activeKey : id === 'k2' ? rotated.activeKey : undefined) };
  const sealedAfter = sealFields({ comment: 'after' }, rotated, context);
  expect(sealedAfter.comment).toMatchObject({ kid: 'k2' });
  expect(unsealFields(sealedBefore, rotated, context).data.comment).toBe('before');
  expect(unsealFields(sealedAfter, rotated, context).data.comment).toBe('after');
});

test('a sealed value is not sealed twice', () => {
  const keys = ring('k1');
  const once = sealFields({ comment: 'x' }, keys, context);
  expect(sealFields(once, keys, context)).toEqual(once);
});

test('a backup records the configuration without secrets or passwords in URLs', () => {
  const { values, removed } = configWithoutSecrets({
    JWT_SECRET: 's'.repeat(40),
    PAYLOAD_KEYS: { activeKeyId: 'k1' },
    AUDIT_SEAL_KEYS: { activeKeyId: 'k1' },
    DATABASE_URL: 'postgres://agentry:hunter2@db:5432/agentry',
    REDIS_URL: 'redis://127.0.0.1:6379',
    BACKUP_KEEP: 7,
    PIPELINES_DIR: '/srv/pipelines',
    JWT_ALGORITHMS: ['RS256'],
  });
  expect(JSON.stringify(values)).not.toMatch(/hunter2|sss/);
  expect(values).toMatchObject({
    JWT_SECRET: '[removed]',
    PAYLOAD_KEYS: '[removed]',
    AUDIT_SEAL_KEYS: '[removed]',
    DATABASE_URL: 'postgres://agentry@db:5432/agentry',
    REDIS_URL: 'redis://127.0.0.1:6379',
    BACKUP_KEEP: 7,
    JWT_ALGORITHMS: ['RS256'],
  });
  expect(removed).toEqual(expect.arrayContaining(['JWT_SECRET', 'PAYLOAD_KEYS', 'AUDIT_SEAL_KEYS', 'DATABASE_URL (password)']));
});
