import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, type CliResult } from '../../helpers/processes';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'agentry-cli-options-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `agentry ...` as a real process, with a state folder of its own; commander reads the options before any action runs. */
function agentry(...args: string[]): Promise<CliResult> {
  return runCli([...args], { AGENTRY_STATE_DIR: join(dir, 'state') });
}

test('the demo refuses a bad port or count while reading its options, naming the option, before anything starts', async () => {
  const [port, concurrency, limit] = await Promise.all([
    agentry('demo', '--port', '99999'),
    agentry('demo', '--concurrency', '0'),
    agentry('demo', '--limit', '2x'),
  ]);
  expect(port.code).toBe(1);
  expect(port.stderr).toContain("option '--port <n>' argument '99999' is invalid. expected a port from 1 to 65535");
  expect(concurrency.stderr).toContain("option '--concurrency <n>' argument '0' is invalid. expected a whole number of 1 or more");
  expect(limit.stderr).toContain("option '--limit <n>' argument '2x' is invalid");
  for (const run of [port, concurrency, limit]) {
    expect(run.code).toBe(1);
    expect(run.stdout).not.toMatch(/agentry demo:|Temporal:|PostgreSQL:|LLM:/);
  }
}, 120_000);

test('help shows one default per option: the demo port and input, and the token lifetime', async () => {
  const [demo, token] = await Promise.all([agentry('demo', '--help'), agentry('token', '--help')]);
  const help = (text: string, option: string) => {
    // One option's help, joined across its wrapped lines.
    const lines = text.split('\n');
    const start = lines.findIndex((l) => l.trimStart().startsWith(option));
    const end = lines.findIndex((l, i) => i > start && /^\s{2}-/.test(l));
    return lines.slice(start, end === -1 ? undefined : end).map((l) => l.trim()).join(' ');
  };
  expect(help(demo.stdout, '--port')).toMatch(/\(default: \$PORT, else 3000\)$/);
  expect(help(demo.stdout, '--input')).toMatch(/\(default: src\/demo\/tickets\.csv\)$/);
  const ttl = help(token.stdout, '--ttl');
  expect(ttl.match(/default/g)).toHaveLength(1);
  expect(ttl).toMatch(/\(default: 3600\)$/);
}, 120_000);
