/**
 * Errors raised around agents. Class names are matched by the worker's failure mapping (a retry contract), so
 * they are part of the public surface: do not rename them casually. None of these is fixed by retrying.
 */

/** One zod issue, flattened to a dotted path (`table.foo`, `alternatives[0].label`) and a message. */
export interface AgentIssue {
  readonly path: string;
  readonly message: string;
}

function describeIssues(issues: readonly AgentIssue[]): string {
  return issues.map((issue) => (issue.path ? `${issue.path}: ${issue.message}` : issue.message)).join('; ');
}

/** The caller's input does not match the agent's input schema. */
export class AgentInputError extends Error {
  override readonly name = 'AgentInputError';
  constructor(
    readonly agent: string,
    readonly issues: readonly AgentIssue[],
  ) {
    super(`invalid input for agent "${agent}": ${describeIssues(issues)}`);
  }
}

/** The agent returned something its own output schema rejects: a bug in the agent, not in the caller. */
export class AgentOutputError extends Error {
  override readonly name = 'AgentOutputError';
  constructor(
    readonly agent: string,
    readonly issues: readonly AgentIssue[],
  ) {
    super(`agent "${agent}" produced invalid output: ${describeIssues(issues)}`);
  }
}

export class UnknownAgentError extends Error {
  override readonly name = 'UnknownAgentError';
  constructor(
    readonly agent: string,
    readonly known: readonly string[],
  ) {
    super(`unknown agent "${agent}" (known: ${known.join(', ') || 'none'})`);
  }
}

/** Two agents registered under one name; the registry refuses to guess which one a pipeline meant. */
export class DuplicateAgentError extends Error {
  override readonly name = 'DuplicateAgentError';
  constructor(readonly agent: string) {
    super(`agent "${agent}" is registered twice`);
  }
}

/** A labelled training file is missing, unreadable or malformed. `line` is 1-based when known. */
export class TrainingDataError extends Error {
  override readonly name = 'TrainingDataError';
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly reason: string,
  ) {
    super(`${line === undefined ? file : `${file}:${line}`}: ${reason}`);
  }
}

/** A reply template file that cannot be used: bad YAML, wrong shape, or a template with unknown placeholders. */
export class TemplateLoadError extends Error {
  override readonly name = 'TemplateLoadError';
  constructor(
    readonly file: string,
    readonly template: string | undefined,
    readonly reason: string,
  ) {
    super(`${file}${template === undefined ? '' : ` (template "${template}")`}: ${reason}`);
  }
}
