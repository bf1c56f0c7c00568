import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import {
  MAX_PARALLEL_STAGES,
  PipelineDefinitionError,
  definitionHash,
  loadPipelineDir,
  loadPipelineFile,
  parsePipelineText,
  type AgentStage,
  type PipelineDefinition,
  type PipelineLoaderOptions,
  type PipelineProblem,
} from '../../../src/pipelines';
import { fakeAgentCatalog } from './fake-agent-catalog';

const DEFINITIONS = join(__dirname, '../../../src/pipelines/definitions');
const FIXTURES = join(__dirname, '../../fixtures/pipelines');
const agents = fakeAgentCatalog();

const TEAMS = ['cards', 'payments', 'transfers', 'top-ups', 'account', 'security', 'fx', 'general-support'];

/** A valid two-stage definition to break one piece at a time; keep each interesting token on its own line. */
const BASE = `name: triage-lite
version: 1
description: Redact, then classify.
input:
  type: object
  properties:
    text: { type: string }
stages:
  - name: redact
    agent: pii-redact
    with:
      text: \${input.text}
  - name: classify
    agent: intent-classifier
    with:
      text: \${redact.text}
`;

function lineOf(text: string, needle: string): number {
  const index = text.split('\n').findIndex((line) => line.includes(needle));
  if (index === -1) throw new Error(`fixture has no line containing ${needle}`);
  return index + 1;
}

function firstProblem(text: string, fileName = 'triage-lite.yaml', options?: PipelineLoaderOptions): PipelineProblem {
  return problemsOf(text, fileName, options).problems[0]!;
}

function agentStage(def: PipelineDefinition, name: string): AgentStage {
  const stage = def.stages.find((s) => s.name === name);
  if (stage?.kind !== 'agent') throw new Error(`no agent stage "${name}"`);
  return stage;
}

function problemsOf(text: string, fileName = 'triage-lite.yaml', options?: PipelineLoaderOptions): PipelineDefinitionError {
  try {
    parsePipelineText(text, fileName, agents, options);
  } catch (err) {
    if (err instanceof PipelineDefinitionError) return err;
    throw err;
  }
  throw new Error('expected a PipelineDefinitionError');
}

describe('support-triage.yaml', () => {
  const file = join(DEFINITIONS, 'support-triage.yaml');

  it('loads against the agents it names', async () => {
    const def = await loadPipelineFile(file, agents);
    expect(def.name).toBe('support-triage');
    expect(def.version).toBe(3);
    expect(def.stages.map((s) => [s.name, s.kind === 'agent' ? s.agent : s.kind])).toEqual([
      ['redact', 'pii-redact'],
      ['classify', 'intent-classifier'],
      ['review', 'approval'],
      ['route', 'lookup'],
      ['reply', 'template-reply'],
      ['draft', 'llm'],
    ]);
    // The model reads the customer's words: the injection guard screens them first.
    expect(agentStage(def, 'draft')).toMatchObject({ untrustedText: true, with: { prompt: expect.stringContaining('${redact.text}') } });
    expect(agentStage(def, 'reply').with).toEqual({
      intent: '${classify.label}',
      team: '${route.value}',
      ticketId: '${input.ticketId}',
      customerName: '${input.customerName}',
    });
    for (const stage of def.stages) {
      if (stage.kind !== 'agent') continue;
      expect(stage.timeoutMs).toBeLessThanOrEqual(def.limits.runTimeoutMs);
      expect(stage.retry.maximumAttempts).toBeGreaterThanOrEqual(1);
    }
    expect(definitionHash(def)).toBe(definitionHash(await loadPipelineFile(file, agents)));
  });

  it('asks for a review when the classifier is unsure, escalating to an admin after a day', async () => {
    const def = await loadPipelineFile(file, agents);
    expect(def.stages[2]).toEqual({
      kind: 'approval',
      name: 'review',
      when: { ref: 'classify.confidence', lt: 0.5 },
      roles: ['approver', 'admin'],
      timeoutMs: 86_400_000,
      onTimeout: 'escalate',
      escalateTo: ['admin'],
      escalationTimeoutMs: 86_400_000,
      allowSelfApproval: false,
    });
    // Nobody deciding must end in the approval's own policy, not in a run timeout.
    expect(def.limits.runTimeoutMs).toBeGreaterThan(2 * 86_400_000);
    // The reply does not depend on the review: a rejection fails the run before it.
    expect(agentStage(def, 'reply').when).toBeUndefined();
    expect(def.signals).toEqual(['note']);
    expect(def.onCancel).toEqual([]);
  });

  it('routes every banking77 intent to one of a handful of teams', async () => {
    const def = await loadPipelineFile(file, agents);
    const route = agentStage(def, 'route');
    const table = route.with.table as Record<string, string>;
    expect(Object.keys(table)).toHaveLength(77);
    expect(new Set(Object.values(table))).toEqual(new Set(TEAMS));
    // The labels that do not follow the dataset's own naming pattern are the easiest to drop by accident.
    expect(table['Refund_not_showing_up']).toBe('payments');
    expect(table['reverted_card_payment?']).toBe('payments');
    expect(route.with.default).toBe('general-support');
  });

  it('declares the documented input schema', async () => {
    const raw = parse(await readFile(file, 'utf8')) as { input: unknown };
    expect(raw.input).toMatchObject({
      type: 'object',
      additionalProperties: false,
      required: ['text'],
      properties: {
        text: { type: 'string', minLength: 1, maxLength: 20000 },
        ticketId: { type: 'string', maxLength: 128 },
        category: { type: 'string' },
        customerName: { type: 'string' },
      },
    });
  });
});

