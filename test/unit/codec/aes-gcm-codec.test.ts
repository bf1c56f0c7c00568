import { randomBytes } from 'node:crypto';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import {
  AesGcmPayloadCodec,
  ENCODING_ENCRYPTED,
  METADATA_KEY_ID,
  parseKeyRing,
  PayloadDecryptionError,
  payloadsFromJson,
  payloadsToJson,
} from '../../../src/codec';

const keyText = (id: string) => `${id}:${randomBytes(32).toString('base64')}`;
const k1 = keyText('k1');
const k2 = keyText('k2');
const str = (b: Uint8Array | null | undefined) => Buffer.from(b ?? new Uint8Array()).toString('utf8');
const toPayload = (value: unknown): Payload => defaultPayloadConverter.toPayload(value);
const fromPayload = (p: Payload): unknown => defaultPayloadConverter.fromPayload(p);

async function decodeError(codec: AesGcmPayloadCodec, payload: Payload): Promise<PayloadDecryptionError> {
  const err = await codec.decode([payload]).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PayloadDecryptionError);
  return err as PayloadDecryptionError;
}

describe('AES-256-GCM payload codec', () => {
  test('round-trips payloads, hiding data and original metadata behind the active key id', async () => {
    const codec = new AesGcmPayloadCodec({ keys: parseKeyRing(k1) });
    const input = [toPayload({ text: 'card 4111 1111 1111 1111, mail sam@example.org' }), toPayload(null), toPayload(new Uint8Array([1, 2, 3]))];
    const encoded = await codec.encode(input);

    expect(encoded).toHaveLength(3);
    for (const p of encoded) {
      expect(Object.keys(p.metadata ?? {}).sort()).toEqual([METADATA_KEY_ID, 'encoding'].sort());
      expect(str(p.metadata?.encoding)).toBe(ENCODING_ENCRYPTED);
      expect(str(p.metadata?.[METADATA_KEY_ID])).toBe('k1');
      expect(str(p.data)).not.toContain('sam@example.org');
      expect(str(p.data)).not.toContain('json/plain');
    }
    const decoded = await codec.decode(encoded);
    expect(decoded.map(fromPayload)).toEqual([{ text: 'card 4111 1111 1111 1111, mail sam@example.org' }, null, new Uint8Array([1, 2, 3])]);
    expect(str(decoded[0].metadata?.encoding)).toBe('json/plain');
  });

  test('uses a fresh IV for every payload, so equal values do not encrypt alike', async () => {
    const codec = new AesGcmPayloadCodec({ keys: parseKeyRing(k1) });
    const [a, b] = await codec.encode([toPayload('same'), toPayload('same')]);
    expect(Buffer.from(a.data!).subarray(0, 12).equals(Buffer.from(b.data!).subarray(0, 12))).toBe(false);
    expect(Buffer.from(a.data!).equals(Buffer.from(b.data!))).toBe(false);
  });

  test('rotation: a ring [k2, k1] reads what k1 encrypted and encrypts new payloads with k2', async () => {
    const before = new AesGcmPayloadCodec({ keys: parseKeyRing(k1) });
    const old = await before.encode([toPayload({ n: 1 })]);

    const after = new AesGcmPayloadCodec({ keys: parseKeyRing(`${k2},${k1}`) });
    expect((await after.decode(old)).map(fromPayload)).toEqual([{ n: 1 }]);
    const fresh = await after.encode([toPayload({ n: 2 })]);
    expect(str(fresh[0].metadata?.[METADATA_KEY_ID])).toBe('k2');
    expect((await after.decode(fresh)).map(fromPayload)).toEqual([{ n: 2 }]);

    // The old ring alone cannot read k2's payloads: the key id is unknown to it.
    const err = await decodeError(before, fresh[0]);
    expect(err.reason).toBe('unknown_key_id');
  });

  test('an unknown key id is a clear error naming the id and the configured ones, not the keys', async () => {
    const [payload] = await new AesGcmPayloadCodec({ keys: parseKeyRing(k2) }).encode([toPayload('x')]);
    const err = await decodeError(new AesGcmPayloadCodec({ keys: parseKeyRing(k1) }), payload);
    expect(err).toMatchObject({ reason: 'unknown_key_id', keyId: 'k2' });
    expect(err.message).toContain('"k2"');
    expect(err.message).toContain('configured: k1');
    expect(err.message).not.toContain(k1.split(':')[1]);
  });

  test('altered data, IV or tag fails authentication instead of decrypting to garbage', async () => {
    const codec = new AesGcmPayloadCodec({ keys: parseKeyRing(k1) });
    const [payload] = await codec.encode([toPayload({ amount: 100 })]);
    const data = Buffer.from(payload.data!);
    for (const at of [0, 12, data.length - 20, data.length - 1]) {
      const tampered = Buffer.from(data);
      tampered[at] ^= 0x01;
      expect((await decodeError(codec, { ...payload, data: tampered })).reason).toBe('authentication_failed');
    }
    expect((await decodeError(codec, { ...payload, data: data.subarray(0, 20) })).reason).toBe('malformed');
  });

  test('the same key id with a different key fails authentication', async () => {
    const [payload] = await new AesGcmPayloadCodec({ keys: parseKeyRing(k1) }).encode([toPayload('x')]);
    const impostor = new AesGcmPayloadCodec({ keys: parseKeyRing(keyText('k1')) });
    expect((await decodeError(impostor, payload)).reason).toBe('authentication_failed');
  });

  test('an encrypted payload without a key id is refused', async () => {
    const codec = new AesGcmPayloadCodec({ keys: parseKeyRing(k1) });
    const [payload] = await codec.encode([toPayload('x')]);
    const { [METADATA_KEY_ID]: _dropped, ...metadata } = payload.metadata!;
    expect((await decodeError(codec, { ...payload, metadata })).reason).toBe('missing_key_id');
  });

  test('passes through payloads that were never encrypted (histories recorded before encryption)', async () => {
    const codec = new AesGcmPayloadCodec({ keys: parseKeyRing(k1) });
    const plain = [toPayload({ text: 'hello' }), toPayload(undefined), { metadata: {}, data: new Uint8Array([7]) }];
    const decoded = await codec.decode(plain);
    expect(decoded).toEqual(plain);
  });

  test('with encryption off, encode passes through and decode still reads encrypted payloads', async () => {
    const [encrypted] = await new AesGcmPayloadCodec({ keys: parseKeyRing(k1) }).encode([toPayload('secret')]);
    const off = new AesGcmPayloadCodec({ keys: parseKeyRing(k1), encrypt: false });
    const plain = toPayload('plain');
    expect(await off.encode([plain])).toEqual([plain]);
    expect(off.activeKeyId).toBeUndefined();
    expect((await off.decode([encrypted])).map(fromPayload)).toEqual(['secret']);
  });

  test('refuses to be built to encrypt without keys', () => {
    expect(() => new AesGcmPayloadCodec({})).toThrow(/no keys/);
  });
});

