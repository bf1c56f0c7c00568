/**
 * What a closed stdout (`agentry … | head -1`, EPIPE) does. By default the command ends quietly at once, as other
 * command-line tools do; a command with something to stop first (the demo's stack) takes over while it runs.
 */
let handler: (() => void) | undefined;

/** Sets (or, with undefined, clears) what a closed stdout does instead of ending the process. */
export function onStdoutClosed(fn: (() => void) | undefined): void {
  handler = fn;
}

/** Called on EPIPE: true when a command took it over, false when the process should end now. */
export function stdoutClosed(): boolean {
  if (!handler) return false;
  handler();
  return true;
}
