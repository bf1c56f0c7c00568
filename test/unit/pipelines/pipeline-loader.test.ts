import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import {
  PipelineDefinitionError,
  definitionHash,
  loadPipelineDir,
  loadPipelineFile,
  parsePipelineText,
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

function problemsOf(text: string, fileName = 'triage-lite.yaml'): PipelineDefinitionError {
  try {
    parsePipelineText(text, fileName, agents);
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
    expect(def.stages.map((s) => [s.name, s.agent])).toEqual([
      ['redact', 'pii-redact'],
      ['classify', 'intent-classifier'],
      ['route', 'lookup'],
      ['reply', 'template-reply'],
    ]);
    expect(def.stages[3]!.with).toEqual({
      intent: '${classify.label}',
      team: '${route.value}',
      ticketId: '${input.ticketId}',
      customerName: '${input.customerName}',
    });
    for (const stage of def.stages) {
      expect(stage.timeoutMs).toBeLessThanOrEqual(def.limits.runTimeoutMs);
      expect(stage.retry.maximumAttempts).toBeGreaterThanOrEqual(1);
    }
    expect(definitionHash(def)).toBe(definitionHash(await loadPipelineFile(file, agents)));
  });

  it('routes every banking77 intent to one of a handful of teams', async () => {
    const def = await loadPipelineFile(file, agents);
    const route = def.stages.find((s) => s.name === 'route')!;
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
        '(known: intent-classifier, lookup, pii-redact, template-reply)',
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
