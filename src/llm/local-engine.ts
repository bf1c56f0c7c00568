/**
 * The embedded model runtime: node-llama-cpp running a GGUF model on the CPU. Only the prebuilt binaries that ship
 * inside the npm packages `@node-llama-cpp/*` are used: `build: 'never'` and `skipDownload: true` forbid compiling
 * or downloading anything at run time, and the package's own install script is not approved (package.json
 * `allowScripts`), so nothing is fetched at install time either.
 *
 * node-llama-cpp is ESM-only; it is loaded with a dynamic `import()` so the CommonJS entry points can use it.
 */
import type { ChatHistoryItem, Llama, LlamaContext, LlamaContextSequence, LlamaGrammar, LlamaModel } from 'node-llama-cpp';

export interface LocalEngineOptions {
  /** The GGUF file. */
  modelPath: string;
  /** Name reported as the model of every answer. */
  modelName: string;
  /**
   * CPU threads one evaluation uses. Small machines run the worker, Temporal and PostgreSQL beside the model, and
   * llama.cpp's threads spin-wait on each other, so more threads than idle cores is much slower, not faster.
   * @default 1
   */
  threads: number;
  /** Requests generated at once (context sequences); more wait in line. @default 2 */
  parallel: number;
  /** Context window of each sequence: prompt and completion together. @default 2048 @format tokens */
  contextSize: number;
  /** Requests allowed to wait for a free sequence; beyond it `LocalEngineBusyError`. @default 64 */
  maxQueue: number;
  /** Where node-llama-cpp's own messages go. */
  log?: (level: string, message: string) => void;
}

export interface LocalChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface LocalChatRequest {
  messages: readonly LocalChatMessage[];
  /** Most tokens to generate; lowered to what the context has room for. @format tokens */
  maxTokens: number;
  /** 0 picks the likeliest token every time (reproducible). @default 0 */
  temperature?: number;
  seed?: number;
  /**
   * Constrain the output with a grammar: any JSON value (`{}`), or JSON shaped by `schema` as far as a grammar can
   * express it (types, properties, enums; not numeric bounds such as `multipleOf`, which callers validate).
   */
  json?: { schema?: Record<string, unknown> };
  signal?: AbortSignal;
}

export interface LocalChatResult {
  text: string;
  /** `length` when generation stopped at `maxTokens`. */
  finishReason: 'stop' | 'length';
  /** The rendered prompt, chat template included. @format tokens */
  promptTokens: number;
  /** @format tokens */
  completionTokens: number;
  /** Time spent generating, excluding the wait for a free sequence. @format ms */
  durationMs: number;
}

export interface LocalEngine {
  readonly modelName: string;
  readonly contextSize: number;
  chat(request: LocalChatRequest): Promise<LocalChatResult>;
  close(): Promise<void>;
}

/** Every sequence is busy and the waiting line is full: try again shortly (HTTP 503). */
export class LocalEngineBusyError extends Error {
  override readonly name = 'LocalEngineBusyError';
  constructor(readonly waiting: number) {
    super(`the local model is busy (${waiting} requests waiting)`);
  }
}

/** The prompt does not fit the context window (HTTP 400 `context_length_exceeded`). */
export class PromptTooLongError extends Error {
  override readonly name = 'PromptTooLongError';
  constructor(
    readonly promptTokens: number,
    readonly contextSize: number,
  ) {
    super(`the prompt has ${promptTokens} tokens; the context window holds ${contextSize}, completion included`);
  }
}

/** node-llama-cpp's prebuilt binary for this platform is missing or does not load. */
export class LocalRuntimeUnavailableError extends Error {
  override readonly name = 'LocalRuntimeUnavailableError';
  constructor(readonly reason: string) {
    super(
      `the local model runtime (node-llama-cpp's prebuilt binary for ${process.platform}-${process.arch}) is not usable: ${reason}. ` +
        'Reinstall with `npm ci` (its optional @node-llama-cpp/* packages carry the binaries), or set LLM_BASE_URL to use a remote provider.',
    );
  }
}

/** Fewest tokens left for the completion before a prompt counts as too long. */
const MIN_COMPLETION_TOKENS = 1;

/** A FIFO of waiters for `slots` concurrent holders; waiting can be abandoned through an AbortSignal. */
function createSlots(slots: number, maxQueue: number) {
  let free = slots;
  const waiting: { grant: () => void; signal?: AbortSignal; onAbort?: () => void }[] = [];
  return {
    async acquire(signal?: AbortSignal): Promise<() => void> {
      signal?.throwIfAborted();
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        const next = waiting.shift();
        if (next) {
          if (next.onAbort) next.signal?.removeEventListener('abort', next.onAbort);
          next.grant();
        } else free++;
      };
      if (free > 0) {
        free--;
        return release;
      }
      if (waiting.length >= maxQueue) throw new LocalEngineBusyError(waiting.length);
      await new Promise<void>((resolveGrant, reject) => {
        const entry: (typeof waiting)[number] = { grant: resolveGrant, signal };
        entry.onAbort = () => {
          const i = waiting.indexOf(entry);
          if (i >= 0) waiting.splice(i, 1);
          reject(signal?.reason);
        };
        signal?.addEventListener('abort', entry.onAbort, { once: true });
        waiting.push(entry);
      });
      return release;
    },
    get waiting() {
      return waiting.length;
    },
  };
}