describe('codec server JSON form', () => {
  test('round-trips payloads through protobuf JSON (base64 bytes)', async () => {
    const codec = new AesGcmPayloadCodec({ keys: parseKeyRing(k1) });
    const encoded = await codec.encode([toPayload({ a: 1 })]);
    const json = JSON.parse(JSON.stringify(payloadsToJson(encoded)));
    expect(json.payloads[0].metadata.encoding).toBe(Buffer.from(ENCODING_ENCRYPTED).toString('base64'));
    const parsed = payloadsFromJson(json);
    if (!('payloads' in parsed)) throw new Error('expected payloads');
    expect((await codec.decode(parsed.payloads)).map(fromPayload)).toEqual([{ a: 1 }]);
  });

  test('accepts URL-safe base64 and a payload without data, and ignores unknown fields', () => {
    const parsed = payloadsFromJson({ payloads: [{ metadata: { encoding: 'YmluYXJ5L251bGw' }, extra: 1 }, { data: '-_8' }] });
    if (!('payloads' in parsed)) throw new Error('expected payloads');
    expect(str(parsed.payloads[0].metadata?.encoding)).toBe('binary/null');
    expect(parsed.payloads[0].data).toHaveLength(0);
    expect([...parsed.payloads[1].data!]).toEqual([0xfb, 0xff]);
  });

  test.each([
    [undefined, ['/payloads']],
    [{ payloads: 'x' }, ['/payloads']],
    [{ payloads: [1] }, ['/payloads/0']],
    [{ payloads: [{ data: 'not base64!' }] }, ['/payloads/0/data']],
    [{ payloads: [{ metadata: { 'a/b': 5 } }] }, ['/payloads/0/metadata/a~1b']],
    [{ payloads: [{ metadata: [] }] }, ['/payloads/0/metadata']],
  ])('names what is wrong in %j', (body, paths) => {
    const parsed = payloadsFromJson(body);
    expect('errors' in parsed ? parsed.errors.map((e) => e.path) : []).toEqual(paths);
  });
});
