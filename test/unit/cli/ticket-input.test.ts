import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createBuiltinAgents } from '../../../src/agents';
import { loadPipelineCatalog, type CatalogEntry } from '../../../src/pipelines/pipeline-catalog';
import { checkTickets, formatTicketProblem, InputFileError, readTickets, spreadIndices, ticketRunInput } from '../../../src/cli/ticket-input';

const ROOT = resolve(__dirname, '..', '..', '..');
let dir: string;
let triage: CatalogEntry;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'agentry-tickets-'));
  const agents = createBuiltinAgents({ trainFile: join(ROOT, 'src/demo/train.csv'), cacheDir: join(dir, 'models') });
  triage = (await loadPipelineCatalog(join(ROOT, 'src/pipelines/definitions'), agents)).get('support-triage')!;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fixture(name: string, content: string): string {
  const file = join(dir, name);
  writeFileSync(file, content);
  return file;
}

/** The formatted problems `readTickets` throws, one `FILE:LINE: field: message` line each. */
function problemsOf(read: () => unknown): string[] {
  try {
    read();
  } catch (err) {
    if (err instanceof InputFileError) return err.problems.map(formatTicketProblem);
    throw err;
  }
  throw new Error('expected an InputFileError');
}

test('reads JSONL tickets with their line numbers, ids and labels', () => {
  const file = fixture('ok.jsonl', '{"text":"card lost","category":"lost_or_stolen_card","ticketId":"T-1"}\n\n{"text":"where is my money","id":7}\n');
  expect(readTickets(file)).toEqual([
    { text: 'card lost', category: 'lost_or_stolen_card', ticketId: 'T-1', line: 1 },
    { text: 'where is my money', category: undefined, ticketId: '7', line: 3 },
  ]);
});

test('reports every bad JSONL line as FILE:LINE: field: message, not only the first', () => {
  const file = fixture('bad.jsonl', ['{"text":"fine"}', '{"text": "cut off', '["not", "an object"]', '', '{"category":"x"}', '{"text":"ok","category":5}'].join('\n'));
  const problems = problemsOf(() => readTickets(file));
  expect(problems).toHaveLength(4);
  expect(problems[0]).toMatch(new RegExp(`^${literal(file)}:2: not valid JSON \\(.+\\)$`));
  expect(problems.slice(1)).toEqual([
    `${file}:3: expected a JSON object such as {"text": "...", "category": "..."}`,
    `${file}:5: text: must be a non-empty string`,
    `${file}:6: category: must be a string when present`,
  ]);
});

test('the error message lists the problems under a heading that names the file', () => {
  const file = fixture('empty-text.jsonl', '{"text":"  "}\n');
  expect(() => readTickets(file)).toThrow(`${file}: 1 problem; nothing was started:\n${file}:1: text: must be a non-empty string`);
});

test('text the facade would refuse is reported before anything starts: invalid UTF-8, lone surrogates', () => {
  const file = join(dir, 'bad-bytes.csv');
  writeFileSync(file, Buffer.concat([Buffer.from('text,category\nfine,card\n'), Buffer.from([0x62, 0xff, 0xfe, 0x0a]), Buffer.from('also fine,card\n')]));
  expect(problemsOf(() => readTickets(file))).toEqual([`${file}:3: not valid UTF-8 (save the file as UTF-8)`]);
  const jsonl = fixture('surrogate.jsonl', '{"text":"ok"}\n{"text":"a\\ud800"}\n');
  expect(problemsOf(() => readTickets(jsonl))).toEqual([`${jsonl}:2: text: must be well-formed Unicode (it holds a lone surrogate)`]);
});

test('control characters quoted from the file are shown escaped', () => {
  expect(formatTicketProblem({ file: 'f.jsonl', line: 1, message: 'not valid JSON (Unexpected token \u001b[31m)' })).toBe('f.jsonl:1: not valid JSON (Unexpected token \\u001b[31m)');
});

test('--limit N reads N rows spread evenly over the file, in file order, and a bad row it leaves out does not count', () => {
  const file = fixture('limited.jsonl', '{"text":"one"}\nnot json\n\n{"text":"three"}\n{"text":"four"}\n');
  // Four rows (the empty line is not one), two taken: the first and the third.
  expect(readTickets(file, 2).map((t) => [t.text, t.line])).toEqual([['one', 1], ['three', 4]]);
  expect(problemsOf(() => readTickets(file, 3))).toEqual([expect.stringMatching(new RegExp(`^${literal(file)}:2: not valid JSON`))]);
  expect(readTickets(file, 1).map((t) => t.text)).toEqual(['one']);
});

