import {
  DEFAULT_ACCESS,
  parseDuration,
  pipelineDefinitionSchema,
  type PipelineDefinitionSource,
} from '../../../src/pipelines';

function source(overrides: Partial<PipelineDefinitionSource> = {}): PipelineDefinitionSource {
  return {
    name: 'demo',
    version: 1,
    description: 'A one-stage pipeline.',
    input: { type: 'object', properties: { text: { type: 'string' } } },
    stages: [{ name: 'redact', agent: 'pii-redact', with: { text: '${input.text}' } }],
    ...overrides,
  };
}

function issuesOf(value: unknown): { path: string; message: string; code: string }[] {
  const result = pipelineDefinitionSchema.safeParse(value);
  if (result.success) throw new Error('expected the definition to be rejected');
  return result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message, code: i.code }));
}

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['30s', 30_000],
    ['10m', 600_000],
    ['1h', 3_600_000],
    ['2d', 172_800_000],
    ['1h30m', 5_400_000],
    ['1m30s500ms', 90_500],
  ])('parses %s as %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', '0s', '30', '1.5s', '-1s', '30x', '1m1h', '30 s', 's', '1s1s'])('rejects %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('pipelineDefinitionSchema', () => {
  it('fills in defaults and normalises durations to milliseconds', () => {
    const def = pipelineDefinitionSchema.parse(source());
    expect(def.access).toEqual(DEFAULT_ACCESS);
    expect(def.limits).toEqual({ runTimeoutMs: 3_600_000, maxConcurrentRuns: 100, maxInputBytes: 65_536 });
    expect(def.stages[0]).toEqual({
      kind: 'agent',
      name: 'redact',
      agent: 'pii-redact',
      with: { text: '${input.text}' },
      timeoutMs: 30_000,
      retry: { maximumAttempts: 3, initialIntervalMs: 1_000, backoffCoefficient: 2, maximumIntervalMs: 30_000 },
    });
  });

  it('parses every duration field', () => {
    const def = pipelineDefinitionSchema.parse(
      source({
        limits: { runTimeout: '10m', maxConcurrentRuns: 5, maxInputBytes: 1024 },
        stages: [
          {
            name: 'redact',
            agent: 'pii-redact',
            timeout: '45s',
            heartbeatTimeout: '5s',
            taskQueue: 'agentry-slow',
            retry: { maximumAttempts: 5, initialInterval: '250ms', backoffCoefficient: 1.5, maximumInterval: '1m' },
            when: { ref: 'input.text', exists: true },
          },
        ],
      }),
    );
    expect(def.limits).toEqual({ runTimeoutMs: 600_000, maxConcurrentRuns: 5, maxInputBytes: 1024 });
    expect(def.stages[0]).toEqual({
      kind: 'agent',
      name: 'redact',
      agent: 'pii-redact',
      with: {},
      timeoutMs: 45_000,
      heartbeatTimeoutMs: 5_000,
      taskQueue: 'agentry-slow',
      retry: { maximumAttempts: 5, initialIntervalMs: 250, backoffCoefficient: 1.5, maximumIntervalMs: 60_000 },
      when: { ref: 'input.text', exists: true },
    });
  });

  it('produces plain JSON that survives a round trip unchanged', () => {
    const def = pipelineDefinitionSchema.parse(source({ stages: [{ name: 'a', agent: 'x', when: { not: { ref: 'input.text', eq: null } } }] }));
    expect(JSON.parse(JSON.stringify(def))).toEqual(def);
    expect(Object.keys(def.stages[0]!)).not.toContain('taskQueue');
  });

  it('keeps access lists as given and defaults the ones left out', () => {
    const def = pipelineDefinitionSchema.parse(source({ access: { start: ['admin'], cancel: [] } }));
    expect(def.access.start).toEqual(['admin']);
    expect(def.access.cancel).toEqual([]);
    expect(def.access.read).toEqual(DEFAULT_ACCESS.read);
  });

  it('rejects unknown keys at every level', () => {
    const issues = issuesOf({
      ...source(),
      owner: 'me',
      access: { start: ['admin'], delete: ['admin'] },
      limits: { runTimeout: '1h', maxRuns: 3 },
      stages: [
        {
          name: 'redact',
          agent: 'pii-redact',
          retries: 3,
          retry: { attempts: 2 },
          when: { all: [{ ref: 'input.text', exists: true, exist: true }] },
        },
      ],
    });
    const unknown = issues.map((i) => i.path);
    expect(unknown).toEqual(
      expect.arrayContaining(['', 'access', 'limits', 'stages.0', 'stages.0.retry', 'stages.0.when.all.0']),
    );
  });

  it('rejects bad names, versions, roles and stage names', () => {
    expect(issuesOf(source({ name: 'Support_Triage' }))[0]?.path).toBe('name');
    expect(issuesOf(source({ name: 'a'.repeat(64) }))[0]?.path).toBe('name');
    expect(issuesOf(source({ version: 0 }))[0]?.path).toBe('version');
    expect(issuesOf(source({ version: 1.5 }))[0]?.path).toBe('version');
    expect(issuesOf(source({ access: { start: ['root' as never] } }))[0]?.path).toBe('access.start.0');
    expect(issuesOf(source({ stages: [] }))[0]?.path).toBe('stages');
    expect(issuesOf(source({ stages: [{ name: 'input', agent: 'x' }] }))[0]?.message).toMatch(/reserved/);
    expect(issuesOf(source({ stages: [{ name: 'Classify', agent: 'x' }] }))[0]?.path).toBe('stages.0.name');
  });

  it('rejects out-of-range retry settings and inconsistent timeouts', () => {
    const stage = (extra: object) => source({ stages: [{ name: 'a', agent: 'x', ...extra }] });
    expect(issuesOf(stage({ retry: { maximumAttempts: 21 } }))[0]?.path).toBe('stages.0.retry.maximumAttempts');
    expect(issuesOf(stage({ retry: { backoffCoefficient: 0.5 } }))[0]?.path).toBe('stages.0.retry.backoffCoefficient');
    expect(issuesOf(stage({ retry: { initialInterval: '1m', maximumInterval: '1s' } }))[0]?.path).toBe(
      'stages.0.retry.maximumInterval',
    );
    expect(issuesOf(stage({ timeout: '10s', heartbeatTimeout: '10s' }))[0]?.path).toBe('stages.0.heartbeatTimeout');
    expect(issuesOf({ ...stage({ timeout: '2h' }), limits: { runTimeout: '1h' } })[0]?.path).toBe('stages.0.timeout');
  });

  it('rejects duplicate stage names', () => {
    const issues = issuesOf(source({ stages: [{ name: 'a', agent: 'x' }, { name: 'a', agent: 'y' }] }));
    expect(issues).toEqual([expect.objectContaining({ path: 'stages.1.name', message: 'duplicate stage name "a"' })]);
  });

  it('rejects malformed conditions', () => {
    const when = (condition: unknown) => source({ stages: [{ name: 'a', agent: 'x', when: condition as never }] });
    expect(issuesOf(when({ ref: 'input.text' }))[0]?.message).toMatch(/no operator/);
    expect(issuesOf(when({ ref: 'input.text', matches: '^a' }))[0]?.path).toBe('stages.0.when');
    expect(issuesOf(when({ ref: 'input text', eq: 1 }))[0]?.path).toBe('stages.0.when.ref');
    expect(issuesOf(when({ ref: 'input.text', in: 'a' }))[0]?.path).toBe('stages.0.when.in');
    expect(issuesOf(when({ any: [] }))[0]?.path).toBe('stages.0.when.any');
    expect(issuesOf(when({ not: { ref: 'input.text', lt: true } }))[0]?.path).toBe('stages.0.when.not.lt');
    expect(issuesOf(when('input.text == 1'))[0]?.path).toBe('stages.0.when');
  });

  it('requires an input schema that describes an object and compiles', () => {
    expect(issuesOf(source({ input: { type: 'string' } }))[0]?.path).toBe('input.type');
    expect(issuesOf(source({ input: { type: 'object', properties: { a: { type: 'strin' } } } }))[0]?.message).toMatch(
      /does not compile/,
    );
    // Strict mode catches misspelt keywords that would otherwise accept anything.
    expect(issuesOf(source({ input: { type: 'object', properties: { a: { maxLenght: 3 } } } }))[0]?.message).toMatch(
      /maxLenght/,
    );
  });

  it('accepts a draft-07 input schema when $schema says so', () => {
    const input = {
      $schema: 'http://json-schema.org/draft-07/schema#',
      type: 'object',
      properties: { when: { type: 'string', format: 'date-time' } },
      definitions: { unused: { type: 'string' } },
    };
    expect(pipelineDefinitionSchema.parse(source({ input })).input).toEqual(input);
  });
});
