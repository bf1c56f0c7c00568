/**
 * On-disk cache of trained intent models. A file is named after everything that determines its contents (the
 * training data's hash, the model code version and the training options), so a stale model is never picked up
 * and two workers sharing a directory agree on the name. Weights are base64 little-endian float32 inside the
 * JSON: a fraction of the size of decimal arrays and exact.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { IntentModel, TrainingOptions } from './softmax-model';
import { sha256Hex } from './training-data';
import { vectorizerFrom } from './text-features';

/** Bump whenever features, training or the file layout change meaning; old cache files are then ignored. */
export const MODEL_VERSION = 'tfidf-softmax-1';

const storedModelSchema = z.object({
  format: z.literal('agentry-intent-model'),
  modelVersion: z.string(),
  trainingSha256: z.string(),
  options: z.object({
    features: z.object({
      maxWordNgram: z.number().int().positive(),
      charNgramRange: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
      minDocumentFrequency: z.number().int().positive(),
    }),
    epochs: z.number(),
    learningRate: z.number(),
    l2: z.number(),
    seed: z.number(),
  }),
  labels: z.array(z.string()).min(2),
  terms: z.array(z.string()),
  idf: z.string(),
  weights: z.string(),
  bias: z.string(),
  trainingMs: z.number(),
  examples: z.number().int(),
});

export interface StoredModelMeta {
  trainingSha256: string;
  options: TrainingOptions;
  trainingMs: number;
  examples: number;
}

export function modelCacheFile(cacheDir: string, trainingSha256: string, options: TrainingOptions): string {
  const key = sha256Hex(`${trainingSha256}\n${MODEL_VERSION}\n${canonicalJson(options)}`);
  return join(cacheDir, `intent-model-${key.slice(0, 32)}.json`);
}

export function serializeModel(model: IntentModel, meta: StoredModelMeta): string {
  const stored: z.infer<typeof storedModelSchema> = {
    format: 'agentry-intent-model',
    modelVersion: MODEL_VERSION,
    trainingSha256: meta.trainingSha256,
    options: {
      ...meta.options,
      features: { ...meta.options.features, charNgramRange: [...meta.options.features.charNgramRange] },
    },
    labels: model.labels,
    terms: model.vectorizer.terms,
    idf: encodeFloats(model.vectorizer.idf),
    weights: encodeFloats(model.weights),
    bias: encodeFloats(model.bias),
    trainingMs: meta.trainingMs,
    examples: meta.examples,
  };
  return JSON.stringify(stored);
}

/** Parses a stored model; throws when the file is not one, or does not belong to these data and options. */
export function deserializeModel(json: string, expected: { trainingSha256: string; options: TrainingOptions }) {
  const stored = storedModelSchema.parse(JSON.parse(json));
  if (stored.modelVersion !== MODEL_VERSION) throw new Error(`model version ${stored.modelVersion}`);
  if (stored.trainingSha256 !== expected.trainingSha256) throw new Error('model trained on other data');
  if (canonicalJson(stored.options) !== canonicalJson(expected.options)) throw new Error('other options');
  const idf = decodeFloats(stored.idf);
  const weights = decodeFloats(stored.weights);
  const bias = decodeFloats(stored.bias);
  if (idf.length !== stored.terms.length) throw new Error('idf does not match the vocabulary');
  if (weights.length !== stored.terms.length * stored.labels.length) throw new Error('weights have the wrong size');
  if (bias.length !== stored.labels.length) throw new Error('bias has the wrong size');
  const model: IntentModel = {
    labels: stored.labels,
    vectorizer: vectorizerFrom(stored.options.features, stored.terms, idf),
    weights,
    bias,
  };
  return { model, trainingMs: stored.trainingMs, examples: stored.examples };
}

/** The cached model, or undefined when there is none or it is unusable (it will be retrained and replaced). */
export async function loadCachedModel(
  file: string,
  expected: { trainingSha256: string; options: TrainingOptions },
): Promise<ReturnType<typeof deserializeModel> | undefined> {
  let json: string;
  try {
    json = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return deserializeModel(json, expected);
  } catch {
    return undefined;
  }
}

/** Writes via a temporary file and a rename, so a concurrent reader sees the old file or the whole new one. */
export async function saveModel(file: string, cacheDir: string, model: IntentModel, meta: StoredModelMeta) {
  await mkdir(cacheDir, { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, serializeModel(model, meta));
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** JSON with object keys sorted, so equal options always serialise (and hash) the same. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

function encodeFloats(values: Float32Array): string {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString('base64');
}

function decodeFloats(base64: string): Float32Array {
  const bytes = Buffer.from(base64, 'base64');
  if (bytes.length % 4 !== 0) throw new Error('float data has a partial value');
  // Copy into a fresh, aligned buffer: Buffer slices may start at any offset of Node's shared pool.
  const out = new Float32Array(bytes.length / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}
