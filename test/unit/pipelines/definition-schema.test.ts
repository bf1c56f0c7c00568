import {
  DEFAULT_ACCESS,
  DEFAULT_APPROVAL_ESCALATE_TO,
  DEFAULT_APPROVAL_ON_TIMEOUT,
  DEFAULT_PARALLEL_MAX_CONCURRENCY,
  DEFAULT_RETRY,
  MAX_PARALLEL_STAGES,
  RESERVED_SIGNAL_NAMES,
  RESERVED_STAGE_NAMES,
  createPipelineDefinitionSchema,
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

describe('approval stages', () => {
  const withApproval = (approval: Record<string, unknown>, extra: object = {}) =>
    source({
      stages: [
        { name: 'redact', agent: 'pii-redact', with: { text: '${input.text}' } },
        { name: 'review', approval, ...extra } as never,
      ],
    });
  const parse = (approval: Record<string, unknown>, extra: object = {}) =>
    pipelineDefinitionSchema.parse(withApproval(approval, extra)).stages[1];

  it('fills in the defaults of a reject-on-timeout approval', () => {
    expect(parse({ roles: ['approver'], timeout: '1h' })).toEqual({
      kind: 'approval',
      name: 'review',
      roles: ['approver'],
      timeoutMs: 3_600_000,
      onTimeout: 'reject',
      escalateTo: [],
      escalationTimeoutMs: 0,
      allowSelfApproval: false,
    });
    expect(DEFAULT_APPROVAL_ON_TIMEOUT).toBe('reject');
  });

  it('defaults escalation to admin for as long as the first timeout', () => {
    expect(parse({ roles: ['approver', 'admin', 'approver'], timeout: '30m', onTimeout: 'escalate' })).toMatchObject({
      roles: ['approver', 'admin'],
      onTimeout: 'escalate',
      escalateTo: [...DEFAULT_APPROVAL_ESCALATE_TO],
      escalationTimeoutMs: 1_800_000,
    });
    expect(DEFAULT_APPROVAL_ESCALATE_TO).toEqual(['admin']);
  });

  it('keeps every field as authored, including when', () => {
    const stage = parse(
      {
        roles: ['approver'],
        timeout: '30m',
        onTimeout: 'escalate',
        escalateTo: ['admin', 'operator'],
        escalationTimeout: '15m',
        allowSelfApproval: true,
      },
      { when: { ref: 'redact.text', exists: true } },
    );
    expect(stage).toEqual({
      kind: 'approval',
      name: 'review',
      when: { ref: 'redact.text', exists: true },
      roles: ['approver'],
      timeoutMs: 1_800_000,
      onTimeout: 'escalate',
      escalateTo: ['admin', 'operator'],
      escalationTimeoutMs: 900_000,
      allowSelfApproval: true,
    });
    expect(parse({ roles: ['admin'], timeout: '1m', onTimeout: 'approve' })).toMatchObject({ onTimeout: 'approve' });
  });

  it('rejects missing, empty and unknown roles and a missing or bad timeout', () => {
    expect(issuesOf(withApproval({ timeout: '1h' }))[0]).toMatchObject({ path: 'stages.1.approval.roles', code: 'invalid_type' });
    expect(issuesOf(withApproval({ roles: [], timeout: '1h' }))[0]?.path).toBe('stages.1.approval.roles');
    expect(issuesOf(withApproval({ roles: ['boss'], timeout: '1h' }))[0]?.path).toBe('stages.1.approval.roles.0');
    expect(issuesOf(withApproval({ roles: ['admin'] }))[0]).toMatchObject({ path: 'stages.1.approval.timeout', code: 'invalid_type' });
    expect(issuesOf(withApproval({ roles: ['admin'], timeout: 'a day' }))[0]?.path).toBe('stages.1.approval.timeout');
    expect(issuesOf(withApproval({ roles: ['admin'], timeout: '1h', onTimeout: 'ignore' }))[0]).toMatchObject({
      path: 'stages.1.approval.onTimeout',
      message: 'expected one of: reject, approve, escalate',
    });
    expect(issuesOf(withApproval({ roles: ['admin'], timeout: '1h', allowSelfApproval: 'no' }))[0]?.path).toBe(
      'stages.1.approval.allowSelfApproval',
    );
    expect(issuesOf(withApproval({ roles: ['admin'], timeout: '1h', escalate: true }))[0]).toMatchObject({
      path: 'stages.1.approval',
      code: 'unrecognized_keys',
    });
  });

  it('allows escalateTo and escalationTimeout only with onTimeout: escalate', () => {
    expect(issuesOf(withApproval({ roles: ['admin'], timeout: '1h', escalateTo: ['admin'] }))).toEqual([
      expect.objectContaining({ path: 'stages.1.approval.escalateTo', message: 'escalateTo applies only with onTimeout: escalate' }),
    ]);
    expect(
      issuesOf(withApproval({ roles: ['admin'], timeout: '1h', onTimeout: 'approve', escalationTimeout: '1h' }))[0]?.path,
    ).toBe('stages.1.approval.escalationTimeout');
    expect(
      issuesOf(withApproval({ roles: ['admin'], timeout: '1h', onTimeout: 'escalate', escalateTo: [] }))[0]?.path,
    ).toBe('stages.1.approval.escalateTo');
  });

  it('rejects agent keys on an approval stage, and waits longer than the run may last', () => {
    expect(issuesOf(withApproval({ roles: ['admin'], timeout: '1h' }, { agent: 'x' }))[0]).toMatchObject({
      path: 'stages.1',
      code: 'unrecognized_keys',
    });
    const long = (approval: Record<string, unknown>) => ({ ...withApproval(approval), limits: { runTimeout: '2h' } });
    expect(issuesOf(long({ roles: ['admin'], timeout: '3h' }))[0]?.path).toBe('stages.1.approval.timeout');
    expect(issuesOf(long({ roles: ['admin'], timeout: '1h', onTimeout: 'escalate', escalationTimeout: '90m' }))[0]).toMatchObject({
      path: 'stages.1.approval.escalationTimeout',
      message: 'the approval timeout plus escalationTimeout is longer than limits.runTimeout',
    });
    expect(() => pipelineDefinitionSchema.parse(long({ roles: ['admin'], timeout: '1h', onTimeout: 'escalate' }))).not.toThrow();
  });
});

describe('parallel groups', () => {
  const member = (name: string, extra: object = {}) => ({ name, agent: 'lookup', ...extra });
  const withGroup = (parallel: Record<string, unknown>, extra: object = {}) =>
    source({ stages: [{ name: 'redact', agent: 'pii-redact' }, { name: 'enrich', parallel, ...extra } as never] });

  it('fills in maxConcurrency 4 and failFast, and parses members like top-level agent stages', () => {
    const def = pipelineDefinitionSchema.parse(withGroup({ stages: [member('geo', { timeout: '5s' }), member('risk')] }));
    expect(def.stages[1]).toEqual({
      kind: 'parallel',
      name: 'enrich',
      maxConcurrency: DEFAULT_PARALLEL_MAX_CONCURRENCY,
      onFailure: 'failFast',
      stages: [
        { kind: 'agent', name: 'geo', agent: 'lookup', with: {}, timeoutMs: 5_000, retry: { ...DEFAULT_RETRY } },
        { kind: 'agent', name: 'risk', agent: 'lookup', with: {}, timeoutMs: 30_000, retry: { ...DEFAULT_RETRY } },
      ],
    });
    expect(DEFAULT_PARALLEL_MAX_CONCURRENCY).toBe(4);
    expect(JSON.parse(JSON.stringify(def))).toEqual(def);
  });

  it('keeps maxConcurrency, onFailure and when as authored', () => {
    const def = pipelineDefinitionSchema.parse(
      withGroup({ maxConcurrency: 1, onFailure: 'collect', stages: [member('geo')] }, { when: { ref: 'input.text', exists: true } }),
    );
    expect(def.stages[1]).toMatchObject({ maxConcurrency: 1, onFailure: 'collect', when: { ref: 'input.text', exists: true } });
  });

  it('rejects bad settings, an empty group and nested approvals or groups', () => {
    expect(issuesOf(withGroup({ maxConcurrency: 0, stages: [member('a')] }))[0]?.path).toBe('stages.1.parallel.maxConcurrency');
    expect(issuesOf(withGroup({ maxConcurrency: 2.5, stages: [member('a')] }))[0]?.path).toBe('stages.1.parallel.maxConcurrency');
    expect(issuesOf(withGroup({ onFailure: 'ignore', stages: [member('a')] }))[0]?.path).toBe('stages.1.parallel.onFailure');
    expect(issuesOf(withGroup({ stages: [] }))[0]).toMatchObject({
      path: 'stages.1.parallel.stages',
      message: 'a parallel group needs at least one stage',
    });
    expect(issuesOf(withGroup({}))[0]).toMatchObject({ path: 'stages.1.parallel.stages', code: 'invalid_type' });
    expect(issuesOf(withGroup({ stages: [member('a')], retry: {} }))[0]?.path).toBe('stages.1.parallel');
    expect(issuesOf(withGroup({ stages: [{ name: 'ok', approval: { roles: ['admin'], timeout: '1h' } }] }))).toEqual([
      expect.objectContaining({
        path: 'stages.1.parallel.stages.0.approval',
        message: 'a parallel group holds agent stages only, not approval stages',
      }),
    ]);
    expect(issuesOf(withGroup({ stages: [{ name: 'inner', parallel: { stages: [member('a')] } }] }))[0]).toMatchObject({
      path: 'stages.1.parallel.stages.0.parallel',
      message: 'a parallel group holds agent stages only, not parallel stages',
    });
    // A member's own problems keep their code and path, so the loader can still say "missing required field".
    expect(issuesOf(withGroup({ stages: [{ name: 'a' }] }))[0]).toMatchObject({
      path: 'stages.1.parallel.stages.0.agent',
      code: 'invalid_type',
    });
    const slowMember = { ...withGroup({ stages: [member('a', { timeout: '2h' })] }), limits: { runTimeout: '1h' } };
    expect(issuesOf(slowMember)[0]?.path).toBe('stages.1.parallel.stages.0.timeout');
  });

  it(`limits a group to MAX_PARALLEL_STAGES (${MAX_PARALLEL_STAGES}) stages and concurrency`, () => {
    const members = (n: number) => Array.from({ length: n }, (_, i) => member(`m${i}`));
    expect(MAX_PARALLEL_STAGES).toBe(50);
    expect(() => pipelineDefinitionSchema.parse(withGroup({ stages: members(50), maxConcurrency: 50 }))).not.toThrow();
    expect(issuesOf(withGroup({ stages: members(51) }))).toEqual([
      expect.objectContaining({
        path: 'stages.1.parallel.stages',
        message: expect.stringContaining('a parallel group may hold at most 50 stages (this one has 51)'),
      }),
    ]);
    // Reported even when members have problems of their own.
    expect(issuesOf(withGroup({ stages: [...members(50), { name: 'broken' }] })).map((i) => i.path)).toEqual([
      'stages.1.parallel.stages.50.agent',
      'stages.1.parallel.stages',
    ]);
    expect(issuesOf(withGroup({ stages: members(2), maxConcurrency: 51 }))).toEqual([
      expect.objectContaining({ path: 'stages.1.parallel.maxConcurrency', message: 'maxConcurrency may be at most 50' }),
    ]);
  });

  it('takes another limit from createPipelineDefinitionSchema', () => {
    const members = (n: number) => Array.from({ length: n }, (_, i) => member(`m${i}`));
    const small = createPipelineDefinitionSchema({ maxParallelStages: 2 });
    expect(small.safeParse(withGroup({ stages: members(2), maxConcurrency: 2 })).success).toBe(true);
    expect(small.safeParse(withGroup({ stages: members(3), maxConcurrency: 2 })).error?.issues[0]?.path).toEqual([
      'stages',
      1,
      'parallel',
      'stages',
    ]);
    // The default maxConcurrency (4) gives way to a lower limit; an authored one above it is an error.
    expect(small.parse(withGroup({ stages: members(1) })).stages[1]).toMatchObject({ maxConcurrency: 2 });
    expect(small.safeParse(withGroup({ stages: members(1), maxConcurrency: 3 })).error?.issues[0]).toMatchObject({
      path: ['stages', 1, 'parallel', 'maxConcurrency'],
      message: 'maxConcurrency may be at most 2',
    });
    expect(createPipelineDefinitionSchema({ maxParallelStages: 60 }).safeParse(withGroup({ stages: members(60) })).success).toBe(true);
    expect(() => createPipelineDefinitionSchema({ maxParallelStages: 0 })).toThrow(RangeError);
    expect(() => createPipelineDefinitionSchema({ maxParallelStages: 1.5 })).toThrow(RangeError);
  });
});

describe('stage names across the definition', () => {
  it('must be unique across top-level stages, group members and onCancel', () => {
    const dup = (stages: unknown[], onCancel: unknown[] = []) =>
      issuesOf(source({ stages: stages as never, onCancel: onCancel as never })).map((i) => [i.path, i.message]);
    expect(
      dup([
        { name: 'a', agent: 'x' },
        { name: 'g', parallel: { stages: [{ name: 'a', agent: 'x' }] } },
      ]),
    ).toEqual([['stages.1.parallel.stages.0.name', 'duplicate stage name "a"']]);
    expect(
      dup([
        { name: 'g', parallel: { stages: [{ name: 'b', agent: 'x' }] } },
        { name: 'h', parallel: { stages: [{ name: 'b', agent: 'x' }] } },
      ]),
    ).toEqual([['stages.1.parallel.stages.0.name', 'duplicate stage name "b"']]);
    expect(dup([{ name: 'g', parallel: { stages: [{ name: 'g', agent: 'x' }] } }])).toEqual([
      ['stages.0.parallel.stages.0.name', 'duplicate stage name "g"'],
    ]);
    expect(dup([{ name: 'a', agent: 'x' }], [{ name: 'a', agent: 'y' }])).toEqual([['onCancel.0.name', 'duplicate stage name "a"']]);
    expect(dup([{ name: 'a', approval: { roles: ['admin'], timeout: '1h' } }, { name: 'a', agent: 'x' }])).toEqual([
      ['stages.1.name', 'duplicate stage name "a"'],
    ]);
  });

  it('reserves input and signals, for every kind of stage', () => {
    expect(RESERVED_STAGE_NAMES).toEqual(['input', 'signals']);
    expect(issuesOf(source({ stages: [{ name: 'signals', agent: 'x' }] }))[0]).toMatchObject({
      path: 'stages.0.name',
      message: '"signals" is reserved for signal payloads',
    });
    expect(issuesOf(source({ stages: [{ name: 'input', approval: { roles: ['admin'], timeout: '1h' } } as never] }))[0]?.path).toBe(
      'stages.0.name',
    );
    expect(
      issuesOf(source({ stages: [{ name: 'g', parallel: { stages: [{ name: 'signals', agent: 'x' }] } } as never] }))[0]?.path,
    ).toBe('stages.0.parallel.stages.0.name');
  });

  it('still reports a stage that is not an object', () => {
    expect(issuesOf(source({ stages: ['redact' as never] }))[0]).toMatchObject({
      path: 'stages.0',
      message: 'expected a stage object (with agent, approval or parallel)',
    });
  });
});

describe('signals', () => {
  it('default to none and keep their order', () => {
    expect(pipelineDefinitionSchema.parse(source()).signals).toEqual([]);
    expect(pipelineDefinitionSchema.parse(source({ signals: ['note', 'priority', 'x_1-b'] })).signals).toEqual([
      'note',
      'priority',
      'x_1-b',
    ]);
  });

  it('rejects malformed, over-long, reserved and duplicate names', () => {
    expect(issuesOf(source({ signals: ['Note'] }))[0]?.path).toBe('signals.0');
    expect(issuesOf(source({ signals: ['1note'] }))[0]?.path).toBe('signals.0');
    expect(issuesOf(source({ signals: ['note', 'a'.repeat(64)] }))[0]?.path).toBe('signals.1');
    expect(() => pipelineDefinitionSchema.parse(source({ signals: ['a'.repeat(63)] }))).not.toThrow();
    for (const reserved of RESERVED_SIGNAL_NAMES) {
      expect(issuesOf(source({ signals: [reserved] }))[0]).toMatchObject({
        path: 'signals.0',
        message: 'reserved signal name (reserved: approve, cancel)',
      });
    }
    expect(issuesOf(source({ signals: ['note', 'priority', 'note'] }))).toEqual([
      expect.objectContaining({ path: 'signals.2', message: 'duplicate signal name "note"' }),
    ]);
    expect(issuesOf(source({ signals: 'note' as never }))[0]?.path).toBe('signals');
  });
});

describe('onCancel', () => {
  it('defaults to no stages and parses agent stages', () => {
    expect(pipelineDefinitionSchema.parse(source()).onCancel).toEqual([]);
    const def = pipelineDefinitionSchema.parse(
      source({ onCancel: [{ name: 'undo', agent: 'lookup', with: { key: '${redact.text}' }, timeout: '5s' }] }),
    );
    expect(def.onCancel).toEqual([
      { kind: 'agent', name: 'undo', agent: 'lookup', with: { key: '${redact.text}' }, timeoutMs: 5_000, retry: { ...DEFAULT_RETRY } },
    ]);
  });

  it('holds agent stages only, with the usual checks', () => {
    expect(issuesOf(source({ onCancel: [{ name: 'ask', approval: { roles: ['admin'], timeout: '1h' } } as never] }))).toEqual([
      expect.objectContaining({ path: 'onCancel.0.approval', message: 'onCancel holds agent stages only, not approval stages' }),
    ]);
    expect(issuesOf(source({ onCancel: [{ name: 'undo' } as never] }))[0]).toMatchObject({ path: 'onCancel.0.agent', code: 'invalid_type' });
    expect(
      issuesOf({ ...source({ onCancel: [{ name: 'undo', agent: 'x', timeout: '2h' }] }), limits: { runTimeout: '1h' } })[0]?.path,
    ).toBe('onCancel.0.timeout');
  });
});