describe('parsePipelineText', () => {
  it('accepts the base fixture, in YAML and in JSON', () => {
    const fromYaml = parsePipelineText(BASE, 'triage-lite.yaml', agents);
    const fromJson = parsePipelineText(JSON.stringify(parse(BASE), null, 2), 'triage-lite.json', agents);
    expect(fromJson).toEqual(fromYaml);
  });

  it('names file, line, stage and field for an unknown agent', () => {
    const text = BASE.replace('agent: intent-classifier', 'agent: classifer');
    const err = problemsOf(text);
    expect(err).toMatchObject({
      name: 'PipelineDefinitionError',
      file: 'triage-lite.yaml',
      line: lineOf(text, 'agent: classifer'),
      stage: 'classify',
      field: 'agent',
    });
    expect(err.message).toBe(
      `triage-lite.yaml:${lineOf(text, 'classifer')} stage "classify" field "agent": unknown agent "classifer" ` +
        '(known: intent-classifier, llm, lookup, pii-redact, template-reply)',
    );
  });

  it('rejects with: keys the agent does not take', () => {
    const text = BASE.replace('      text: ${redact.text}', '      text: ${redact.text}\n      language: en');
    expect(problemsOf(text).problems).toEqual([
      {
        file: 'triage-lite.yaml',
        line: lineOf(text, 'language: en'),
        stage: 'classify',
        field: 'with.language',
        message: 'agent "intent-classifier" has no input "language" (inputs: text)',
      },
    ]);
  });

  it('rejects a missing required agent input but not an optional or defaulted one', () => {
    const text = `${BASE}  - name: reply
    agent: template-reply
    with:
      intent: \${input.text}
`;
    expect(problemsOf(text).problems).toEqual([
      expect.objectContaining({
        // The stage's `with:` line, just above its first input.
        line: lineOf(text, 'intent: ${input.text}') - 1,
        stage: 'reply',
        field: 'with',
        message: 'missing required input "team" for agent "template-reply"',
      }),
    ]);
  });

  it('checks literal inputs against the agent schema at load', () => {
    const text = `${BASE}  - name: reply
    agent: template-reply
    with:
      intent: x
      team: y
      format: pdf
`;
    expect(problemsOf(text)).toMatchObject({ line: lineOf(text, 'format: pdf'), stage: 'reply', field: 'with.format' });
  });

  it('rejects references to undeclared input fields', () => {
    const text = BASE.replace('text: ${input.text}', 'text: ${input.body}');
    expect(problemsOf(text)).toMatchObject({
      line: lineOf(text, '${input.body}'),
      stage: 'redact',
      field: 'with.text',
      message: expect.stringContaining('reference "input.body": the input schema declares no property "body" (declared: text)'),
    });
  });

  it('rejects references to unknown output fields, later stages and unknown stages', () => {
    const outputField = BASE.replace('${redact.text}', '${redact.txt}');
    expect(problemsOf(outputField)).toMatchObject({
      line: lineOf(outputField, '${redact.txt}'),
      stage: 'classify',
      field: 'with.text',
      message: expect.stringContaining('has no output field "txt" (fields: text, findings, counts)'),
    });

    const later = BASE.replace('${input.text}', '${classify.label}');
    expect(problemsOf(later)).toMatchObject({
      line: lineOf(later, '${classify.label}'),
      stage: 'redact',
      message: expect.stringContaining('stage "classify" runs later'),
    });

    const unknown = BASE.replace('${redact.text}', 'from ${redakt.text}');
    expect(problemsOf(unknown).message).toContain('unknown stage "redakt" (earlier stages: redact)');
  });

  it('checks condition refs like mapping references', () => {
    const text = BASE.replace(
      '  - name: classify\n',
      '  - name: classify\n    when:\n      any:\n        - { ref: input.text, exists: true }\n        - { ref: redact.count, gt: 0 }\n',
    );
    expect(problemsOf(text)).toMatchObject({
      line: lineOf(text, 'ref: redact.count'),
      stage: 'classify',
      field: 'when.any.1.ref',
      message: expect.stringContaining('has no output field "count"'),
    });
  });

  it('rejects an unterminated ${', () => {
    const text = BASE.replace('text: ${redact.text}', 'text: "${redact.text"');
    expect(problemsOf(text)).toMatchObject({ stage: 'classify', field: 'with.text', message: expect.stringContaining('no closing "}"') });
  });

  it('rejects duplicate stage names with the line of the second', () => {
    const text = BASE.replace('  - name: classify', '  - name: redact');
    expect(problemsOf(text).problems[0]).toMatchObject({
      line: lineOf(text, 'agent: intent-classifier') - 1,
      stage: 'redact',
      field: 'name',
      message: 'duplicate stage name "redact"',
    });
  });

  it('rejects unknown keys, pointing at the key', () => {
    const text = BASE.replace('    agent: pii-redact\n', '    agent: pii-redact\n    retries: 3\n');
    expect(problemsOf(text).problems[0]).toMatchObject({
      line: lineOf(text, 'retries: 3'),
      stage: 'redact',
      field: 'retries',
      message: 'unknown key "retries"',
    });
    const top = `${BASE}owner: someone\n`;
    expect(problemsOf(top).message).toBe(`triage-lite.yaml:${lineOf(top, 'owner:')} field "owner": unknown key "owner"`);
  });

  it('names missing required fields and bad durations', () => {
    const text = BASE.replace('    agent: pii-redact\n', '    timeout: soon\n');
    const problems = problemsOf(text).problems;
    expect(problems).toEqual([
      expect.objectContaining({ line: lineOf(text, '- name: redact'), stage: 'redact', field: 'agent', message: 'missing required field' }),
      expect.objectContaining({ line: lineOf(text, 'timeout: soon'), stage: 'redact', field: 'timeout', message: expect.stringContaining('invalid duration "soon"') }),
    ]);
  });

  it('lists every problem, in file order', () => {
    const text = BASE.replace('version: 1', 'version: one').replace('agent: pii-redact', 'agent: pii-redact\n    colour: blue');
    const err = problemsOf(text);
    expect(err.problems.map((p: PipelineProblem) => p.field)).toEqual(['version', 'colour']);
    expect(err.message.split('\n')).toHaveLength(2);
  });

  it('reports a YAML syntax error with its line', () => {
    const text = BASE.replace('    text: { type: string }', '    text: { type: string');
    const err = problemsOf(text);
    expect(err.problems).toHaveLength(1);
    expect(err).toMatchObject({ file: 'triage-lite.yaml', field: '', message: expect.stringContaining('YAML syntax error') });
    expect(err.line).toBeGreaterThanOrEqual(lineOf(text, 'text: { type: string'));
  });

  it('reports duplicate YAML keys', () => {
    const text = BASE.replace('version: 1\n', 'version: 1\nversion: 2\n');
    expect(problemsOf(text)).toMatchObject({ line: 3, message: expect.stringContaining('unique') });
  });

  it('reports a JSON syntax error with its line, and JSON problems with lines too', () => {
    const broken = '{\n  "name": "x",\n  "version": 1,\n}\n';
    expect(problemsOf(broken, 'x.json')).toMatchObject({ file: 'x.json', line: 4, message: expect.stringContaining('JSON syntax error') });

    const json = JSON.stringify(parse(BASE.replace('agent: intent-classifier', 'agent: nope')), null, 2);
    expect(problemsOf(json, 'x.json')).toMatchObject({ line: lineOf(json, '"agent": "nope"'), stage: 'classify', field: 'agent' });
  });

  it('rejects an input schema that does not compile, at the input line', () => {
    const text = BASE.replace('text: { type: string }', 'text: { type: strng }');
    expect(problemsOf(text)).toMatchObject({ line: lineOf(text, 'input:'), field: 'input', message: expect.stringContaining('does not compile') });
  });

  it('rejects empty files and unsupported extensions', () => {
    expect(problemsOf('  \n', 'empty.yaml').message).toBe('empty.yaml: the file is empty');
    expect(problemsOf(BASE, 'triage.txt').message).toContain('unsupported file type ".txt"');
  });
});

