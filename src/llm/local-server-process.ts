import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { resolve } from 'node:path';

const ROOT = resolve(__dirname, '..', '..');
/** The line `agentry llm serve` prints on stdout once it answers requests. */
export const READY_LINE = /^LLM_BASE_URL=(\S+)$/m;

export interface LocalServerProcessOptions {
  /** Port for the server; 0 picks a free one. */
  port: number;
  /** Environment of the child. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Appends the child's output here as well. */
  logFile?: string;
  /**
   * Tie the child's life to this process: it exits when its stdin pipe closes, which happens however this process
   * ends (even SIGKILL), and it does not keep this process alive. For servers started on demand inside a worker.
   */
  tiedToParent?: boolean;
  /** Install the model with pip when missing, rather than fail. @default false */
  install?: boolean;
  /** How long loading the runtime and the model may take. @default 120000 @format ms */
  startTimeoutMs?: number;
}

export interface LocalServerProcess {
  baseUrl: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Runs `agentry llm serve` as a child process and resolves with its base URL once it is ready. */
export function spawnLocalServer(opts: LocalServerProcessOptions): Promise<LocalServerProcess> {
  const args = ['--import', 'tsx', resolve(ROOT, 'src/cli.ts'), 'llm', 'serve', '--port', String(opts.port)];
  if (opts.tiedToParent) args.push('--exit-with-stdin');
  if (!opts.install) args.push('--no-install');
  const child = spawn(process.execPath, args, { cwd: ROOT, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  const log = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
  let output = '';
  const collect = (chunk: Buffer) => {
    if (output.length < 64 * 1024) output += chunk.toString('utf8');
  };
  // The log file is JSON lines (stderr). The ready line on stdout is for this process only; the server logs its URL
  // as JSON too. Anything else on stdout is kept, whole lines at a time.
  let stdoutLine = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    collect(chunk);
    if (!log) return;
    const lines = (stdoutLine + chunk.toString('utf8')).split('\n');
    stdoutLine = lines.pop()!;
    for (const line of lines) if (!READY_LINE.test(line)) log.write(`${line}\n`);
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    collect(chunk);
    log?.write(chunk);
  });
  // 'close' comes after the child's streams have ended ('exit' may come before their last output).
  child.once('close', () => {
    if (stdoutLine && !READY_LINE.test(stdoutLine)) log?.write(stdoutLine);
    log?.end();
  });
  // Once ready, a tied child must not keep this process alive (its streams are sockets with handles of their own).
  const detach = () => {
    if (!opts.tiedToParent) return;
    child.unref();
    for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
  };
  const stop = () =>
    new Promise<void>((resolveStop) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolveStop();
      const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', () => {
        clearTimeout(kill);
        resolveStop();
      });
      child.kill('SIGTERM');
    });
  const lastLines = () => output.trim().split('\n').slice(-5).join('\n');
  return new Promise((resolveReady, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`the local LLM server did not start within ${Math.round((opts.startTimeoutMs ?? 120_000) / 1000)} s:\n${lastLines()}`));
    }, opts.startTimeoutMs ?? 120_000);
    const onData = () => {
      const match = READY_LINE.exec(output);
      if (!match) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      detach();
      resolveReady({ baseUrl: match[1]!, child, stop });
    };
    const onExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`the local LLM server exited with code ${code} while starting:\n${lastLines()}`));
    };
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
}
