import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { processAlive } from '../runtime/process-alive';

/**
 * Which processes a local stack started, kept in `{stateDir}/stack.json` while it runs. The worker, facade and model
 * server end with their parent; the Temporal dev server and the embedded PostgreSQL cannot watch it, so a stack
 * that was killed (kill -9, a closed terminal) leaves them running. The next stack on the same state folder reads
 * the record and stops them, or refuses to start when the stack that wrote it is still alive.
 */
export interface StackRecord {
  /** The process that runs the stack, with its command line as /proc shows it. */
  owner: { pid: number; cmdline: string };
  /** Processes that outlive their owner, each with text its command line must hold (so a reused pid is left alone). */
  children: { what: string; pid: number; marker: string; /** How it stops quickly. @default SIGTERM */ signal?: NodeJS.Signals }[];
}

const FILE = 'stack.json';

export function writeStackRecord(stateDir: string, record: StackRecord): void {
  const path = join(stateDir, FILE);
  writeFileSync(`${path}.tmp`, `${JSON.stringify(record, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}

export function removeStackRecord(stateDir: string): void {
  rmSync(join(stateDir, FILE), { force: true });
}

/** This process's command line, NUL-separated as in /proc/<pid>/cmdline; '' where /proc is absent. */
export function ownCmdline(): string {
  return cmdlineOf(process.pid) ?? '';
}

/** A process's command line from /proc, or undefined when it does not exist (or this system has no /proc). */
export function cmdlineOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return undefined;
  }
}

function readRecord(stateDir: string): StackRecord | undefined {
  const path = join(stateDir, FILE);
  if (!existsSync(path)) return undefined;
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as StackRecord;
    if (!Number.isInteger(r?.owner?.pid) || !Array.isArray(r.children)) return undefined;
    return r;
  } catch {
    return undefined;
  }
}

async function stopPid(pid: number, first: NodeJS.Signals, graceMs: number): Promise<void> {
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(pid, s);
    } catch {
      /* already gone */
    }
  };
  signal(first);
  for (const until = Date.now() + graceMs; Date.now() < until; ) {
    if (!processAlive(pid)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  signal('SIGKILL');
}

export class StackAlreadyRunning extends Error {
  override readonly name = 'StackAlreadyRunning';
}

/**
 * Deals with what an earlier stack on `stateDir` left behind: refuses when that stack is still running, stops each
 * child it recorded that is still alive and still the same program, and removes the record. Where /proc is missing,
 * a live leftover is named with its pid for the user to stop, never killed unchecked.
 */
export async function stopLeftovers(stateDir: string, log: (line: string) => void, graceMs = 10_000): Promise<void> {
  const record = readRecord(stateDir);
  if (!record) return removeStackRecord(stateDir);
  const ownerCmd = cmdlineOf(record.owner.pid);
  if (record.owner.pid !== process.pid && processAlive(record.owner.pid) && (ownerCmd === undefined || ownerCmd === record.owner.cmdline)) {
    throw new StackAlreadyRunning(
      `another stack is running on the state folder ${stateDir} (process ${record.owner.pid}); stop it first (Ctrl-C in its terminal, or kill ${record.owner.pid})`,
    );
  }
  for (const child of record.children) {
    if (!processAlive(child.pid)) continue;
    const cmd = cmdlineOf(child.pid);
    if (cmd === undefined) {
      log(`${child.what} (process ${child.pid}) may still be running from an earlier stack; if so, stop it`);
      continue;
    }
    if (!cmd.includes(child.marker)) continue;
    log(`stopping ${child.what} (process ${child.pid}), left running by an earlier stack that did not stop`);
    await stopPid(child.pid, child.signal ?? 'SIGTERM', graceMs);
  }
  removeStackRecord(stateDir);
}