describe('loadPipelineDir', () => {
  it('loads YAML and JSON definitions keyed by name and ignores other files', async () => {
    const defs = await loadPipelineDir(join(FIXTURES, 'dir-ok'), agents);
    expect([...defs.keys()]).toEqual(['echo-lookup', 'redact-only']);
    expect(defs.get('echo-lookup')!.version).toBe(2);
  });

  it('loads definitions that are symbolic links to files, as a Kubernetes ConfigMap volume mounts them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agentry-pipelines-'));
    mkdirSync(join(dir, '..data'));
    copyFileSync(join(FIXTURES, 'dir-ok', 'echo-lookup.yaml'), join(dir, '..data', 'echo-lookup.yaml'));
    symlinkSync(join('..data', 'echo-lookup.yaml'), join(dir, 'echo-lookup.yaml'));
    symlinkSync('missing.yaml', join(dir, 'dangling.yaml'));
    expect([...(await loadPipelineDir(dir, agents)).keys()]).toEqual(['echo-lookup']);
    rmSync(dir, { recursive: true });
  });

  it('names files that are not UTF-8, too large or too deep, and reads past a BOM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agentry-pipelines-'));
    const good = readFileSync(join(FIXTURES, 'dir-ok', 'echo-lookup.yaml'));
    writeFileSync(join(dir, 'a-bom.yaml'), Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), good]));
    writeFileSync(join(dir, 'b-latin1.yaml'), Buffer.concat([good, Buffer.from('# caf\xe9\n', 'latin1')]));
    writeFileSync(join(dir, 'c-huge.yaml'), `${good.toString()}# ${'x'.repeat(1024 * 1024)}\n`);
    writeFileSync(join(dir, 'd-deep.yaml'), `${good.toString()}x: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n`);
    const err = await loadPipelineDir(dir, agents).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PipelineDefinitionError);
    expect((err as PipelineDefinitionError).problems).toEqual([
      { file: 'b-latin1.yaml', field: '', message: 'the file is not valid UTF-8' },
      { file: 'c-huge.yaml', field: '', message: expect.stringMatching(/^the file is 10\d{5} bytes; a definition may have at most 1048576$/) },
      { file: 'd-deep.yaml', field: '', message: expect.stringMatching(/nests too deeply|YAML/) },
    ]);
    rmSync(dir, { recursive: true });
  });

  it('refuses a JSON definition with a key given twice, at its line', () => {
    const json = '{\n  "name": "a",\n  "name": "b"\n}\n';
    expect(firstProblem(json, 'twice.json')).toMatchObject({ file: 'twice.json', line: 3, message: expect.stringMatching(/^JSON error: .*unique/i) });
  });

  it('gathers the problems of every file, including a pipeline name defined twice', async () => {
    const err = await loadPipelineDir(join(FIXTURES, 'dir-duplicate'), agents).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PipelineDefinitionError);
    const problems = (err as PipelineDefinitionError).problems;
    expect(problems).toEqual([
      { file: 'second.yml', line: 1, field: 'name', message: 'pipeline "echo-lookup" is already defined in first.yaml' },
      expect.objectContaining({ file: 'third.yaml', line: 7, stage: 'only', field: 'agent' }),
    ]);
  });
});

