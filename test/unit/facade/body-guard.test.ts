import { bodyProblemError, inspectJson } from '../../../src/facade/body-guard';
import { hasLoneSurrogate } from '../../../src/security/unicode';

const parse = (text: string): unknown => JSON.parse(text);

describe('inspectJson', () => {
  test.each(['__proto__', 'constructor', 'prototype'])('refuses the key %s at any depth, naming its JSON path', (key) => {
    expect(inspectJson(parse(`{"${key}": {"polluted": true}}`))).toEqual([
      { code: 'forbidden_key', path: `/${key}`, message: `the key "${key}" is not allowed` },
    ]);
    expect(inspectJson(parse(`{"input": {"items": [{"ok": 1}, {"${key}": {}}]}}`))).toEqual([
      expect.objectContaining({ code: 'forbidden_key', path: `/input/items/1/${key}` }),
    ]);
  });

  test('refuses numbers JSON.parse reads as ±Infinity, and keeps large finite ones', () => {
    expect(inspectJson(parse('{"input": {"n": 1e400, "m": [-1e999], "ok": 1.7e308, "tiny": 1e-400}}'))).toEqual([
      { code: 'number_out_of_range', path: '/input/n', message: 'is a number too large to represent (beyond ±1.8e308)' },
      { code: 'number_out_of_range', path: '/input/m/0', message: 'is a number too large to represent (beyond ±1.8e308)' },
    ]);
  });

  test('lets look-alike keys through', () => {
    expect(inspectJson(parse('{"proto": 1, "__proto": 2, "Constructor": 3, "prototypes": 4, "text": "__proto__"}'))).toEqual([]);
  });

  test('escapes ~ and / in paths as JSON Pointer does', () => {
    expect(inspectJson(parse('{"a/b": {"c~d": {"__proto__": 1}}}'))[0].path).toBe('/a~1b/c~0d/__proto__');
  });

  test('refuses lone surrogates in values and keys, high or low, at their path', () => {
    expect(inspectJson(parse('{"input": {"text": "ok \\ud800 then"}}'))).toEqual([
      { code: 'invalid_unicode', path: '/input/text', message: 'contains a lone UTF-16 surrogate' },
    ]);
    expect(inspectJson(parse('["\\udc00"]'))[0]).toMatchObject({ code: 'invalid_unicode', path: '/0' });
    expect(inspectJson(parse('{"x": "\\udc00\\ud800"}'))[0]).toMatchObject({ code: 'invalid_unicode', path: '/x' });
    expect(inspectJson(parse('{"k\\ud83d": 1}'))[0]).toMatchObject({ code: 'invalid_unicode', message: 'the key contains a lone UTF-16 surrogate' });
    expect(inspectJson(parse('{"x": "end \\ud83d"}'))[0]).toMatchObject({ code: 'invalid_unicode' });
  });

  test('accepts emoji, CJK, right-to-left text and escaped surrogate pairs', () => {
    const text = 'Grüße 👋🏽 東京 𠮷 مرحبا שלום 👩‍💻 🇯🇵 e\u0301';
    expect(inspectJson({ input: { text } })).toEqual([]);
    expect(inspectJson(parse('{"t": "\\ud83d\\ude00"}'))).toEqual([]);
    expect(hasLoneSurrogate(text)).toBe(false);
  });

  test('refuses nesting beyond the limit without overflowing the stack', () => {
    const nested = (depth: number) => parse(`${'['.repeat(depth)}${']'.repeat(depth)}`);
    expect(inspectJson(nested(64))).toEqual([]);
    expect(inspectJson(nested(65))).toEqual([expect.objectContaining({ code: 'nesting_too_deep', path: `${'/0'.repeat(64)}` })]);
    expect(inspectJson(nested(100_000))).toEqual([expect.objectContaining({ code: 'nesting_too_deep' })]);
    expect(inspectJson(parse('{"a": {"b": 1}}'), { maxDepth: 1 })).toEqual([expect.objectContaining({ code: 'nesting_too_deep', path: '/a' })]);
  });

  test('reports problems in document order and stops at maxProblems', () => {
    const problems = inspectJson(parse('{"a": "\\ud800", "b": {"__proto__": 1}, "c": [{"constructor": 1}]}'));
    expect(problems.map((p) => `${p.code} ${p.path}`)).toEqual(['invalid_unicode /a', 'forbidden_key /b/__proto__', 'forbidden_key /c/0/constructor']);
    const many = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, { prototype: 1 }]));
    expect(inspectJson(many, { maxProblems: 3 })).toHaveLength(3);
  });

  test('ignores primitives', () => {
    expect(inspectJson(null)).toEqual([]);
    expect(inspectJson(42)).toEqual([]);
  });
});

test('bodyProblemError answers 400 with the first code and every path', () => {
  const err = bodyProblemError(inspectJson(parse('{"__proto__": 1, "x": "\\ud800"}')));
  expect(err).toMatchObject({ status: 400, code: 'forbidden_key', detail: '/__proto__ the key "__proto__" is not allowed' });
  expect(err.extra.errors).toEqual([
    { path: '/__proto__', code: 'forbidden_key', message: 'the key "__proto__" is not allowed' },
    { path: '/x', code: 'invalid_unicode', message: 'contains a lone UTF-16 surrogate' },
  ]);
});
