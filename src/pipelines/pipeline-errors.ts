/** One thing wrong with a pipeline definition, located as precisely as the source allows. */
export interface PipelineProblem {
  /** File name as given to the loader (the base name for files read from disk). */
  file: string;
  /** 1-based line in the file; absent when the position is unknown. */
  line?: number;
  /** Name of the stage concerned (`#3` for a stage without a usable name); absent for pipeline-level fields. */
  stage?: string;
  /** Dotted field path, relative to the stage when `stage` is set (`agent`, `with.text`, `limits.runTimeout`). */
  field: string;
  message: string;
}

/** Renders a problem as `file:line stage "s" field "f": message`, leaving out the parts it does not have. */
export function formatProblem(problem: PipelineProblem): string {
  let where = problem.file;
  if (problem.line !== undefined) where += `:${problem.line}`;
  if (problem.stage !== undefined) {
    where += problem.stage.startsWith('#') ? ` stage ${problem.stage}` : ` stage "${problem.stage}"`;
  }
  if (problem.field) where += ` field "${problem.field}"`;
  return `${where}: ${problem.message}`;
}

/**
 * Thrown when a pipeline definition cannot be loaded. The top-level fields describe the first problem; all of
 * them are in `problems` and in the message, one per line, so an author fixes a file in one pass.
 */
export class PipelineDefinitionError extends Error {
  override readonly name = 'PipelineDefinitionError';
  readonly file: string;
  readonly line?: number;
  readonly stage?: string;
  readonly field: string;
  readonly problems: readonly PipelineProblem[];

  constructor(problems: readonly PipelineProblem[]) {
    const [first] = problems;
    if (!first) throw new TypeError('PipelineDefinitionError needs at least one problem');
    super(problems.map(formatProblem).join('\n'));
    this.file = first.file;
    this.line = first.line;
    this.stage = first.stage;
    this.field = first.field;
    this.problems = Object.freeze([...problems]);
  }
}
