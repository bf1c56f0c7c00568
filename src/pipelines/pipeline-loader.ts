/**
 * Reads pipeline definitions from YAML or JSON, validates them against the schema and against the agents the
 * worker hosts, and reports every problem with its file, line, stage and field. A definition that loads is
 * one the workflow can interpret without meeting an unknown agent, input key or reference at run time.
 */
import { readdir, readFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import {
  pipelineDefinitionSchema,
  type AgentStage,
  type JsonValue,
  type PipelineDefinition,
} from './definition-schema';
import { collectReferenceSites, isValidPath, parseTemplate, resolveMapping } from './expressions';
import { PipelineDefinitionError, type PipelineProblem } from './pipeline-errors';

/** The input and output schemas of one agent, as the loader needs them. */
export interface AgentShape {
  input: z.ZodObject;
  output: z.ZodObject;
}

/** The agents a definition may name; the agent registry satisfies it. */
export interface AgentCatalog {
  get(name: string): AgentShape | undefined;
  names(): string[];
}

type Path = (string | number)[];

/** A parsed source file: its data plus a way to turn a data path into a line number. */
interface SourceDocument {
  data: unknown;
  lineOf(path: Path): number | undefined;
}

const YAML_EXTENSIONS = new Set(['.yaml', '.yml']);
const DEFINITION_EXTENSIONS = new Set([...YAML_EXTENSIONS, '.json']);

/**
 * Parses and validates one definition. `fileName` picks the format (`.yaml`, `.yml` or `.json`) and names the
 * file in errors. Throws `PipelineDefinitionError` listing every problem found.
 */
export function parsePipelineText(text: string, fileName: string, agents: AgentCatalog): PipelineDefinition {
  return parseSource(text, fileName, agents).definition;
}

/** Reads and validates one definition file; errors name the file by its base name. */
export async function loadPipelineFile(path: string, agents: AgentCatalog): Promise<PipelineDefinition> {
  return parsePipelineText(await readFile(path, 'utf8'), basename(path), agents);
}

/**
 * Loads every `.yaml`, `.yml` and `.json` file directly in `dir` (not recursively), in file-name order, keyed
 * by pipeline name. Problems from all files are gathered into one `PipelineDefinitionError`, and two files
 * defining the same pipeline name are an error because runs are addressed by name.
 */
export async function loadPipelineDir(dir: string, agents: AgentCatalog): Promise<Map<string, PipelineDefinition>> {
  const files = (await readdir(dir, { withFileTypes: true }))
    .filter((entry) => entry.isFile() && DEFINITION_EXTENSIONS.has(extname(entry.name).toLowerCase()))
    .map((entry) => entry.name)
    .sort();
  const definitions = new Map<string, PipelineDefinition>();
  const fileOf = new Map<string, string>();
  const problems: PipelineProblem[] = [];
  for (const file of files) {
    try {
      const { definition, source } = parseSource(await readFile(join(dir, file), 'utf8'), file, agents);
      const earlier = fileOf.get(definition.name);
      if (earlier !== undefined) {
        problems.push({
          file,
          line: source.lineOf(['name']),
          field: 'name',
          message: `pipeline "${definition.name}" is already defined in ${earlier}`,
        });
        continue;
      }
      fileOf.set(definition.name, file);
      definitions.set(definition.name, definition);
    } catch (err) {
      if (!(err instanceof PipelineDefinitionError)) throw err;
      problems.push(...err.problems);
    }
  }
  if (problems.length > 0) throw new PipelineDefinitionError(problems);
  return definitions;
}

function parseSource(
  text: string,
  file: string,
  agents: AgentCatalog,
): { definition: PipelineDefinition; source: SourceDocument } {
  const source = readSource(text, file);
  const result = pipelineDefinitionSchema.safeParse(source.data);
  if (!result.success) {
    throw new PipelineDefinitionError(
      inFileOrder(result.error.issues.flatMap((issue) => issueProblems(issue, source, file))),
    );
  }
  const problems = checkAgainstCatalog(result.data, agents).map(({ path, message }) =>
    locate(source, file, path, message),
  );
  if (problems.length > 0) throw new PipelineDefinitionError(inFileOrder(problems));
  return { definition: result.data, source };
}

// The schema reports object-level issues (unknown keys) after field-level ones; authors read top to bottom.
function inFileOrder(problems: PipelineProblem[]): PipelineProblem[] {
  return problems
    .map((problem, i) => ({ problem, i }))
    .sort((a, b) => (a.problem.line ?? Infinity) - (b.problem.line ?? Infinity) || a.i - b.i)
    .map(({ problem }) => problem);
}

// ---------------------------------------------------------------------------------------------------------------
// Reading YAML and JSON with positions
// ---------------------------------------------------------------------------------------------------------------

function readSource(text: string, file: string): SourceDocument {
  const extension = extname(file).toLowerCase();
  if (!DEFINITION_EXTENSIONS.has(extension)) {
    throw new PipelineDefinitionError([
      { file, field: '', message: `unsupported file type "${extension || '(none)'}": use .yaml, .yml or .json` },
    ]);
  }
  if (text.trim() === '') throw new PipelineDefinitionError([{ file, field: '', message: 'the file is empty' }]);

  let jsonData: unknown;
  if (extension === '.json') {
    try {
      jsonData = JSON.parse(text);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const position = /position (\d+)/.exec(message);
      const line = position ? lineAtOffset(text, Number(position[1])) : undefined;
      throw new PipelineDefinitionError([{ file, line, field: '', message: `JSON syntax error: ${message}` }]);
    }
  }

  // JSON is (for our purposes) a subset of YAML 1.2, so the YAML parser also gives JSON files line numbers.
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const [syntaxError] = doc.errors;
  if (extension !== '.json' && syntaxError) {
    // Only the first: after one syntax error the parser's later complaints are mostly echoes of it.
    throw new PipelineDefinitionError([
      {
        file,
        line: lineCounter.linePos(syntaxError.pos[0]).line,
        field: '',
        message: `YAML syntax error: ${syntaxError.message}`,
      },
    ]);
  }
  const lineOf = (path: Path): number | undefined => (doc.errors.length > 0 ? undefined : lineIn(doc, lineCounter, path));
  if (extension === '.json') return { data: jsonData, lineOf };
  try {
    // Aliases are allowed, but a bounded count stops a "billion laughs" document from exhausting memory.
    return { data: doc.toJS({ maxAliasCount: 100 }), lineOf };
  } catch (err) {
    throw new PipelineDefinitionError([
      { file, field: '', message: `YAML error: ${err instanceof Error ? err.message : String(err)}` },
    ]);
  }
}

function lineAtOffset(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text[i] === '\n') line += 1;
  return line;
}

