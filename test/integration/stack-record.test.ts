import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cmdlineOf, StackAlreadyRunning, stopLeftovers, writeStackRecord } from '../../src/cli/stack-record';
import { waitUntil } from '../helpers/wait';

/**
 * What a killed stack leaves behind, with real processes: a long-lived child standing in for the Temporal dev
 * server (its command line holds the marker the record names), and a record whose owner is gone or alive.
 */
const hasProc = existsSync('/proc/self/cmdline');
let dir: string;
const spawned: ChildProcess[] = [];

/** A process that runs until killed, with `marker` in its command line. */
function longLived(marker: string): ChildProcess {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', marker], { stdio: 'ignore' });
  spawned.push(child);
  return child;
}

const exited = (child: ChildProcess) => new Promise<NodeJS.Signals | number | null>((r) => (child.exitCode !== null || child.signalCode !== null ? r(child.signalCode ?? child.exitCode) : child.once('exit', (code, sig) => r(sig ?? code))));

/** A pid no process has: a child that has exited and been reaped. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await exited(child);
  return child.pid!;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'agentry-stack-record-'));
});
afterEach(() => {
  for (const c of spawned.splice(0)) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

(hasProc ? describe : describe.skip)('leftovers of a stack that did not stop', () => {
  test('a child of a dead stack is stopped, told to the user, and the record removed', async () => {
    const marker = join(dir, 'temporal.sqlite');
    const child = longLived(marker);
    await waitUntil('the child to run', async () => (cmdlineOf(child.pid!)?.includes(marker) ? true : undefined));
    writeStackRecord(dir, { owner: { pid: await deadPid(), cmdline: 'node demo' }, children: [{ what: 'the Temporal dev server', pid: child.pid!, marker }] });
    const lines: string[] = [];
    await stopLeftovers(dir, (l) => lines.push(l), 5_000);
    expect(await exited(child)).toBe('SIGTERM');
    expect(lines).toEqual([`stopping the Temporal dev server (process ${child.pid}), left running by an earlier stack that did not stop`]);
    expect(existsSync(join(dir, 'stack.json'))).toBe(false);
  });

  test('a child that ignores its first signal is killed after the grace period', async () => {
    const marker = join(dir, 'postgres');
    const child = spawn(process.execPath, ['-e', "process.on('SIGINT', () => {}); console.log('ready'); setInterval(() => {}, 1000)", marker], { stdio: ['ignore', 'pipe', 'ignore'] });
    spawned.push(child);
    // Only once it says so is the handler in place.
    await new Promise((ready) => child.stdout!.once('data', ready));
    writeStackRecord(dir, { owner: { pid: await deadPid(), cmdline: 'node demo' }, children: [{ what: 'the embedded PostgreSQL', pid: child.pid!, marker, signal: 'SIGINT' }] });
    await stopLeftovers(dir, () => undefined, 300);
    expect(await exited(child)).toBe('SIGKILL');
  });

  test('a recorded pid now used by another program is left alone', async () => {
    const other = longLived('someone-else');
    writeStackRecord(dir, { owner: { pid: await deadPid(), cmdline: 'node demo' }, children: [{ what: 'the Temporal dev server', pid: other.pid!, marker: join(dir, 'temporal.sqlite') }] });
    const lines: string[] = [];
    await stopLeftovers(dir, (l) => lines.push(l), 300);
    expect(lines).toEqual([]);
    expect(other.exitCode).toBeNull();
    expect(other.signalCode).toBeNull();
    expect(existsSync(join(dir, 'stack.json'))).toBe(false);
  });

  test('a stack that still runs on the folder is not touched: the new one refuses, naming its pid', async () => {
    const owner = longLived('demo-owner');
    const marker = join(dir, 'temporal.sqlite');
    const child = longLived(marker);
    await waitUntil('both to run', async () => (cmdlineOf(owner.pid!)?.includes('demo-owner') && cmdlineOf(child.pid!)?.includes(marker) ? true : undefined));
    writeStackRecord(dir, { owner: { pid: owner.pid!, cmdline: cmdlineOf(owner.pid!)! }, children: [{ what: 'the Temporal dev server', pid: child.pid!, marker }] });
    const refused = stopLeftovers(dir, () => undefined, 300);
    await expect(refused).rejects.toBeInstanceOf(StackAlreadyRunning);
    await expect(refused).rejects.toThrow(`another stack is running on the state folder ${dir} (process ${owner.pid}); stop it first`);
    expect(child.exitCode).toBeNull();
    expect(JSON.parse(readFileSync(join(dir, 'stack.json'), 'utf8')).owner.pid).toBe(owner.pid);
  });

  test('no record, or one that does not parse, is nothing to do', async () => {
    await expect(stopLeftovers(dir, () => undefined)).resolves.toBeUndefined();
    writeStackRecord(dir, { owner: { pid: 1, cmdline: '' }, children: [] });
    // pid 1 is alive but is not the recorded command line: not a running stack.
    await expect(stopLeftovers(dir, () => undefined)).resolves.toBeUndefined();
  });
});

if (!hasProc) test.skip('leftover stacks: this system has no /proc, so processes cannot be identified', () => undefined);
