import { readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { parse } from 'csv-parse/sync';
import type { CatalogEntry } from '../pipelines/pipeline-catalog';
import { createInputChecker, type InputChecker } from '../security';
import { count } from './format';
import { hasLoneSurrogate } from '../security/unicode';

export interface Ticket {
  text: string;
  /** The true intent, when the file is labelled. */
  category?: string;
  ticketId: string;
  /** Line of the input file the ticket comes from (1-based; for CSV, the line its record ends on). */
  line: number;
}

/** One thing wrong with an input file: where (file, line, field) and what. */
export interface TicketProblem {
  file: string;
  line?: number;
  field?: string;
  message: string;
}

/** `FILE:LINE: field: message`, the shape compilers use, so editors and grep can jump to it. */
export function formatTicketProblem(p: TicketProblem): string {
  // Messages may quote the file (a parser's error): control characters are shown escaped, never sent to the terminal.
  const message = p.message.replace(/\p{Cc}/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `${p.file}${p.line !== undefined ? `:${p.line}` : ''}: ${p.field ? `${p.field}: ` : ''}${message}`;
}


/** The 1-based numbers of the lines that are not valid UTF-8 (the facade refuses such text). */
function invalidUtf8Lines(bytes: Buffer): number[] {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const bad: number[] = [];
  let start = 0;
  for (let line = 1; start <= bytes.length; line++) {
    const end = bytes.indexOf(0x0a, start);
    const stop = end === -1 ? bytes.length : end;
    try {
      decoder.decode(bytes.subarray(start, stop));
    } catch {
      bad.push(line);
    }
    if (end === -1) break;
    start = end + 1;
  }
  return bad;
}

/** Problems shown in an error message; the full list stays on `problems`. */
const SHOWN_PROBLEMS = 20;

export class InputFileError extends Error {
  override readonly name = 'InputFileError';
  constructor(
    readonly problems: readonly TicketProblem[],
    heading?: string,
  ) {
    const shown = problems.slice(0, SHOWN_PROBLEMS).map(formatTicketProblem);
    if (problems.length > SHOWN_PROBLEMS) shown.push(`... and ${problems.length - SHOWN_PROBLEMS} more`);
    super(heading ? [heading, ...shown].join('\n') : shown.join('\n'));
  }
}

/** The ticket as one row's fields; problems name the row's line and field. */
function check(file: string, line: number, row: Record<string, unknown>, problems: TicketProblem[]): Ticket | undefined {
  const before = problems.length;
  const text = row.text;
  if (typeof text !== 'string' || text.trim() === '') problems.push({ file, line, field: 'text', message: 'must be a non-empty string' });
  else if (hasLoneSurrogate(text)) problems.push({ file, line, field: 'text', message: 'must be well-formed Unicode (it holds a lone surrogate)' });
  const category = row.category;
  if (category !== undefined && category !== null && category !== '' && typeof category !== 'string') {
    problems.push({ file, line, field: 'category', message: 'must be a string when present' });
  }
  if (problems.length > before) return undefined;
  const id = row.ticketId ?? row.id;
  return {
    text: text as string,
    category: typeof category === 'string' && category !== '' ? category : undefined,
    ticketId: typeof id === 'string' || typeof id === 'number' ? String(id) : `${basename(file)}-${line}`,
    line,
  };
}

/**
 * The indices of `limit` of `total` rows spread evenly over them, in order: every (total/limit)-th row, starting with
 * the first. Labelled data sets are often sorted by label, so the first `limit` rows would all share one label.
 */
export function spreadIndices(total: number, limit: number | undefined): number[] {
  const n = limit === undefined ? total : Math.min(limit, total);
  return Array.from({ length: n }, (_, i) => Math.floor((i * total) / n));
}

function readJsonl(file: string, content: string, limit: number | undefined, problems: TicketProblem[]): Ticket[] {
  const tickets: Ticket[] = [];
  const lines = content.split('\n');
  const rows = lines.flatMap((text, i) => (text.trim() === '' ? [] : [i]));
  // Only the chosen rows are parsed and checked: a bad row --limit leaves out does not stop the demo.
  for (const i of spreadIndices(rows.length, limit).map((k) => rows[k])) {
    const line = i + 1;
    let row: unknown;
    try {
      row = JSON.parse(lines[i]);
    } catch (err) {
      problems.push({ file, line, message: `not valid JSON (${(err as Error).message})` });
      continue;
    }
    if (typeof row !== 'object' || row === null || Array.isArray(row)) {
      problems.push({ file, line, message: 'expected a JSON object such as {"text": "...", "category": "..."}' });
      continue;
    }
    const ticket = check(file, line, row as Record<string, unknown>, problems);
    if (ticket) tickets.push(ticket);
  }
  return tickets;
}

function readCsv(file: string, content: string, limit: number | undefined, problems: TicketProblem[]): Ticket[] {
  let header: string[] | undefined;
  let records: { record: Record<string, string>; info: { lines: number } }[];
  try {
    records = parse(content, {
      columns: (names: string[]) => {
        header = names;
        return names;
      },
      skip_empty_lines: true,
      info: true,
      bom: true,
    }) as typeof records;
  } catch (err) {
    const e = err as { lines?: number; message: string };
    problems.push({ file, line: e.lines, message: `not valid CSV: ${e.message.replace(/^Invalid Record Length: /, '')}` });
    return [];
  }
  if (header && !header.includes('text')) {
    problems.push({ file, line: 1, field: 'text', message: `the CSV header has no "text" column (it has: ${header.join(', ') || 'no columns'})` });
    return [];
  }
  const tickets: Ticket[] = [];
  // The whole file is parsed (a record's end is only known by parsing), but only the chosen rows are checked.
  for (const { record, info } of spreadIndices(records.length, limit).map((k) => records[k])) {
    const ticket = check(file, info.lines, record, problems);
    if (ticket) tickets.push(ticket);
  }
  return tickets;
}

/**
 * Reads tickets from a CSV (header with `text`, optional `category`) or JSONL file (one object per line with
 * `text`, optional `category` and `ticketId`). With `limit`, that many rows spread evenly over the file, in file
 * order (see `spreadIndices`). Every bad row read is reported, not only the first: throws `InputFileError` whose
 * problems name the file, line and field.
 */
export function readTickets(file: string, limit?: number): Ticket[] {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new InputFileError([{ file, message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? 'error'}` }]);
  }
  const badLines = invalidUtf8Lines(bytes);
  if (badLines.length > 0) {
    const problems = badLines.map((line): TicketProblem => ({ file, line, message: 'not valid UTF-8 (save the file as UTF-8)' }));
    throw new InputFileError(problems, `${file}: ${count(problems.length, 'problem')}; nothing was started:`);
  }
  const content = bytes.toString('utf8');
  const problems: TicketProblem[] = [];
  const tickets = ['.jsonl', '.ndjson'].includes(extname(file).toLowerCase())
    ? readJsonl(file, content, limit, problems)
    : readCsv(file, content, limit, problems);
  if (problems.length > 0) throw new InputFileError(problems, `${file}: ${count(problems.length, 'problem')}; nothing was started:`);
  return tickets;
}

/** The run input a ticket becomes: what the demo sends to `POST /v1/pipelines/:pipeline/runs`. */
export function ticketRunInput(ticket: Ticket): Record<string, unknown> {
  const input: Record<string, unknown> = { text: ticket.text, ticketId: ticket.ticketId.slice(0, 128) };
  if (ticket.category) input.category = ticket.category;
  return input;
}

/** `/a/b` (a JSON Pointer into the run input) as the field name `a.b`; the whole input is `input`. */
function fieldOf(pointer: string): string {
  const parts = pointer.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  return parts.length > 0 ? parts.join('.') : 'input';
}

/**
 * Checks every ticket's run input against the pipeline's input schema and size limit, with the checker the facade
 * uses, so a ticket the facade would refuse is found before anything starts. Answers the problems, empty when all fit.
 */
export function checkTickets(file: string, tickets: readonly Ticket[], pipeline: CatalogEntry, checker: InputChecker = createInputChecker()): TicketProblem[] {
  const def = pipeline.definition;
  return tickets.flatMap((ticket) => {
    const result = checker.check(def.input, pipeline.hash, ticketRunInput(ticket), def.limits.maxInputBytes);
    return result.problems.map((p) => ({ file, line: ticket.line, field: fieldOf(p.path), message: p.message }));
  });
}
