import { resolve } from 'node:path';
import { z } from 'zod';
import type { Agent, AgentContext } from './agent-contract';
import { loadCachedModel, modelCacheFile, saveModel } from './classifier/model-store';
import {
  DEFAULT_TRAINING_OPTIONS,
  predictIntent,
  trainIntentModelAsync,
  type IntentModel,
  type TrainingOptions,
} from './classifier/softmax-model';
import { readLabelledCsv } from './classifier/training-data';

export {
  DEFAULT_TRAINING_OPTIONS,
  predictIntent,
  predictProbabilities,
  trainIntentModel,
  trainIntentModelAsync,
  type IntentModel,
  type IntentPrediction,
  type LabelledExample,
  type TrainingOptions,
} from './classifier/softmax-model';
export { parseLabelledCsv, readLabelledCsv } from './classifier/training-data';

export interface IntentClassifierOptions {
  /** Labelled CSV with `text` and `category` columns; relative paths resolve against the working directory. */
  trainFile: string;
  /** Where trained models are cached; created when first needed, safe to share between workers. */
  cacheDir: string;
  /** Hyper-parameters. @default DEFAULT_TRAINING_OPTIONS */
  training?: TrainingOptions;
}

export interface LoadedIntentModel {
  model: IntentModel;
  /** Whether the model came from the cache or was trained just now. */
  source: 'cache' | 'trained';
  cacheFile: string;
  trainingSha256: string;
  /** How long training took (when it happened, possibly in an earlier process), milliseconds. */
  trainingMs: number;
  examples: number;
}

/** Reads the training file, then loads the matching cached model or trains and caches one. */
export async function loadIntentModel(
  options: IntentClassifierOptions,
  signal?: AbortSignal,
): Promise<LoadedIntentModel> {
  const training = options.training ?? DEFAULT_TRAINING_OPTIONS;
  const file = resolve(options.trainFile);
  // Parsing before the cache lookup means a broken training file is reported even while a model is cached.
  const { examples, sha256 } = await readLabelledCsv(file);
  const cacheFile = modelCacheFile(options.cacheDir, sha256, training);
  const cached = await loadCachedModel(cacheFile, { trainingSha256: sha256, options: training });
  if (cached) return { ...cached, source: 'cache', cacheFile, trainingSha256: sha256 };

  const started = performance.now();
  const model = await trainIntentModelAsync(examples, training, { signal });
  const trainingMs = Math.round(performance.now() - started);
  await saveModel(cacheFile, options.cacheDir, model, {
    trainingSha256: sha256,
    options: training,
    trainingMs,
    examples: examples.length,
  });
  return { model, source: 'trained', cacheFile, trainingSha256: sha256, trainingMs, examples: examples.length };
}

const inputSchema = z.object({ text: z.string() });

const scored = z.object({ label: z.string(), confidence: z.number().min(0).max(1) });
const outputSchema = z.object({
  label: z.string(),
  /** Softmax probability of `label`. */
  confidence: z.number().min(0).max(1),
  /** Up to three best labels, most probable first (the first is `label`). */
  alternatives: z.array(scored).max(3),
});

export type IntentClassifierAgent = Agent<typeof inputSchema, typeof outputSchema>;

const HEARTBEAT_INTERVAL_MS = 1_000;

export function createIntentClassifierAgent(options: IntentClassifierOptions): IntentClassifierAgent {
  // One load per agent instance, shared by concurrent calls; a failure is not cached, so a fixed file is
  // picked up on the next call. Training is not tied to any one caller's signal: it would waste the work for
  // the others, and the result is cached for the next attempt anyway.
  let loading: Promise<LoadedIntentModel> | undefined;
  const load = (): Promise<LoadedIntentModel> => {
    loading ??= loadIntentModel(options).catch((err: unknown) => {
      loading = undefined;
      throw err;
    });
    return loading;
  };

  return {
    name: 'intent-classifier',
    version: '1.0.0',
    description:
      'Classifies a customer message into one of the intents of its training file (TF-IDF word and character ' +
      'n-grams, softmax regression) with a probability and the runner-up intents.',
    input: inputSchema,
    output: outputSchema,
    async run(input, ctx) {
      const first = loading === undefined;
      const loaded = await waitWithHeartbeats(load(), ctx);
      if (first) {
        ctx.logger.info(
          { source: loaded.source, cacheFile: loaded.cacheFile, examples: loaded.examples, trainingMs: loaded.trainingMs },
          'intent model ready',
        );
      }
      return predictIntent(loaded.model, input.text, 3);
    },
    async health() {
      await load();
    },
  };
}

/** Awaits `work` while heartbeating, and stops waiting (without stopping the work) when the call is cancelled. */
async function waitWithHeartbeats<T>(work: Promise<T>, ctx: AgentContext): Promise<T> {
  ctx.signal.throwIfAborted();
  const timer = setInterval(() => ctx.heartbeat({ phase: 'loading-intent-model' }), HEARTBEAT_INTERVAL_MS);
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(ctx.signal.reason);
    ctx.signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work, aborted]);
  } finally {
    clearInterval(timer);
    if (onAbort) ctx.signal.removeEventListener('abort', onAbort);
  }
}
