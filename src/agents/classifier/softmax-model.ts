/**
 * Multinomial logistic regression over TF-IDF features, trained by plain SGD with L2 decay. Softmax output is
 * a probability by construction, which is what the agent reports as confidence. Everything that could vary
 * between runs is pinned: vocabulary order, label order, and the example order (a seeded shuffle), so the
 * same training file produces the same weights bit for bit on the same platform.
 */
import {
  DEFAULT_FEATURE_OPTIONS,
  extractTerms,
  fitVectorizer,
  vectorize,
  type FeatureOptions,
  type SparseVector,
  type Vectorizer,
} from './text-features';

export interface LabelledExample {
  text: string;
  label: string;
}

export interface TrainingOptions {
  features: FeatureOptions;
  /** Passes over the training set. @default 10 */
  epochs: number;
  /** Initial step size; decays as 1 / (1 + rate × l2 × step). @default 1 */
  learningRate: number;
  /** L2 penalty per example. @default 1e-6 */
  l2: number;
  /** Seed of the example shuffle. @default 77 */
  seed: number;
}

export const DEFAULT_TRAINING_OPTIONS: TrainingOptions = {
  features: DEFAULT_FEATURE_OPTIONS,
  epochs: 10,
  learningRate: 1,
  l2: 1e-6,
  seed: 77,
};

const GRADIENT_FLOOR = 1e-4;

export interface IntentModel {
  /** Sorted label names; column c of the weights belongs to labels[c]. */
  labels: string[];
  vectorizer: Vectorizer;
  /** Row-major, one row of `labels.length` weights per vocabulary term. */
  weights: Float32Array;
  bias: Float32Array;
}

export interface TrainingProgress {
  epoch: number;
  epochs: number;
  /** Mean cross-entropy over the epoch, measured before each update. */
  loss: number;
}

export interface IntentPrediction {
  label: string;
  /** Softmax probability of `label`, 0..1. */
  confidence: number;
  /** The best labels (including `label` first), most probable first. */
  alternatives: Array<{ label: string; confidence: number }>;
}

/**
 * Training as a generator that yields after every epoch, so a synchronous caller can run it straight through
 * and an asynchronous one can yield to the event loop (heartbeats, cancellation) between epochs.
 */
export function* trainingSteps(
  examples: readonly LabelledExample[],
  options: TrainingOptions = DEFAULT_TRAINING_OPTIONS,
): Generator<TrainingProgress, IntentModel, void> {
  const labels = [...new Set(examples.map((e) => e.label))].sort();
  if (labels.length < 2) throw new Error('training needs at least two distinct labels');
  const labelIndex = new Map(labels.map((label, i) => [label, i]));
  const documents = examples.map((e) => extractTerms(e.text, options.features));
  const vectorizer = fitVectorizer(documents, options.features);
  const rows: SparseVector[] = documents.map((terms) => vectorize(terms, vectorizer));
  const targets = Int32Array.from(examples, (e) => labelIndex.get(e.label) ?? -1);

  const classes = labels.length;
  // Weights are stored as `scale × v` so the L2 decay of every weight is one multiplication per step.
  const v = new Float64Array(vectorizer.terms.length * classes);
  const bias = new Float64Array(classes);
  const scores = new Float64Array(classes);
  const activeClasses = new Int32Array(classes);
  let scale = 1;
  let step = 0;
  const order = Int32Array.from(rows.keys());
  const random = mulberry32(options.seed);

  for (let epoch = 1; epoch <= options.epochs; epoch++) {
    shuffle(order, random);
    let loss = 0;
    for (const r of order) {
      const { indices, values } = rows[r];
      const eta = options.learningRate / (1 + options.learningRate * options.l2 * step);
      step++;
      scoreInto(scores, v, bias, scale, indices, values, classes);
      softmaxInPlace(scores);
      const target = targets[r];
      loss -= Math.log(Math.max(scores[target], 1e-12));
      scores[target] -= 1; // now the gradient of the loss with respect to the logits

      // Once the model is decent most classes get a vanishing gradient. Skipping those below GRADIENT_FLOOR
      // makes later epochs markedly cheaper; on banking77 it left test accuracy unchanged.
      let active = 0;
      for (let c = 0; c < classes; c++) {
        if (Math.abs(scores[c]) > GRADIENT_FLOOR) activeClasses[active++] = c;
      }
      scale *= 1 - eta * options.l2;
      const stepOverScale = eta / scale;
      for (let k = 0; k < indices.length; k++) {
        const base = indices[k] * classes;
        const x = values[k] * stepOverScale;
        for (let a = 0; a < active; a++) {
          const c = activeClasses[a];
          v[base + c] -= x * scores[c];
        }
      }
      for (let c = 0; c < classes; c++) bias[c] -= eta * scores[c];

      if (scale < 1e-6) {
        for (let i = 0; i < v.length; i++) v[i] *= scale;
        scale = 1;
      }
    }
    yield { epoch, epochs: options.epochs, loss: loss / order.length };
  }

  for (let i = 0; i < v.length; i++) v[i] *= scale;
  return { labels, vectorizer, weights: Float32Array.from(v), bias: Float32Array.from(bias) };
}

