/**
 * For processes started by `agentry demo`: when the parent disappears (killed without a chance to stop its
 * children), run `onOrphaned` so no facade or worker lingers holding its port. An orderly stop can hang on
 * connections nobody will close any more, so the process exits anyway after `graceMs`.
 */
export function exitWithParent(onOrphaned: () => void, everyMs = 1000, graceMs = 15_000): void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid !== parent) {
      clearInterval(timer);
      setTimeout(() => process.exit(1), graceMs).unref();
      onOrphaned();
    }
  }, everyMs);
  timer.unref();
}