/** Every stage kind, signals and compensation; broken one piece at a time below. */
const FULL = `name: triage-full
version: 1
description: Every stage kind.
input:
  type: object
  properties:
    text: { type: string }
signals: [note, priority]
stages:
  - name: redact
    agent: pii-redact
    with:
      text: \${input.text}
  - name: classify
    agent: intent-classifier
    with:
      text: \${redact.text}
  - name: review
    when: { ref: classify.confidence, lt: 0.6 }
    approval:
      roles: [approver, admin]
      timeout: 30m
  - name: enrich
    when:
      ref: signals.priority.level
      ne: low
    parallel:
      maxConcurrency: 2
      onFailure: collect
      stages:
        - name: route
          agent: lookup
          with:
            key: \${classify.label}
            table: { card_arrival: cards }
        - name: summary
          agent: intent-classifier
          with:
            text: \${redact.text} \${signals.note.text}
  - name: reply
    agent: template-reply
    with:
      intent: \${classify.label}
      team: \${enrich.route.value}
      ticketId: \${review.decision}
      customerName: \${route.value}
onCancel:
  - name: apologise
    agent: template-reply
    with:
      intent: \${classify.label}
      team: \${route.value}
      ticketId: \${reply.reply}
`;

function fanOut(members: number): string {
  const stages = Array.from(
    { length: members },
    (_, i) => `        - name: m${i}\n          agent: lookup\n          with:\n            key: \${input.text}\n            table: {}\n`,
  ).join('');
  return `${BASE}  - name: enrich\n    parallel:\n      maxConcurrency: 1\n      stages:\n${stages}`;
}

