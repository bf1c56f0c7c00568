import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, type CliResult } from '../helpers/processes';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'agentry-demo-input-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `agentry demo ...` as a real process, with its own state folder. */
function demo(...args: string[]): Promise<CliResult> {
  return runCli(['demo', ...args], { AGENTRY_STATE_DIR: join(dir, 'state') });
}

test('the demo refuses tickets the pipeline input schema would reject, naming file, line and field, before starting anything', async () => {
  const tickets = join(dir, 'tickets.jsonl');
  writeFileSync(tickets, `{"text":"my card is lost"}\n{"text":"${'a'.repeat(20_001)}"}\n`);
  const noText = join(dir, 'no-text.csv');
  writeFileSync(noText, 'body\nhello\n');
  const [schema, header] = await Promise.all([demo('--input', tickets), demo('--input', noText)]);

  expect(schema.code).toBe(1);
  expect(schema.stderr).toContain(`${tickets}:2: text: must NOT have more than 20000 characters`);
  expect(header.code).toBe(1);
  expect(header.stderr).toContain(`${noText}:1: text: the CSV header has no "text" column`);
  for (const run of [schema, header]) {
    // Nothing started: no stack lines, no child logs.
    expect(run.stdout).not.toMatch(/Temporal:|PostgreSQL:/);
  }
  expect(existsSync(join(dir, 'state', 'logs'))).toBe(false);
});
