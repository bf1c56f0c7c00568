/** How fast the embedded model generates on this machine, for `agentry eval`. */
import { basename } from 'node:path';
import { loadLocalEngine, LOCAL_MODEL_NAME, resolveLocalModel } from '../llm';

export interface LlmThroughputOptions {
  /** LLM_LOCAL_MODEL_PATH. @default the copy `npm run setup` installs */
  modelPath?: string;
  /** LLM_LOCAL_THREADS. @default 1 */
  threads?: number;
  /** Completion tokens asked of each prompt. @default 64 @format tokens */
  maxTokens?: number;
}

export interface LlmThroughputReport {
  model: string;
  modelFile: string;
  threads: number;
  prompts: number;
  promptTokens: number;
  completionTokens: number;
  /** Runtime and model load. @format ms */
  loadMs: number;
  /** Completion tokens per second of generation time (prompt evaluation included, as a caller sees it). */
  tokensPerSecond: number;
  /** Mean time for one answer. @format ms */
  meanAnswerMs: number;
}

const PROMPTS = [
  'Customer message: My card payment was declined at the supermarket this morning.\nRequest type: declined_card_payment\nReply:',
  'Customer message: I sent money to my brother three days ago and he still has not received it.\nRequest type: transfer_not_received_by_recipient\nReply:',
  'Customer message: How do I change the PIN of my card?\nRequest type: change_pin\nReply:',
  'Customer message: I think someone used my card, there is a payment I do not recognise.\nRequest type: card_payment_not_recognised\nReply:',
];
const SYSTEM = "You work in a bank's customer support team. Write a short, polite first reply to the customer.";

/** Loads the model in process, warms it up, and times a fixed set of support prompts one after another. */
export async function measureLocalThroughput(opts: LlmThroughputOptions = {}): Promise<LlmThroughputReport> {
  const modelPath = resolveLocalModel({ explicitPath: opts.modelPath, install: false });
  const threads = opts.threads ?? 1;
  const maxTokens = opts.maxTokens ?? 64;
  const loadStarted = performance.now();
  const engine = await loadLocalEngine({ modelPath, modelName: LOCAL_MODEL_NAME, threads, parallel: 1, contextSize: 2048, maxQueue: 1 });
  const loadMs = performance.now() - loadStarted;
  try {
    await engine.chat({ messages: [{ role: 'user', content: 'Hello' }], maxTokens: 4 });
    let promptTokens = 0;
    let completionTokens = 0;
    let ms = 0;
    for (const prompt of PROMPTS) {
      const started = performance.now();
      const r = await engine.chat({ messages: [{ role: 'system', content: SYSTEM }, { role: 'user', content: prompt }], maxTokens, temperature: 0 });
      ms += performance.now() - started;
      promptTokens += r.promptTokens;
      completionTokens += r.completionTokens;
    }
    return {
      model: LOCAL_MODEL_NAME,
      modelFile: basename(modelPath),
      threads,
      prompts: PROMPTS.length,
      promptTokens,
      completionTokens,
      loadMs,
      tokensPerSecond: completionTokens / (ms / 1000),
      meanAnswerMs: ms / PROMPTS.length,
    };
  } finally {
    await engine.close();
  }
}
