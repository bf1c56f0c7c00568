import { AesGcmPayloadCodec, generateKeyRingText, parseKeyRing } from '../../src/codec';
import { ClaimMissingError, createClaimStore } from '../../src/storage/claim-store';
import { testPayloadCodec } from '../helpers/codec';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const ref = (id: string) => ({ id, tenant: 'acme', runId: 'p/r1', stage: 'big' });
const value = { text: 'a long reply that quotes the customer: card 4111 1111 1111 1111', n: 1 };
const bodyOf = async (id: string) => (await db.pool.query<{ body: string }>('SELECT body FROM stage_payloads WHERE id = $1', [id])).rows[0].body;

test('with the payload codec, bodies are stored encrypted and read back', async () => {
  const store = createClaimStore(db.pool, { codec: testPayloadCodec });
  const claim = await store.put(ref('c/enc'), value);
  expect(claim).toMatchObject({ $claim: 'c/enc', bytes: Buffer.byteLength(JSON.stringify(value)) });
  expect(await bodyOf('c/enc')).not.toContain('4111');
  expect(await store.get(claim, 'acme')).toEqual(value);
  expect(await store.resolve({ reply: claim, note: 'small' }, 'acme')).toEqual({ reply: value, note: 'small' });
  // Another tenant cannot read it, even with the reference.
  await expect(store.get(claim, 'other')).rejects.toBeInstanceOf(ClaimMissingError);
});

test('bodies written without the codec (before encryption, or with it off) still read', async () => {
  const claim = await createClaimStore(db.pool).put(ref('c/plain'), value);
  expect(await bodyOf('c/plain')).toContain('4111');
  expect(await createClaimStore(db.pool, { codec: testPayloadCodec }).get(claim, 'acme')).toEqual(value);
});

test('a body altered or swapped in the database fails its reference', async () => {
  const store = createClaimStore(db.pool, { codec: testPayloadCodec });
  const a = await store.put(ref('c/a'), value);
  const b = await store.put(ref('c/b'), { other: true });
  await db.pool.query('UPDATE stage_payloads SET body = (SELECT body FROM stage_payloads WHERE id = $1) WHERE id = $2', ['c/b', 'c/a']);
  await expect(store.get(a, 'acme')).rejects.toBeInstanceOf(ClaimMissingError);
  expect(await store.get(b, 'acme')).toEqual({ other: true });
});

test('an encrypted body under an unknown key, or read without keys, fails with the reason', async () => {
  const claim = await createClaimStore(db.pool, { codec: testPayloadCodec }).put(ref('c/keyed'), value);
  const otherKeys = new AesGcmPayloadCodec({ keys: parseKeyRing(generateKeyRingText('other-1')) });
  await expect(createClaimStore(db.pool, { codec: otherKeys }).get(claim, 'acme')).rejects.toThrow(/c\/keyed cannot be opened: .*test-1/);
  await expect(createClaimStore(db.pool).get(claim, 'acme')).rejects.toThrow(/cannot be opened: it is encrypted and this process has no payload keys/);
});

test('a plain body shaped like anything is read as plain: only the stored prefix marks encryption', async () => {
  const lookalike = { $encryptedPayload: { metadata: {}, data: '' } };
  const claim = await createClaimStore(db.pool).put(ref('c/lookalike'), lookalike);
  expect(await createClaimStore(db.pool, { codec: testPayloadCodec }).get(claim, 'acme')).toEqual(lookalike);
});
