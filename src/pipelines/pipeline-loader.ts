/**
 * Reads pipeline definitions from YAML or JSON, validates them against the schema and against the agents the
 * worker hosts, and reports every problem with its file, line, stage and field. A definition that loads is
 * one the workflow can interpret without meeting an unknown agent, input key or reference at run time.
 */
import { isUtf8 } from 'node:buffer';
import type { Dirent } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import {
  APPROVAL_OUTPUT_FIELDS,
  createPipelineDefinitionSchema,
  type AgentStage,
  type DefinitionSchemaOptions,
  type JsonValue,
  type PipelineDefinition,
  type Stage,
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

/** Options of the loader functions: `maxParallelStages` (default `MAX_PARALLEL_STAGES`). */
export type PipelineLoaderOptions = DefinitionSchemaOptions;

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
export function parsePipelineText(
  text: string,
  fileName: string,
  agents: AgentCatalog,
  options: PipelineLoaderOptions = {},
): PipelineDefinition {
  return parseSource(text, fileName, agents, options).definition;
}

/** Reads and validates one definition file; errors name the file by its base name. */
export async function loadPipelineFile(
  path: string,
  agents: AgentCatalog,
  options: PipelineLoaderOptions = {},
): Promise<PipelineDefinition> {
  return parsePipelineText(decodeDefinition(await readFile(path), basename(path)), basename(path), agents, options);
}

/** Largest definition file read: real ones are a few KiB. */
const MAX_DEFINITION_BYTES = 1024 * 1024;

/** A definition file's text: UTF-8 only (invalid bytes would silently become U+FFFD), bounded, without a BOM. */
function decodeDefinition(bytes: Buffer, file: string): string {
  if (bytes.length > MAX_DEFINITION_BYTES) {
    throw new PipelineDefinitionError([{ file, field: '', message: `the file is ${bytes.length} bytes; a definition may have at most ${MAX_DEFINITION_BYTES}` }]);
  }
  if (!isUtf8(bytes)) throw new PipelineDefinitionError([{ file, field: '', message: 'the file is not valid UTF-8' }]);
  return bytes.toString('utf8').replace(/^\uFEFF/, '');
}

/** Regular files, and symbolic links to them (a Kubernetes ConfigMap volume holds only links). */
async function isDefinitionFile(dir: string, entry: Dirent): Promise<boolean> {
  if (!DEFINITION_EXTENSIONS.has(extname(entry.name).toLowerCase())) return false;
  if (entry.isFile()) return true;
  if (!entry.isSymbolicLink()) return false;
  return (await stat(join(dir, entry.name)).catch(() => undefined))?.isFile() ?? false;
}

/**
 * Loads every `.yaml`, `.yml` and `.json` file directly in `dir` (not recursively), in file-name order, keyed
 * by pipeline name. Problems from all files are gathered into one `PipelineDefinitionError`, and two files
 * defining the same pipeline name are an error because runs are addressed by name.
 */
export async function loadPipelineDir(
  dir: string,
  agents: AgentCatalog,
  options: PipelineLoaderOptions = {},
): Promise<Map<string, PipelineDefinition>> {
  const schema = schemaFor(options);
  const files: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) if (await isDefinitionFile(dir, entry)) files.push(entry.name);
  files.sort();
  const definitions = new Map<string, PipelineDefinition>();
  const fileOf = new Map<string, string>();
  const problems: PipelineProblem[] = [];
  for (const file of files) {
    try {
      const { definition, source } = parseSource(decodeDefinition(await readFile(join(dir, file)), file), file, agents, options, schema);
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

type DefinitionSchema = ReturnType<typeof createPipelineDefinitionSchema>;

const defaultSchema = createPipelineDefinitionSchema();

function schemaFor(options: PipelineLoaderOptions): DefinitionSchema {
  return options.maxParallelStages === undefined ? defaultSchema : createPipelineDefinitionSchema(options);
}

function parseSource(
  text: string,
  file: string,
  agents: AgentCatalog,
  options: PipelineLoaderOptions,
  schema: DefinitionSchema = schemaFor(options),
): { definition: PipelineDefinition; source: SourceDocument } {
  try {
    return parseChecked(text, file, agents, schema);
  } catch (err) {
    // Recursive parsing and validation overflow the stack on absurdly deep nesting: a problem of the file, not a crash.
    if (err instanceof RangeError && /call stack/i.test(err.message)) {
      throw new PipelineDefinitionError([{ file, field: '', message: 'the document nests too deeply to read' }]);
    }
    throw err;
  }
}

function parseChecked(text: string, file: string, agents: AgentCatalog, schema: DefinitionSchema): { definition: PipelineDefinition; source: SourceDocument } {
  const source = readSource(text, file);
  const result = schema.safeParse(source.data);
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
  // JSON.parse keeps the last of two equal keys without a word; the YAML reading of the same text notices.
  const duplicate = extension === '.json' ? doc.errors.find((e) => e.code === 'DUPLICATE_KEY') : undefined;
  if (duplicate) {
    throw new PipelineDefinitionError([{ file, line: lineCounter.linePos(duplicate.pos[0]).line, field: '', message: `JSON error: ${duplicate.message}` }]);
  }
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

/**
 * Splits a data path into the stage it belongs to (if any) and the field within, and adds the line. A member
 * of a parallel group and a compensation stage are named by their own name (names are unique across the
 * definition); when they have no usable name, the problem goes to the group, or to the pipeline.
 */
function locate(source: SourceDocument, file: string, path: Path, message: string): PipelineProblem {
  const problem: PipelineProblem = { file, field: path.join('.'), message };
  const line = source.lineOf(path);
  if (line !== undefined) problem.line = line;
  const nameAt = (at: Path): string | undefined => {
    const name = valueAt(source.data, [...at, 'name']);
    return typeof name === 'string' && name !== '' ? name : undefined;
  };
  const isIndex = (segment: string | number | undefined): segment is number => typeof segment === 'number';
  if (path[0] === 'stages' && isIndex(path[1])) {
    const member = path[2] === 'parallel' && path[3] === 'stages' && isIndex(path[4]) ? nameAt(path.slice(0, 5)) : undefined;
    if (member !== undefined) {
      problem.stage = member;
      problem.field = path.slice(5).join('.');
    } else {
      problem.stage = nameAt(path.slice(0, 2)) ?? `#${path[1] + 1}`;
      problem.field = path.slice(2).join('.');
    }
  } else if (path[0] === 'onCancel' && isIndex(path[1])) {
    const name = nameAt(path.slice(0, 2));
    if (name !== undefined) {
      problem.stage = name;
      problem.field = path.slice(2).join('.');
    }
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

/** One stage of the definition, wherever it sits. */
interface StageEntry {
  stage: Stage;
  /** Data path of the stage: `['stages', i]`, `['stages', i, 'parallel', 'stages', j]` or `['onCancel', i]`. */
  path: Path;
  /** `main` for the main line (parallel members included), `onCancel` for compensation stages. */
  section: 'main' | 'onCancel';
  /** Position on the main line (members share their group's), or within onCancel. */
  order: number;
  /** The parallel group a member belongs to. */
  group?: string;
}

/** What the reference checks need to know about the whole definition. */
interface ReferenceContext {
  entries: readonly StageEntry[];
  byName: ReadonlyMap<string, StageEntry>;
  inputFields: ReadonlySet<string>;
  signals: ReadonlySet<string>;
  agents: AgentCatalog;
}

const EMPTY_SCOPE = { input: {}, signals: {}, stages: {} };

function stageEntries(definition: PipelineDefinition): StageEntry[] {
  const entries: StageEntry[] = [];
  definition.stages.forEach((stage, i) => {
    entries.push({ stage, path: ['stages', i], section: 'main', order: i });
    if (stage.kind === 'parallel') {
      stage.stages.forEach((member, j) => {
        entries.push({
          stage: member,
          path: ['stages', i, 'parallel', 'stages', j],
          section: 'main',
          order: i,
          group: stage.name,
        });
      });
    }
  });
  definition.onCancel.forEach((stage, i) => entries.push({ stage, path: ['onCancel', i], section: 'onCancel', order: i }));
  return entries;
}

function checkAgainstCatalog(definition: PipelineDefinition, agents: AgentCatalog): Finding[] {
  const findings: Finding[] = [];
  const entries = stageEntries(definition);
  const context: ReferenceContext = {
    entries,
    // The schema has already rejected duplicate names, so every name maps to one stage.
    byName: new Map(entries.map((entry) => [entry.stage.name, entry])),
    inputFields: declaredInputFields(definition.input),
    signals: new Set(definition.signals),
    agents,
  };

  for (const entry of entries) {
    const { stage } = entry;
    const at = (...rest: Path): Path => [...entry.path, ...rest];
    if (stage.kind === 'agent') {
      const agent = agents.get(stage.agent);
      if (!agent) {
        const known = [...agents.names()].sort().join(', ') || 'none';
        findings.push({ path: at('agent'), message: `unknown agent "${stage.agent}" (known: ${known})` });
      } else {
        findings.push(...checkInputs(stage, agent, at));
      }
      forEachString(stage.with, at('with'), (text, path) => {
        for (const part of parseTemplate(text)) {
          if (part.kind === 'unterminated') {
            findings.push({ path, message: `"${part.text}" has no closing "}" (write "$\${" for a literal "\${")` });
          }
        }
      });
    }

    const sites = [
      ...(stage.kind === 'agent'
        ? collectReferenceSites(stage.with, 'mapping').map((site) => ({ ...site, at: at('with', ...site.at) }))
        : []),
      ...(stage.when
        ? collectReferenceSites(stage.when, 'condition').map((site) => ({ ...site, at: at('when', ...site.at) }))
        : []),
    ];
    for (const site of sites) {
      const problem = checkReference(site.ref, entry, context);
      if (problem) findings.push({ path: site.at, message: `reference "${site.ref}": ${problem}` });
    }
  }
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

/**
 * Returns what is wrong with one reference made by the stage `from`, or undefined when it is fine.
 *
 * Main-line stages see the stages before them: earlier top-level stages, the members of earlier parallel
 * groups, and those groups. Members of a group see what the group sees, never each other. Compensation stages
 * see the whole main line (but not each other). Every stage sees `input` and the declared `signals`.
 */
function checkReference(ref: string, from: StageEntry, context: ReferenceContext): string | undefined {
  if (!isValidPath(ref)) {
    return 'malformed path: expected "input.<field>", "signals.<name>" or "<stage>.<field>" (letters, digits, "_" and "-", dot-separated)';
  }
  const [root, field, subfield] = ref.split('.') as [string, string | undefined, string | undefined];
  if (root === 'input') {
    if (field === undefined) return 'name an input field: input.<field>';
    if (!context.inputFields.has(field)) {
      return `the input schema declares no property "${field}" (declared: ${[...context.inputFields].join(', ') || 'none'})`;
    }
    return undefined;
  }
  if (root === 'signals') {
    if (field === undefined) return 'name a signal: signals.<name>';
    if (!context.signals.has(field)) {
      return `the definition declares no signal "${field}" (declared: ${[...context.signals].join(', ') || 'none'})`;
    }
    return undefined;
  }

  const target = context.byName.get(root);
  if (target === undefined) {
    const visible = context.entries.filter((entry) => isVisible(entry, from)).map((entry) => entry.stage.name);
    const label = from.section === 'onCancel' ? 'main-line stages' : 'earlier stages';
    return `unknown stage "${root}" (${label}: ${visible.join(', ') || 'none'})`;
  }
  if (target === from) return 'a stage cannot reference its own output';
  if (!isVisible(target, from)) return whyInvisible(target, from);
  if (field === undefined) return undefined;
  return checkOutputField(target.stage, field, subfield, context);
}

function isVisible(target: StageEntry, from: StageEntry): boolean {
  if (target.section === 'onCancel') return false;
  if (from.section === 'onCancel') return true;
  return target.order < from.order;
}

function whyInvisible(target: StageEntry, from: StageEntry): string {
  const name = target.stage.name;
  if (target.section === 'onCancel') {
    return from.section === 'onCancel'
      ? `stage "${name}" is an onCancel stage too; onCancel stages can reference only input, signals and main-line stages`
      : `stage "${name}" is an onCancel stage, which runs only when a run is cancelled`;
  }
  if (from.group !== undefined && target.group === from.group) {
    return `stage "${name}" is in the same parallel group ("${from.group}"); stages of a group run at the same time and cannot reference each other`;
  }
  if (from.group !== undefined && name === from.group) {
    return `stage "${name}" is the parallel group this stage belongs to; its output exists only once all its stages have finished`;
  }
  if (target.group !== undefined && target.group === from.stage.name) {
    return `stage "${name}" belongs to this parallel group and runs only after its when is evaluated`;
  }
  return `stage "${name}" runs later; only earlier stages' outputs can be referenced`;
}

/** Checks the first field (and, through a parallel group, the member's field) of a reference to `stage`. */
function checkOutputField(
  stage: Stage,
  field: string,
  subfield: string | undefined,
  context: ReferenceContext,
): string | undefined {
  if (stage.kind === 'approval') {
    if (!(APPROVAL_OUTPUT_FIELDS as readonly string[]).includes(field)) {
      return `stage "${stage.name}" (approval) has no output field "${field}" (fields: ${APPROVAL_OUTPUT_FIELDS.join(', ')})`;
    }
    return undefined;
  }
  if (stage.kind === 'parallel') {
    const member = stage.stages.find((m) => m.name === field);
    if (!member) {
      const names = stage.stages.map((m) => m.name).join(', ');
      return `parallel group "${stage.name}" has no stage "${field}" (its output is keyed by stage: ${names})`;
    }
    return subfield === undefined ? undefined : checkOutputField(member, subfield, undefined, context);
  }
  const output = context.agents.get(stage.agent)?.output.shape;
  // An unknown producer agent is already reported on its own stage; do not pile a second error on top.
  if (output && !Object.prototype.hasOwnProperty.call(output, field)) {
    const fields = Object.keys(output).join(', ') || 'none';
    return `stage "${stage.name}" (agent "${stage.agent}") has no output field "${field}" (fields: ${fields})`;
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