test('--limit on a CSV sorted by category takes every category, not the first rows of one', () => {
  // 4 categories of 5 tickets each, sorted by category, as banking77's test.csv is.
  const categories = ['card_arrival', 'card_linking', 'exchange_rate', 'top_up_failed'];
  const rows = categories.flatMap((c) => Array.from({ length: 5 }, (_, i) => `ticket ${i} about ${c},${c}`));
  const file = fixture('sorted.csv', `text,category\n${rows.join('\n')}\n`);
  const taken = readTickets(file, 4);
  expect(taken.map((t) => t.category)).toEqual(categories);
  expect(taken.map((t) => t.line)).toEqual([2, 7, 12, 17]);
  // Deterministic: the same rows every time; and a limit of at least the row count reads them all.
  expect(readTickets(file, 4)).toEqual(taken);
  expect(readTickets(file, 8).map((t) => t.line)).toEqual([2, 4, 7, 9, 12, 14, 17, 19]);
  expect(readTickets(file, 100)).toHaveLength(20);
});

test('spreadIndices picks every (total/limit)-th row from the first, all rows without a limit', () => {
  expect(spreadIndices(10, 3)).toEqual([0, 3, 6]);
  expect(spreadIndices(3080, 30)[29]).toBeLessThan(3080);
  expect(new Set(spreadIndices(3080, 300)).size).toBe(300);
  expect(spreadIndices(4, undefined)).toEqual([0, 1, 2, 3]);
  expect(spreadIndices(2, 5)).toEqual([0, 1]);
  expect(spreadIndices(0, 5)).toEqual([]);
});

test('a CSV without a text column is reported at line 1, naming the columns it has', () => {
  const file = fixture('no-text.csv', 'body,category\nhello,greeting\n');
  expect(problemsOf(() => readTickets(file))).toEqual([`${file}:1: text: the CSV header has no "text" column (it has: body, category)`]);
  // Even when no data row follows the header.
  const headerOnly = fixture('header-only.csv', 'message\n');
  expect(problemsOf(() => readTickets(headerOnly))).toEqual([`${headerOnly}:1: text: the CSV header has no "text" column (it has: message)`]);
});

test('reads CSV rows and reports empty text cells by line', () => {
  const file = fixture('rows.csv', 'text,category\nmy card is lost,lost_or_stolen_card\n"",card_arrival\nwhere is it,\n');
  expect(problemsOf(() => readTickets(file))).toEqual([`${file}:3: text: must be a non-empty string`]);
  const good = fixture('good.csv', '\uFEFFtext,category\nmy card is lost,lost_or_stolen_card\nwhere is it,\n');
  expect(readTickets(good)).toEqual([
    { text: 'my card is lost', category: 'lost_or_stolen_card', ticketId: 'good.csv-2', line: 2 },
    { text: 'where is it', category: undefined, ticketId: 'good.csv-3', line: 3 },
  ]);
});

test('a CSV with a broken record names its line', () => {
  const file = fixture('ragged.csv', 'text,category\nfine,a\ntoo,many,cells\n');
  expect(problemsOf(() => readTickets(file))).toEqual([expect.stringMatching(new RegExp(`^${literal(file)}:3: not valid CSV: `))]);
});

test('checks each ticket against the support-triage input schema, naming line and field', () => {
  const long = 'a'.repeat(20_001);
  const file = fixture('long.jsonl', `{"text":"fine"}\n{"text":"${long}"}\n{"text":"also fine","ticketId":"${'x'.repeat(300)}"}\n`);
  const tickets = readTickets(file);
  expect(tickets).toHaveLength(3);
  expect(checkTickets(file, tickets, triage).map(formatTicketProblem)).toEqual([`${file}:2: text: must NOT have more than 20000 characters`]);
  // Long ticket ids are cut to the schema's 128 characters, as the demo sends them.
  expect(ticketRunInput(tickets[2]).ticketId).toHaveLength(128);
});

test('tickets that fit the schema produce no problems', () => {
  const file = fixture('fits.csv', 'text,category\nI was charged twice,transaction_charged_twice\n');
  expect(checkTickets(file, readTickets(file), triage)).toEqual([]);
});

function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