function toHistory(messages: readonly LocalChatMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = messages.map((m) =>
    m.role === 'system' ? { type: 'system', text: m.content } : m.role === 'user' ? { type: 'user', text: m.content } : { type: 'model', response: [m.content] },
  );
  // The empty model turn is the one to generate.
  history.push({ type: 'model', response: [] });
  return history;
}

/** Loads the runtime and the model, and opens a context with `parallel` sequences. Takes a few seconds. */
export async function loadLocalEngine(opts: LocalEngineOptions): Promise<LocalEngine> {
  const nlc = await import('node-llama-cpp');
  const log = opts.log ?? (() => undefined);
  let llama: Llama;
  try {
    llama = await nlc.getLlama({
      gpu: false,
      // Use the prebuilt binary or fail: never clone llama.cpp, download a release or run a compiler.
      build: 'never',
      skipDownload: true,
      usePrebuiltBinaries: true,
      progressLogs: false,
      logLevel: nlc.LlamaLogLevel.warn,
      logger: (level, message) => log(String(level), message.trim()),
    });
  } catch (err) {
    throw new LocalRuntimeUnavailableError(err instanceof Error ? err.message : String(err));
  }
  let model: LlamaModel;
  let context: LlamaContext;
  try {
    model = await llama.loadModel({ modelPath: opts.modelPath, gpuLayers: 0 });
    context = await model.createContext({ contextSize: opts.contextSize, sequences: opts.parallel, threads: opts.threads });
  } catch (err) {
    await llama.dispose().catch(() => undefined);
    throw err;
  }
  const slots = createSlots(opts.parallel, opts.maxQueue);
  const grammars = new Map<string, Promise<LlamaGrammar>>();

  const grammarFor = (json: NonNullable<LocalChatRequest['json']>): Promise<LlamaGrammar> => {
    const key = json.schema ? JSON.stringify(json.schema) : '';
    let grammar = grammars.get(key);
    if (!grammar) {
      grammar = (json.schema
        ? // Schemas beyond what grammars express fall back to plain JSON; the caller validates the result anyway.
          llama.createGrammarForJsonSchema(json.schema as never).catch((err: unknown) => {
            log('warn', `JSON schema not usable as a grammar, constraining to plain JSON: ${err instanceof Error ? err.message : String(err)}`);
            return llama.getGrammarFor('json');
          })
        : llama.getGrammarFor('json')) as Promise<LlamaGrammar>;
      if (grammars.size >= 32) grammars.delete(grammars.keys().next().value as string);
      grammars.set(key, grammar);
    }
    return grammar;
  };

  /** One completion on a sequence the caller owns. */
  const generate = async (request: LocalChatRequest, sequence: LlamaContextSequence): Promise<LocalChatResult> => {
    const chat = new nlc.LlamaChat({ contextSequence: sequence, autoDisposeSequence: false });
    try {
      const history = toHistory(request.messages);
      const promptTokens = chat.chatWrapper.generateContextState({ chatHistory: history }).contextText.tokenize(model.tokenizer).length;
      const room = context.contextSize - promptTokens;
      if (room < MIN_COMPLETION_TOKENS) throw new PromptTooLongError(promptTokens, context.contextSize);
      const grammar = request.json ? await grammarFor(request.json) : undefined;
      const before = sequence.tokenMeter.getState();
      const started = performance.now();
      const result = await chat.generateResponse(history, {
        maxTokens: Math.min(request.maxTokens, room),
        temperature: request.temperature ?? 0,
        ...(request.seed !== undefined ? { seed: request.seed } : {}),
        ...(grammar ? { grammar } : {}),
        ...(request.signal ? { signal: request.signal } : {}),
        // A cancelled request throws its abort reason: nobody is left to read a partial answer.
        stopOnAbortSignal: false,
      });
      const used = nlc.TokenMeter.diff(sequence.tokenMeter, before);
      return {
        text: result.response,
        finishReason: result.metadata.stopReason === 'maxTokens' ? 'length' : 'stop',
        promptTokens,
        completionTokens: used.usedOutputTokens,
        durationMs: performance.now() - started,
      };
    } finally {
      chat.dispose();
    }
  };

  return {
    modelName: opts.modelName,
    contextSize: context.contextSize,
    async chat(request) {
      const release = await slots.acquire(request.signal);
      // Released however this ends: a place in line not handed back would leave one sequence idle for good.
      try {
        const sequence = context.getSequence();
        try {
          return await generate(request, sequence);
        } finally {
          // The context takes a disposed sequence back only once its lock is free, after the batch the other sequences
          // are decoding: the next request in line may start only then, or it finds no sequence left.
          await sequence.dispose().catch((err: unknown) => log('warn', `disposing a context sequence failed: ${err instanceof Error ? err.message : String(err)}`));
        }
      } finally {
        release();
      }
    },
    async close() {
      await context.dispose();
      await model.dispose();
      await llama.dispose();
    },
  };
}
