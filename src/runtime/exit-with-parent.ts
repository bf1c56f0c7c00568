/**
 * For processes started by `agentry demo`: when the parent disappears (killed without a chance to stop its
 * children), run `onOrphaned` so no facade or worker lingers holding its port.
 */
export function exitWithParent(onOrphaned: () => void, everyMs = 1000): void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid !== parent) {
      clearInterval(timer);
      onOrphaned();
    }
  }, everyMs);
  timer.unref();
}
