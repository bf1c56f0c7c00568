import { canonicalJson, definitionHash, pipelineDefinitionSchema } from '../../../src/pipelines';

const source = {
  name: 'demo',
  version: 1,
  description: 'A one-stage pipeline.',
  input: { type: 'object', properties: { text: { type: 'string' } } },
  limits: { runTimeout: '60m' },
  stages: [{ name: 'redact', agent: 'pii-redact', with: { text: '${input.text}' } }],
};

describe('definitionHash', () => {
  it('is stable across key order and duration spelling', () => {
    const a = pipelineDefinitionSchema.parse(source);
    const reordered = {
      stages: [{ with: { text: '${input.text}' }, agent: 'pii-redact', name: 'redact' }],
      limits: { runTimeout: '1h' },
      input: { properties: { text: { type: 'string' } }, type: 'object' },
      description: 'A one-stage pipeline.',
      version: 1,
      name: 'demo',
    };
    const b = pipelineDefinitionSchema.parse(reordered);
    expect(definitionHash(a)).toMatch(/^[0-9a-f]{64}$/);
    expect(definitionHash(b)).toBe(definitionHash(a));
  });

  it('changes when behaviour changes', () => {
    const a = pipelineDefinitionSchema.parse(source);
    const b = pipelineDefinitionSchema.parse({ ...source, version: 2 });
    const c = pipelineDefinitionSchema.parse({ ...source, stages: [{ ...source.stages[0], timeout: '31s' }] });
    expect(new Set([definitionHash(a), definitionHash(b), definitionHash(c)]).size).toBe(3);
  });

  it('canonical JSON sorts keys at every depth and keeps array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, 1], c: undefined, b: null } })).toBe('{"a":{"b":null,"d":[2,1]},"b":1}');
  });
});
