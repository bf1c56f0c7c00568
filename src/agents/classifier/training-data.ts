/**
 * Reading labelled CSV files (`text,category`). Every problem is reported as a `TrainingDataError` naming the
 * file and, where there is one, the line, because the person fixing it has the file open in an editor.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { CsvError, parse } from 'csv-parse/sync';
import { TrainingDataError } from '../agent-errors';
import type { LabelledExample } from './softmax-model';

export interface LabelledFile {
  examples: LabelledExample[];
  /** sha256 of the raw bytes, hex; the model cache is keyed by it. */
  sha256: string;
}

const REQUIRED_COLUMNS = ['text', 'category'] as const;

export async function readLabelledCsv(file: string): Promise<LabelledFile> {
  let content: Buffer;
  try {
    content = await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TrainingDataError(file, undefined, `cannot read training file${code ? ` (${code})` : ''}`);
  }
  return { examples: parseLabelledCsv(content, file), sha256: sha256Hex(content) };
}

export function sha256Hex(content: Buffer | string): string {
  return createHash('sha256').update(content).digest('hex');
}

/** Parses and validates; `file` is only used in error messages. */
export function parseLabelledCsv(content: Buffer | string, file: string): LabelledExample[] {
  let rows: Array<{ record: string[]; info: { lines: number } }>;
  try {
    // With `info` each row arrives as { record, info }; the typings only describe the plain shape.
    rows = parse(content, { bom: true, info: true, skip_empty_lines: true }) as unknown as typeof rows;
  } catch (err) {
    if (err instanceof CsvError) {
      const line = typeof err.lines === 'number' ? err.lines : undefined;
      throw new TrainingDataError(file, line, `malformed CSV: ${err.message}`);
    }
    throw err;
  }
  if (rows.length === 0) throw new TrainingDataError(file, 1, 'file is empty; expected a "text,category" header');

  const header = rows[0].record.map((name) => name.trim().toLowerCase());
  const columns = REQUIRED_COLUMNS.map((name) => header.indexOf(name));
  if (columns.some((index) => index < 0)) {
    throw new TrainingDataError(
      file,
      rows[0].info.lines,
      `header must name the columns "text" and "category", found ${JSON.stringify(rows[0].record)}`,
    );
  }
  const [textColumn, categoryColumn] = columns;

  const examples: LabelledExample[] = [];
  for (const { record, info } of rows.slice(1)) {
    const text = record[textColumn].trim();
    const label = record[categoryColumn].trim();
    // csv-parse reports the line a record ends on; for the usual one-line record that is its line.
    if (!text) throw new TrainingDataError(file, info.lines, 'empty "text" field');
    if (!label) throw new TrainingDataError(file, info.lines, 'empty "category" field');
    examples.push({ text, label });
  }
  if (examples.length === 0) throw new TrainingDataError(file, undefined, 'no examples after the header');
  if (new Set(examples.map((e) => e.label)).size < 2) {
    throw new TrainingDataError(file, undefined, 'need examples of at least two categories');
  }
  return examples;
}
