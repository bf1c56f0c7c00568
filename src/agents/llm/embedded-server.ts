import { spawnLocalServer, type LocalServerProcess } from '../../llm';

let running: Promise<LocalServerProcess> | undefined;

/**
 * The base URL of this process's own local model server, started on first use (`agentry llm serve` as a child on a
 * free loopback port) and shared by every `llm` agent in the process. It is for processes started without
 * LLM_BASE_URL: the demo starts one server for its worker instead. The child ends with this process, and a child
 * that dies is started again on the next call.
 */
export async function embeddedServerBaseUrl(): Promise<string> {
  running ??= spawnLocalServer({ port: 0, tiedToParent: true, install: false }).then(
    (server) => {
      server.child.once('exit', () => {
        running = undefined;
      });
      return server;
    },
    (err: unknown) => {
      running = undefined;
      throw err;
    },
  );
  return (await running).baseUrl;
}