/** Trains to completion on the calling thread. */
export function trainIntentModel(
  examples: readonly LabelledExample[],
  options: TrainingOptions = DEFAULT_TRAINING_OPTIONS,
  onProgress?: (progress: TrainingProgress) => void,
): IntentModel {
  const steps = trainingSteps(examples, options);
  for (;;) {
    const next = steps.next();
    if (next.done) return next.value;
    onProgress?.(next.value);
  }
}

/** Trains with an event-loop turn between epochs; rejects with the signal's reason once it is aborted. */
export async function trainIntentModelAsync(
  examples: readonly LabelledExample[],
  options: TrainingOptions = DEFAULT_TRAINING_OPTIONS,
  hooks: { signal?: AbortSignal; onProgress?: (progress: TrainingProgress) => void } = {},
): Promise<IntentModel> {
  const steps = trainingSteps(examples, options);
  for (;;) {
    hooks.signal?.throwIfAborted();
    const next = steps.next();
    if (next.done) return next.value;
    hooks.onProgress?.(next.value);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** Class probabilities for one text, in `model.labels` order. */
export function predictProbabilities(model: IntentModel, text: string): Float64Array {
  const { indices, values } = vectorize(extractTerms(text, model.vectorizer.options), model.vectorizer);
  const scores = new Float64Array(model.labels.length);
  scoreInto(scores, model.weights, model.bias, 1, indices, values, model.labels.length);
  return softmaxInPlace(scores);
}

export function predictIntent(model: IntentModel, text: string, top = 3): IntentPrediction {
  const probabilities = predictProbabilities(model, text);
  // Ties (e.g. a text with no known terms) fall back to label order, keeping answers deterministic.
  const ranked = Array.from(probabilities.keys()).sort((a, b) => probabilities[b] - probabilities[a] || a - b);
  const alternatives = ranked
    .slice(0, top)
    .map((c) => ({ label: model.labels[c], confidence: probabilities[c] }));
  return { label: alternatives[0].label, confidence: alternatives[0].confidence, alternatives };
}

function scoreInto(
  out: Float64Array,
  weights: Float32Array | Float64Array,
  bias: ArrayLike<number>,
  scale: number,
  indices: Int32Array,
  values: Float32Array,
  classes: number,
): void {
  for (let c = 0; c < classes; c++) out[c] = 0;
  for (let k = 0; k < indices.length; k++) {
    const base = indices[k] * classes;
    const x = values[k];
    for (let c = 0; c < classes; c++) out[c] += x * weights[base + c];
  }
  for (let c = 0; c < classes; c++) out[c] = out[c] * scale + bias[c];
}

function softmaxInPlace(scores: Float64Array): Float64Array {
  let max = -Infinity;
  for (const s of scores) if (s > max) max = s;
  let sum = 0;
  for (let c = 0; c < scores.length; c++) {
    scores[c] = Math.exp(scores[c] - max);
    sum += scores[c];
  }
  for (let c = 0; c < scores.length; c++) scores[c] /= sum;
  return scores;
}

/** Small, well-distributed 32-bit PRNG; only determinism matters here, not cryptographic quality. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher–Yates. */
function shuffle(order: Int32Array, random: () => number): void {
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const tmp = order[i];
    order[i] = order[j];
    order[j] = tmp;
  }
}
