import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PROJECT_TOOLS_DIR } from '../temporal/temporal-cli';
import { isExecutable, findOnPath } from '../runtime/executables';

/**
 * Tools the test suite needs beyond npm, installed by `npm run setup` into the git-ignored `.tools/`:
 * schemathesis (PyPI), which feeds generated requests to the facade from its OpenAPI description, and nginx (the
 * Debian package, extracted, not installed), the load balancer of the two-facade topology test.
 */

/** The schemathesis release the generated-input test runs (PyPI package `schemathesis`). */
export const SCHEMATHESIS_VERSION = '4.32.5';
export const SCHEMATHESIS_VENV = join(PROJECT_TOOLS_DIR, `schemathesis-${SCHEMATHESIS_VERSION}`);
export const SCHEMATHESIS_CLI = join(SCHEMATHESIS_VENV, 'bin', 'st');

/** Where `.ci/debian-tool.sh` (which holds the Debian pins) extracts packages for the tests. */
export const DEBIAN_TOOLS_DIR = join(PROJECT_TOOLS_DIR, 'deb');
const DEBIAN_TOOL_SCRIPT = resolve(__dirname, '..', '..', '.ci', 'debian-tool.sh');

export class TestToolUnavailableError extends Error {
  override readonly name = 'TestToolUnavailableError';
  constructor(readonly tool: string, readonly reason: string) {
    super(`${tool} is not available: ${reason}`);
  }
}

export interface ToolOptions {
  /** Install when the tool is missing. @default true */
  install?: boolean;
  log?: (line: string) => void;
}

function lastLines(out: { stdout?: string | null; stderr?: string | null; status: number | null }): string {
  const text = `${out.stderr ?? ''}\n${out.stdout ?? ''}`.trim().split('\n').filter((l) => l && !/^WARNING/.test(l));
  return text.slice(-3).join(' ') || `exit ${out.status}`;
}

function runsSchemathesis(path: string): boolean {
  const out = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 60_000 });
  return out.status === 0 && out.stdout.includes(SCHEMATHESIS_VERSION);
}

/**
 * The pinned schemathesis CLI (`st`), in a virtual environment of its own under `.tools/` so its dependencies
 * never meet the machine's Python packages. Throws `TestToolUnavailableError` when it cannot be installed.
 */
export function resolveSchemathesis(opts: ToolOptions = {}): string {
  if (isExecutable(SCHEMATHESIS_CLI) && runsSchemathesis(SCHEMATHESIS_CLI)) return SCHEMATHESIS_CLI;
  if (opts.install === false) throw new TestToolUnavailableError('schemathesis', `no ${SCHEMATHESIS_CLI} (run \`npm run setup\`)`);
  const python = findOnPath('python3') ?? findOnPath('python');
  if (!python) throw new TestToolUnavailableError('schemathesis', 'no python3 on PATH to install it with');
  opts.log?.(`installing schemathesis==${SCHEMATHESIS_VERSION} into ${SCHEMATHESIS_VENV}`);
  rmSync(SCHEMATHESIS_VENV, { recursive: true, force: true });
  mkdirSync(PROJECT_TOOLS_DIR, { recursive: true });
  const venv = spawnSync(python, ['-m', 'venv', SCHEMATHESIS_VENV], { encoding: 'utf8', timeout: 120_000 });
  if (venv.status !== 0) throw new TestToolUnavailableError('schemathesis', `python3 -m venv failed: ${lastLines(venv)}`);
  const pip = spawnSync(
    join(SCHEMATHESIS_VENV, 'bin', 'python'),
    ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', `schemathesis==${SCHEMATHESIS_VERSION}`],
    { encoding: 'utf8', timeout: 600_000 },
  );
  if (pip.status !== 0) throw new TestToolUnavailableError('schemathesis', `pip install schemathesis==${SCHEMATHESIS_VERSION} failed: ${lastLines(pip)}`);
  if (!runsSchemathesis(SCHEMATHESIS_CLI)) throw new TestToolUnavailableError('schemathesis', `installed, but ${SCHEMATHESIS_CLI} does not run`);
  return SCHEMATHESIS_CLI;
}

function runsNginx(path: string): boolean {
  return spawnSync(path, ['-v'], { encoding: 'utf8', timeout: 20_000 }).status === 0;
}

/**
 * An nginx binary: the one on PATH, else the pinned Debian package extracted into `.tools/deb/nginx` by
 * `.ci/debian-tool.sh` (apt-get download and dpkg-deb; nothing is installed and no service starts). Throws
 * `TestToolUnavailableError` when neither works, e.g. on a machine without apt.
 */
export function resolveNginx(opts: ToolOptions = {}): string {
  const onPath = findOnPath('nginx');
  if (onPath && runsNginx(onPath)) return onPath;
  const extracted = join(DEBIAN_TOOLS_DIR, 'nginx', 'usr', 'sbin', 'nginx');
  if (isExecutable(extracted) && runsNginx(extracted)) return extracted;
  if (opts.install === false) throw new TestToolUnavailableError('nginx', `not on PATH and no ${extracted} (run \`npm run setup\`)`);
  opts.log?.(`extracting the Debian package nginx into ${DEBIAN_TOOLS_DIR}`);
  const out = spawnSync('bash', [DEBIAN_TOOL_SCRIPT, 'nginx', DEBIAN_TOOLS_DIR], { encoding: 'utf8', timeout: 300_000 });
  const path = out.stdout?.trim().split('\n').pop();
  if (out.status !== 0 || !path) throw new TestToolUnavailableError('nginx', `not on PATH and .ci/debian-tool.sh failed: ${lastLines(out)}`);
  if (!runsNginx(path)) throw new TestToolUnavailableError('nginx', `${path} does not run`);
  return path;
}
