import { payloadsFromJson, payloadsToJson } from '../../../src/codec/payload-json';

describe('payloadsFromJson', () => {
  test('reads payloads in protobuf JSON form and writes them back the same', () => {
    const body = { payloads: [{ metadata: { encoding: Buffer.from('json/plain').toString('base64') }, data: Buffer.from('{"a":1}').toString('base64') }] };
    const read = payloadsFromJson(body);
    expect('payloads' in read && Buffer.from(read.payloads[0].data!).toString()).toBe('{"a":1}');
    expect(payloadsToJson((read as { payloads: never[] }).payloads)).toEqual(body);
  });

  test('refuses text that is not base64: one character short of a byte, or padding in the wrong place', () => {
    for (const data of ['A', 'AAAAA', 'AA=A', 'A===', 'not base64!']) {
      expect(payloadsFromJson({ payloads: [{ data }] })).toEqual({ errors: [{ path: '/payloads/0/data', message: 'must be a base64 string' }] });
    }
    for (const data of ['', 'AA', 'AAA', 'AA==', 'AAA=', 'AAAA', 'A-_A']) expect(payloadsFromJson({ payloads: [{ data }] })).toHaveProperty('payloads');
  });

  test('refuses a __proto__ metadata key instead of dropping it', () => {
    expect(payloadsFromJson(JSON.parse('{"payloads": [{"metadata": {"__proto__": "AA=="}, "data": ""}]}'))).toEqual({
      errors: [{ path: '/payloads/0/metadata/__proto__', message: 'the key "__proto__" is not allowed' }],
    });
  });

  test('names the first 20 problems and says there are more', () => {
    const metadata = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`k${i}`, '!']));
    const read = payloadsFromJson({ payloads: [{ metadata }, { metadata }] });
    expect('errors' in read && read.errors).toHaveLength(21);
    expect('errors' in read && read.errors[20]).toEqual({ path: '', message: 'more problems are not listed (the first 20 are)' });
  });
});