/**
 * The line of the deepest node on `path` that exists: a map key's own line when the path ends at a key (so a
 * problem with `agent: x` points at that line), otherwise the nearest existing ancestor (a missing field points
 * at its stage).
 */
function lineIn(doc: Document, lineCounter: LineCounter, path: Path): number | undefined {
  const lineOfNode = (node: unknown): number | undefined => {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    return range ? lineCounter.linePos(range[0]).line : undefined;
  };
  let node: unknown = doc.contents;
  let line = lineOfNode(node);
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(segment));
      if (!pair) break;
      line = lineOfNode(pair.key) ?? line;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment];
      if (item === undefined) break;
      line = lineOfNode(item) ?? line;
      node = item;
    } else {
      break;
    }
  }
  return line;
}

// ---------------------------------------------------------------------------------------------------------------
// Turning schema issues into located problems
// ---------------------------------------------------------------------------------------------------------------

function issueProblems(issue: z.core.$ZodIssue, source: SourceDocument, file: string): PipelineProblem[] {
  const path = issue.path.map((segment) => (typeof segment === 'symbol' ? String(segment) : segment));
  const unknownKeys =
    issue.code === 'unrecognized_keys'
      ? issue.keys
      : issue.code === 'custom' && Array.isArray(issue.params?.keys)
        ? (issue.params.keys as string[])
        : undefined;
  if (unknownKeys) {
    return unknownKeys.map((key) => locate(source, file, [...path, key], `unknown key "${key}"`));
  }
  const missing = issue.code === 'invalid_type' && path.length > 0 && valueAt(source.data, path) === undefined;
  return [locate(source, file, path, missing ? 'missing required field' : issue.message)];
}

function valueAt(data: unknown, path: Path): unknown {
  let current = data;
  for (const segment of path) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<string | number, unknown>)[segment];
  }
  return current;
}

/** Splits a data path into the stage it belongs to (if any) and the field within, and adds the line. */
function locate(source: SourceDocument, file: string, path: Path, message: string): PipelineProblem {
  const problem: PipelineProblem = { file, field: path.join('.'), message };
  const line = source.lineOf(path);
  if (line !== undefined) problem.line = line;
  if (path[0] === 'stages' && typeof path[1] === 'number') {
    const name = valueAt(source.data, ['stages', path[1], 'name']);
    problem.stage = typeof name === 'string' && name !== '' ? name : `#${path[1] + 1}`;
    problem.field = path.slice(2).join('.');
  }
  return problem;
}

// ---------------------------------------------------------------------------------------------------------------
// Checks that need the agent catalog
// ---------------------------------------------------------------------------------------------------------------

interface Finding {
  path: Path;
  message: string;
}

const EMPTY_SCOPE = { input: {}, stages: {} };