describe('approvals, parallel groups, signals and onCancel', () => {
  it('loads every stage kind, in YAML and in JSON', () => {
    const def = parsePipelineText(FULL, 'triage-full.yaml', agents);
    expect(def.stages.map((s) => [s.name, s.kind])).toEqual([
      ['redact', 'agent'],
      ['classify', 'agent'],
      ['review', 'approval'],
      ['enrich', 'parallel'],
      ['reply', 'agent'],
    ]);
    expect(def.stages[3]).toMatchObject({
      kind: 'parallel',
      maxConcurrency: 2,
      onFailure: 'collect',
      when: { ref: 'signals.priority.level', ne: 'low' },
      stages: [{ kind: 'agent', name: 'route' }, { kind: 'agent', name: 'summary' }],
    });
    expect(def.signals).toEqual(['note', 'priority']);
    expect(def.onCancel.map((s) => s.name)).toEqual(['apologise']);
    const fromJson = parsePipelineText(JSON.stringify(parse(FULL), null, 2), 'triage-full.json', agents);
    expect(fromJson).toEqual(def);
  });

  it('names file, line, stage and field for approval problems', () => {
    const text = FULL.replace('      timeout: 30m\n', '      timeout: 30m\n      escalateTo: [admin]\n');
    const err = problemsOf(text, 'triage-full.yaml');
    expect(err.problems).toEqual([
      {
        file: 'triage-full.yaml',
        line: lineOf(text, 'escalateTo: [admin]'),
        stage: 'review',
        field: 'approval.escalateTo',
        message: 'escalateTo applies only with onTimeout: escalate',
      },
    ]);
    expect(err.message).toBe(
      `triage-full.yaml:${lineOf(text, 'escalateTo')} stage "review" field "approval.escalateTo": escalateTo applies only with onTimeout: escalate`,
    );

    const noTimeout = FULL.replace('      timeout: 30m\n', '');
    expect(problemsOf(noTimeout).problems).toEqual([
      expect.objectContaining({
        line: lineOf(noTimeout, '    approval:'),
        stage: 'review',
        field: 'approval.timeout',
        message: 'missing required field',
      }),
    ]);

    const badRole = FULL.replace('roles: [approver, admin]', 'roles: [approver, boss]');
    expect(firstProblem(badRole)).toMatchObject({ line: lineOf(badRole, 'boss'), stage: 'review', field: 'approval.roles.1' });

    const unknownKey = FULL.replace('      timeout: 30m\n', '      timeout: 30m\n      quorum: 2\n');
    expect(firstProblem(unknownKey)).toMatchObject({
      line: lineOf(unknownKey, 'quorum: 2'),
      stage: 'review',
      field: 'approval.quorum',
      message: 'unknown key "quorum"',
    });

    const tooLong = FULL.replace('timeout: 30m', 'timeout: 2h');
    expect(firstProblem(tooLong)).toMatchObject({
      line: lineOf(tooLong, 'timeout: 2h'),
      stage: 'review',
      field: 'approval.timeout',
      message: 'the approval timeout is longer than limits.runTimeout',
    });
  });

  it('names a group member as the stage of its own problems', () => {
    const unknownAgent = FULL.replace('          agent: lookup', '          agent: lookpu');
    expect(firstProblem(unknownAgent)).toMatchObject({
      line: lineOf(unknownAgent, 'agent: lookpu'),
      stage: 'route',
      field: 'agent',
      message: expect.stringContaining('unknown agent "lookpu"'),
    });

    const missingAgent = FULL.replace('          agent: intent-classifier\n', '');
    expect(problemsOf(missingAgent).problems).toEqual([
      expect.objectContaining({ line: lineOf(missingAgent, '- name: summary'), stage: 'summary', field: 'agent', message: 'missing required field' }),
    ]);

    const badInput = FULL.replace('            table: { card_arrival: cards }', '            table: { card_arrival: cards }\n            colour: blue');
    expect(firstProblem(badInput)).toMatchObject({ line: lineOf(badInput, 'colour: blue'), stage: 'route', field: 'with.colour' });

    const nested = FULL.replace(
      '        - name: summary\n          agent: intent-classifier\n          with:\n            text: ${redact.text} ${signals.note.text}\n',
      '        - name: summary\n          approval: { roles: [admin], timeout: 1h }\n',
    );
    expect(problemsOf(nested).problems).toEqual([
      expect.objectContaining({
        line: lineOf(nested, 'approval: { roles: [admin]'),
        stage: 'summary',
        field: 'approval',
        message: 'a parallel group holds agent stages only, not approval stages',
      }),
    ]);

    const settings = FULL.replace('maxConcurrency: 2', 'maxConcurrency: 0');
    expect(firstProblem(settings)).toMatchObject({ line: lineOf(settings, 'maxConcurrency: 0'), stage: 'enrich', field: 'parallel.maxConcurrency' });

    const unnamed = FULL.replace('        - name: summary\n', '        - agent: lookup\n').replace(
      '          agent: intent-classifier\n          with:\n            text: ${redact.text} ${signals.note.text}\n',
      '          with: {}\n',
    );
    expect(problemsOf(unnamed).problems[0]).toMatchObject({ stage: 'enrich', field: 'parallel.stages.1.name', message: 'missing required field' });
  });

  it('rejects a stage name used twice anywhere in the definition, at the second one', () => {
    const text = FULL.replace('        - name: summary', '        - name: classify');
    expect(problemsOf(text).problems).toEqual([
      expect.objectContaining({
        line: lineOf(text, '        - name: classify'),
        stage: 'classify',
        field: 'name',
        message: 'duplicate stage name "classify"',
      }),
    ]);
    const inOnCancel = FULL.replace('  - name: apologise', '  - name: reply');
    expect(problemsOf(inOnCancel).problems[0]).toMatchObject({
      line: lineOf(inOnCancel, 'onCancel:') + 1,
      stage: 'reply',
      field: 'name',
      message: 'duplicate stage name "reply"',
    });
  });

  it(`rejects a group of more than ${MAX_PARALLEL_STAGES} stages unless the limit is raised`, () => {
    const text = fanOut(MAX_PARALLEL_STAGES + 1);
    const err = problemsOf(text);
    expect(err.problems).toEqual([
      {
        file: 'triage-lite.yaml',
        line: lineOf(text, '      stages:'),
        stage: 'enrich',
        field: 'parallel.stages',
        message:
          'a parallel group may hold at most 50 stages (this one has 51); split it, or run the work as one agent that fans out itself',
      },
    ]);
    expect(parsePipelineText(fanOut(MAX_PARALLEL_STAGES), 'ok.yaml', agents).stages[2]).toMatchObject({ kind: 'parallel' });
    expect(parsePipelineText(text, 'ok.yaml', agents, { maxParallelStages: 60 }).stages).toHaveLength(3);
    expect(firstProblem(fanOut(3), 'small.yaml', { maxParallelStages: 2 })).toMatchObject({
      file: 'small.yaml',
      stage: 'enrich',
      field: 'parallel.stages',
      message: expect.stringContaining('at most 2 stages (this one has 3)'),
    });
  });

  it('passes maxParallelStages through loadPipelineFile and loadPipelineDir', async () => {
    const dir = join(FIXTURES, 'dir-parallel');
    const line = lineOf(await readFile(join(dir, 'fan-out.yaml'), 'utf8'), '      stages:');
    expect([...(await loadPipelineDir(dir, agents)).keys()]).toEqual(['fan-out']);
    expect((await loadPipelineFile(join(dir, 'fan-out.yaml'), agents)).stages[0]).toMatchObject({ kind: 'parallel' });
    for (const load of [
      () => loadPipelineDir(dir, agents, { maxParallelStages: 2 }),
      () => loadPipelineFile(join(dir, 'fan-out.yaml'), agents, { maxParallelStages: 2 }),
    ]) {
      const err = await load().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PipelineDefinitionError);
      expect(err).toMatchObject({ file: 'fan-out.yaml', line, stage: 'lookups', field: 'parallel.stages' });
    }
  });

  it('rejects references between members of one group, and from a group to its own members', () => {
    const sibling = FULL.replace('${redact.text} ${signals.note.text}', '${route.value}');
    expect(firstProblem(sibling)).toMatchObject({
      line: lineOf(sibling, 'text: ${route.value}'),
      stage: 'summary',
      field: 'with.text',
      message:
        'reference "route.value": stage "route" is in the same parallel group ("enrich"); stages of a group run at the same time and cannot reference each other',
    });

    const ownGroup = FULL.replace('${redact.text} ${signals.note.text}', '${enrich.route.value}');
    expect(problemsOf(ownGroup).message).toContain('stage "enrich" is the parallel group this stage belongs to');

    const later = FULL.replace('${redact.text} ${signals.note.text}', '${reply.reply}');
    expect(problemsOf(later).message).toContain('stage "reply" runs later');

    const groupWhen = FULL.replace('      ref: signals.priority.level', '      ref: route.value');
    expect(firstProblem(groupWhen)).toMatchObject({
      line: lineOf(groupWhen, 'ref: route.value'),
      stage: 'enrich',
      field: 'when.ref',
      message: expect.stringContaining('stage "route" belongs to this parallel group'),
    });

    const unknown = FULL.replace('${redact.text} ${signals.note.text}', '${redakt.text}');
    expect(problemsOf(unknown).message).toContain('unknown stage "redakt" (earlier stages: redact, classify, review)');
  });

  it('checks references to members, groups and approvals against their outputs', () => {
    const memberField = FULL.replace('customerName: ${route.value}', 'customerName: ${route.valu}');
    expect(firstProblem(memberField)).toMatchObject({
      line: lineOf(memberField, '${route.valu}'),
      stage: 'reply',
      field: 'with.customerName',
      message: 'reference "route.valu": stage "route" (agent "lookup") has no output field "valu" (fields: value, matched)',
    });

    const groupMember = FULL.replace('${enrich.route.value}', '${enrich.routing.value}');
    expect(problemsOf(groupMember).message).toContain(
      'parallel group "enrich" has no stage "routing" (its output is keyed by stage: route, summary)',
    );

    const groupMemberField = FULL.replace('${enrich.route.value}', '${enrich.route.valu}');
    expect(firstProblem(groupMemberField)).toMatchObject({
      stage: 'reply',
      field: 'with.team',
      message: expect.stringContaining('stage "route" (agent "lookup") has no output field "valu"'),
    });

    const approvalField = FULL.replace('${review.decision}', '${review.decison}');
    expect(firstProblem(approvalField)).toMatchObject({
      line: lineOf(approvalField, '${review.decison}'),
      stage: 'reply',
      field: 'with.ticketId',
      message:
        'reference "review.decison": stage "review" (approval) has no output field "decison" (fields: decision, approver, comment)',
    });
    for (const field of ['decision', 'approver', 'comment']) {
      expect(() => parsePipelineText(FULL.replace('${review.decision}', `\${review.${field}}`), 'ok.yaml', agents)).not.toThrow();
    }

    const beforeApproval = FULL.replace('text: ${redact.text}\n  - name: review', 'text: ${review.comment}\n  - name: review');
    expect(firstProblem(beforeApproval)).toMatchObject({ stage: 'classify', message: expect.stringContaining('stage "review" runs later') });

    const unknown = FULL.replace('intent: ${classify.label}\n      team: ${enrich', 'intent: ${nope.x}\n      team: ${enrich');
    expect(problemsOf(unknown).message).toContain(
      'unknown stage "nope" (earlier stages: redact, classify, review, enrich, route, summary)',
    );
  });

  it('allows only declared signals, in mappings and conditions', () => {
    const mapping = FULL.replace('${signals.note.text}', '${signals.mood.text}');
    expect(firstProblem(mapping)).toMatchObject({
      line: lineOf(mapping, '${signals.mood.text}'),
      stage: 'summary',
      field: 'with.text',
      message: 'reference "signals.mood.text": the definition declares no signal "mood" (declared: note, priority)',
    });

    const condition = FULL.replace('ref: signals.priority.level', 'ref: signals.urgency');
    expect(firstProblem(condition)).toMatchObject({
      line: lineOf(condition, 'ref: signals.urgency'),
      stage: 'enrich',
      field: 'when.ref',
      message: expect.stringContaining('declares no signal "urgency"'),
    });

    const bare = FULL.replace('${signals.note.text}', '${signals}');
    expect(problemsOf(bare).message).toContain('reference "signals": name a signal: signals.<name>');

    const undeclared = BASE.replace('text: ${redact.text}', 'text: ${signals.note.text}');
    expect(problemsOf(undeclared).message).toContain('declares no signal "note" (declared: none)');
    // Any payload field may be referenced: payloads are free-form.
    const declared = `${BASE.replace('text: ${redact.text}', 'text: ${signals.note.a.b.0}')}signals: [note]\n`;
    expect(() => parsePipelineText(declared, 'ok.yaml', agents)).not.toThrow();
  });

  it('names file, line and field for bad signal declarations', () => {
    const reserved = FULL.replace('signals: [note, priority]', 'signals: [note, cancel]');
    expect(problemsOf(reserved).problems).toEqual([
      {
        file: 'triage-lite.yaml',
        line: lineOf(reserved, 'signals: [note, cancel]'),
        field: 'signals.1',
        message: 'reserved signal name (reserved: approve, cancel)',
      },
    ]);
    const duplicate = FULL.replace('signals: [note, priority]', 'signals:\n  - note\n  - note');
    expect(firstProblem(duplicate)).toMatchObject({ line: lineOf(duplicate, 'signals:') + 2, field: 'signals.1', message: 'duplicate signal name "note"' });

    const stageName = BASE.replace('  - name: classify', '  - name: signals');
    expect(firstProblem(stageName)).toMatchObject({ stage: 'signals', field: 'name', message: '"signals" is reserved for signal payloads' });
  });

  it('lets onCancel stages reference any main-line stage, but not each other', () => {
    // FULL's apologise already references the last stage (reply) and a group member (route).
    const def = parsePipelineText(FULL, 'ok.yaml', agents);
    expect(def.onCancel[0]!.with).toMatchObject({ ticketId: '${reply.reply}', team: '${route.value}' });

    const chained = `${FULL}  - name: undo
    agent: lookup
    with:
      key: \${apologise.reply}
      table: {}
`;
    expect(firstProblem(chained)).toMatchObject({
      line: lineOf(chained, '${apologise.reply}'),
      stage: 'undo',
      field: 'with.key',
      message: expect.stringContaining(
        'stage "apologise" is an onCancel stage too; onCancel stages can reference only input, signals and main-line stages',
      ),
    });

    const fromMain = FULL.replace('customerName: ${route.value}', 'customerName: ${apologise.reply}');
    expect(firstProblem(fromMain)).toMatchObject({
      stage: 'reply',
      field: 'with.customerName',
      message: 'reference "apologise.reply": stage "apologise" is an onCancel stage, which runs only when a run is cancelled',
    });

    const unknown = FULL.replace('ticketId: ${reply.reply}', 'ticketId: ${replyy.reply}');
    expect(problemsOf(unknown).message).toContain(
      'unknown stage "replyy" (main-line stages: redact, classify, review, enrich, route, summary, reply)',
    );

    const badField = FULL.replace('ticketId: ${reply.reply}', 'ticketId: ${reply.text}');
    expect(firstProblem(badField)).toMatchObject({ stage: 'apologise', field: 'with.ticketId', message: expect.stringContaining('no output field "text"') });

    const badAgent = FULL.replace('    agent: template-reply\n    with:\n      intent: ${classify.label}\n      team: ${route.value}', '    agent: apology\n    with:\n      intent: ${classify.label}\n      team: ${route.value}');
    expect(firstProblem(badAgent)).toMatchObject({ line: lineOf(badAgent, 'agent: apology'), stage: 'apologise', field: 'agent' });

    const approval = FULL.replace('    agent: template-reply\n    with:\n      intent: ${classify.label}\n      team: ${route.value}\n      ticketId: ${reply.reply}\n', '    approval: { roles: [admin], timeout: 1h }\n');
    expect(problemsOf(approval).problems).toEqual([
      expect.objectContaining({ stage: 'apologise', field: 'approval', message: 'onCancel holds agent stages only, not approval stages' }),
    ]);
  });
});
