/**
 * The embedded PostgreSQL of `agentry demo`, run by a process of its own in a process group of its own. Started
 * inside the demo's process, the server shared the demo's group, so the terminal's Ctrl-C stopped it at once, before
 * the worker had finished its in-flight activities. Here only the demo stops it, last.
 *
 * Usage: embedded-db.ts STATE_DIR PORT. Prints one JSON line on stdout: `{"url", "pid"}` once the server accepts
 * connections, or `{"error"}` if it cannot start. Stops the server on SIGTERM, or when its parent goes away.
 */
import { startEmbeddedDatabase } from './cli/dev-stack';
import { exitWithParent } from './runtime/exit-with-parent';

async function main(): Promise<void> {
  const [stateDir, portText] = process.argv.slice(2);
  let db: Awaited<ReturnType<typeof startEmbeddedDatabase>>;
  try {
    db = await startEmbeddedDatabase({ stateDir, port: Number(portText), log: (line) => process.stderr.write(`${line}\n`) });
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ error: err instanceof Error ? err.message : String(err) })}\n`);
    process.exit(1);
  }
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void db.stop().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  exitWithParent(stop);
  // Keeps the process alive until it is told to stop.
  setInterval(() => undefined, 60_000);
  process.stdout.write(`${JSON.stringify({ url: db.url, pid: db.pid })}\n`);
}

void main();
