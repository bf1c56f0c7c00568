import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..', '..');
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'agentry-demo-input-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `agentry demo ...` as a real process, with its own state folder. */
function demo(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli.ts'), 'demo', ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', AGENTRY_STATE_DIR: join(dir, 'state') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', fail);
    child.once('exit', (code) => done({ code, stdout, stderr }));
  });
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