function checkAgainstCatalog(definition: PipelineDefinition, agents: AgentCatalog): Finding[] {
  const findings: Finding[] = [];
  const inputFields = declaredInputFields(definition.input);
  const stageIndex = new Map(definition.stages.map((stage, i) => [stage.name, i]));

  definition.stages.forEach((stage, i) => {
    const at = (...rest: Path): Path => ['stages', i, ...rest];
    const agent = agents.get(stage.agent);
    if (!agent) {
      const known = [...agents.names()].sort().join(', ') || 'none';
      findings.push({ path: at('agent'), message: `unknown agent "${stage.agent}" (known: ${known})` });
    } else {
      findings.push(...checkInputs(stage, agent, at));
    }

    const sites = [
      ...collectReferenceSites(stage.with, 'mapping').map((site) => ({ ...site, at: at('with', ...site.at) })),
      ...(stage.when
        ? collectReferenceSites(stage.when, 'condition').map((site) => ({ ...site, at: at('when', ...site.at) }))
        : []),
    ];
    for (const site of sites) {
      const problem = checkReference(site.ref, i, definition.stages, stageIndex, inputFields, agents);
      if (problem) findings.push({ path: site.at, message: `reference "${site.ref}": ${problem}` });
    }
    forEachString(stage.with, at('with'), (text, path) => {
      for (const part of parseTemplate(text)) {
        if (part.kind === 'unterminated') {
          findings.push({ path, message: `"${part.text}" has no closing "}" (write "$\${" for a literal "\${")` });
        }
      }
    });
  });
  return findings;
}

function checkInputs(stage: AgentStage, agent: AgentShape, at: (...rest: Path) => Path): Finding[] {
  const findings: Finding[] = [];
  const shape = agent.input.shape;
  const inputNames = Object.keys(shape);
  for (const [key, value] of Object.entries(stage.with)) {
    const field = shape[key];
    if (!Object.prototype.hasOwnProperty.call(shape, key) || field === undefined) {
      findings.push({
        path: at('with', key),
        message: `agent "${stage.agent}" has no input "${key}" (inputs: ${inputNames.join(', ') || 'none'})`,
      });
      continue;
    }
    // A value without references is final, so check it now rather than fail the stage at run time.
    if (collectReferenceSites({ [key]: value }, 'mapping').length === 0) {
      const literal = resolveMapping({ [key]: value }, EMPTY_SCOPE)[key];
      const result = field.safeParse(literal);
      if (!result.success) {
        const issue = result.error.issues[0]!;
        const where = issue.path.length > 0 ? ` at ${issue.path.map(String).join('.')}` : '';
        findings.push({ path: at('with', key), message: `invalid value for input "${key}"${where}: ${issue.message}` });
      }
    }
  }
  for (const key of inputNames) {
    // Required means the agent's schema rejects `undefined`: neither optional nor defaulted.
    if (!Object.prototype.hasOwnProperty.call(stage.with, key) && !shape[key]!.safeParse(undefined).success) {
      findings.push({ path: at('with'), message: `missing required input "${key}" for agent "${stage.agent}"` });
    }
  }
  return findings;
}

/** Returns what is wrong with one reference made by stage `index`, or undefined when it is fine. */
function checkReference(
  ref: string,
  index: number,
  stages: readonly AgentStage[],
  stageIndex: ReadonlyMap<string, number>,
  inputFields: ReadonlySet<string>,
  agents: AgentCatalog,
): string | undefined {
  if (!isValidPath(ref)) {
    return 'malformed path: expected "input.<field>" or "<stage>.<field>" (letters, digits, "_" and "-", dot-separated)';
  }
  const [root, field] = ref.split('.') as [string, string | undefined];
  if (root === 'input') {
    if (field === undefined) return 'name an input field: input.<field>';
    if (!inputFields.has(field)) {
      return `the input schema declares no property "${field}" (declared: ${[...inputFields].join(', ') || 'none'})`;
    }
    return undefined;
  }
  const target = stageIndex.get(root);
  if (target === undefined) {
    const earlier = stages.slice(0, index).map((s) => s.name);
    return `unknown stage "${root}" (earlier stages: ${earlier.join(', ') || 'none'})`;
  }
  if (target === index) return 'a stage cannot reference its own output';
  if (target > index) return `stage "${root}" runs later; only earlier stages' outputs can be referenced`;
  if (field === undefined) return undefined;
  const producer = stages[target]!;
  const output = agents.get(producer.agent)?.output.shape;
  // An unknown producer agent is already reported on its own stage; do not pile a second error on top.
  if (output && !Object.prototype.hasOwnProperty.call(output, field)) {
    const fields = Object.keys(output).join(', ') || 'none';
    return `stage "${root}" (agent "${producer.agent}") has no output field "${field}" (fields: ${fields})`;
  }
  return undefined;
}

function declaredInputFields(schema: PipelineDefinition['input']): Set<string> {
  const properties = schema.properties;
  return typeof properties === 'object' && properties !== null && !Array.isArray(properties)
    ? new Set(Object.keys(properties))
    : new Set();
}

function forEachString(value: JsonValue, path: Path, visit: (text: string, path: Path) => void): void {
  if (typeof value === 'string') visit(value, path);
  else if (Array.isArray(value)) value.forEach((item, i) => forEachString(item, [...path, i], visit));
  else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) forEachString(item, [...path, key], visit);
  }
}
