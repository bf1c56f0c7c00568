import { readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { parse } from 'csv-parse/sync';

export interface Ticket {
  text: string;
  /** The true intent, when the file is labelled. */
  category?: string;
  ticketId: string;
}

export class InputFileError extends Error {
  override readonly name = 'InputFileError';
  constructor(readonly file: string, readonly line: number | undefined, readonly field: string | undefined, reason: string) {
    super(`${file}${line ? `:${line}` : ''}${field ? ` field "${field}"` : ''}: ${reason}`);
  }
}

function check(file: string, line: number, row: Record<string, unknown>): Ticket {
  const text = row.text;
  if (typeof text !== 'string' || text.trim() === '') throw new InputFileError(file, line, 'text', 'must be a non-empty string');
  const category = row.category;
  if (category !== undefined && category !== '' && typeof category !== 'string') {
    throw new InputFileError(file, line, 'category', 'must be a string when present');
  }
  const id = row.ticketId ?? row.id;
  return {
    text,
    category: typeof category === 'string' && category !== '' ? category : undefined,
    ticketId: typeof id === 'string' || typeof id === 'number' ? String(id) : `${basename(file)}-${line}`,
  };
}

/**
 * Reads tickets from a CSV (header with `text`, optional `category`) or JSONL file (one object per line with
 * `text`, optional `category` and `ticketId`). Errors name the file, line and field.
 */
export function readTickets(file: string, limit?: number): Ticket[] {
  let content: string;
  try {
    content = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputFileError(file, undefined, undefined, `cannot read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const tickets: Ticket[] = [];
  const max = limit ?? Infinity;
  if (['.jsonl', '.ndjson'].includes(extname(file).toLowerCase())) {
    const lines = content.split('\n');
    for (let i = 0; i < lines.length && tickets.length < max; i++) {
      if (lines[i].trim() === '') continue;
      let row: unknown;
      try {
        row = JSON.parse(lines[i]);
      } catch {
        throw new InputFileError(file, i + 1, undefined, 'not valid JSON');
      }
      if (typeof row !== 'object' || row === null || Array.isArray(row)) throw new InputFileError(file, i + 1, undefined, 'expected a JSON object');
      tickets.push(check(file, i + 1, row as Record<string, unknown>));
    }
    return tickets;
  }
  let records: { record: Record<string, string>; info: { lines: number } }[];
  try {
    records = parse(content, { columns: true, skip_empty_lines: true, info: true, bom: true, to: limit }) as typeof records;
  } catch (err) {
    const e = err as { lines?: number; message: string };
    throw new InputFileError(file, e.lines, undefined, `not valid CSV: ${e.message.replace(/^Invalid Record Length: /, '')}`);
  }
  if (records.length > 0 && !('text' in records[0].record)) {
    throw new InputFileError(file, 1, 'text', 'the CSV header has no "text" column');
  }
  for (const { record, info } of records) tickets.push(check(file, info.lines, record));
  return tickets;
}
