import type { Command } from 'commander';
import pino from 'pino';
import type { Config } from '../config';
import { loadLocalEngine, LOCAL_MODEL_NAME, resolveLocalModel, startLocalServer } from '../llm';
import { createLogger } from '../telemetry';
import { portOrZero } from './options';

/** `agentry llm serve`: the embedded model behind the OpenAI Chat Completions API, on loopback. */
export function registerLlmCommands(program: Command, config: () => Config, say: (line: string) => void): void {
  const llm = program.command('llm').description('the embedded local model (SmolLM2-135M-Instruct on node-llama-cpp)');
  llm
    .command('serve')
    .description('serve the local model over the OpenAI Chat Completions API on loopback (POST /v1/chat/completions)')
    .option('--port <n>', 'port (0 picks a free one); default LLM_LOCAL_PORT', portOrZero)
    .option('--no-install', 'fail, rather than install the model with pip, when it is missing')
    .option('--exit-with-stdin', 'exit when standard input closes (for a parent process that owns this server)')
    .action(async (opts: { port?: number; install: boolean; exitWithStdin?: boolean }) => {
      const cfg = config();
      // A parent that owns this server stops it, after whatever still calls it (`agentry demo` stops its worker
      // first). The terminal's Ctrl-C reaches the whole process group at once, so it is left to the parent.
      const ignoreSigint = () => undefined;
      if (opts.exitWithStdin) process.on('SIGINT', ignoreSigint);
      // stdout carries only the ready line, so a parent can read it; logs go to stderr.
      const logger = createLogger({ level: cfg.LOG_LEVEL, name: 'agentry-llm', destination: pino.destination(2) });
      const modelPath = resolveLocalModel({ explicitPath: cfg.LLM_LOCAL_MODEL_PATH, install: opts.install, log: (l) => logger.info(l) });
      const started = performance.now();
      const engine = await loadLocalEngine({
        modelPath,
        modelName: cfg.LLM_LOCAL_MODEL_PATH ? cfg.LLM_MODEL : LOCAL_MODEL_NAME,
        threads: cfg.LLM_LOCAL_THREADS,
        parallel: cfg.LLM_LOCAL_PARALLEL,
        contextSize: cfg.LLM_LOCAL_CONTEXT_SIZE,
        maxQueue: 64,
        log: (level, message) => logger.debug({ level }, message),
      });
      const server = await startLocalServer({
        engine,
        host: cfg.LLM_LOCAL_HOST,
        port: opts.port ?? cfg.LLM_LOCAL_PORT,
        logger,
        defaultMaxTokens: cfg.LLM_DEFAULT_MAX_TOKENS,
      });
      logger.info(
        { model: engine.modelName, modelPath, baseUrl: server.baseUrl, loadMs: Math.round(performance.now() - started), threads: cfg.LLM_LOCAL_THREADS, parallel: cfg.LLM_LOCAL_PARALLEL },
        'local LLM ready',
      );
      say(`LLM_BASE_URL=${server.baseUrl}`);

      await new Promise<void>((resolveStop) => {
        process.once('SIGTERM', () => resolveStop());
        if (!opts.exitWithStdin) process.once('SIGINT', () => resolveStop());
        if (opts.exitWithStdin) {
          process.stdin.once('end', () => resolveStop());
          process.stdin.once('close', () => resolveStop());
          process.stdin.resume();
        }
      });
      await server.close();
      await engine.close();
      logger.info('local LLM stopped');
      // The runtime's native threads do not always let the event loop end on its own.
      process.exit(0);
    });
}
