/**
 * `agentry eval`: scores pii-redact against Presidio's synthetic dataset and intent-classifier against
 * banking77, and prints the results as tables. Nothing is cached: the classifier is trained from scratch so
 * the reported training time is real.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import {
  DEFAULT_TRAINING_OPTIONS,
  PII_TYPES,
  predictIntent,
  readLabelledCsv,
  redactPii,
  trainIntentModel,
  type PiiType,
} from '../agents';
import { count } from './format';
import { measureLocalThroughput, type LlmThroughputOptions, type LlmThroughputReport } from './llm-throughput';

export interface EvalOptions {
  /** Presidio synthetic dataset (JSON array of `{ full_text, spans }`). */
  presidio: string;
  /** Folder holding banking77's `train.csv` and `test.csv`. */
  banking77: string;
  /** Where report lines go. @default stdout */
  out?: (line: string) => void;
  /** Local LLM throughput: the model and threads to measure with; `false` skips it. @default the setup copy, 1 thread */
  llm?: LlmThroughputOptions | false;
}

export interface PiiTypeScore {
  type: PiiType;
  /** Gold spans of this type, and how many of them some prediction of the same type overlaps. */
  gold: number;
  goldFound: number;
  /** Predicted spans of this type, and how many of them overlap a gold span of the same type. */
  predicted: number;
  predictedCorrect: number;
  precision: number;
  recall: number;
  f1: number;
}

export interface EvalReport {
  /** Generation throughput of the embedded model; absent when skipped. */
  llm?: LlmThroughputReport;
  pii: {
    file: string;
    items: number;
    perType: PiiTypeScore[];
    micro: { precision: number; recall: number; f1: number };
    /** Gold spans of Presidio types the redactor does not cover, by type; excluded from the scores. */
    unsupportedGold: Record<string, number>;
    durationMs: number;
  };
  classifier: {
    trainFile: string;
    testFile: string;
    trainExamples: number;
    testExamples: number;
    labels: number;
    features: number;
    accuracy: number;
    macroF1: number;
    /** Mean reported confidence, to set against accuracy. */
    meanConfidence: number;
    /** Expected calibration error over ten equal-width confidence bins (0 is perfectly calibrated). */
    expectedCalibrationError: number;
    trainingMs: number;
    predictMsPerText: number;
  };
}

/**
 * Presidio's entity names for the types we detect. Ours were chosen to match, so this is the identity today;
 * it stays a table so a rename on either side is one line. Presidio types we do not detect (they need NER or
 * address parsing, not patterns): PERSON, STREET_ADDRESS, GPE, ORGANIZATION, DATE_TIME, TITLE, AGE, NRP,
 * ZIP_CODE, DOMAIN_NAME, US_DRIVER_LICENSE. Their spans are counted but not scored.
 */
const PRESIDIO_TO_OURS: Readonly<Record<string, PiiType>> = {
  CREDIT_CARD: 'CREDIT_CARD',
  IBAN_CODE: 'IBAN_CODE',
  US_SSN: 'US_SSN',
  IP_ADDRESS: 'IP_ADDRESS',
  EMAIL_ADDRESS: 'EMAIL_ADDRESS',
  PHONE_NUMBER: 'PHONE_NUMBER',
};

const presidioSchema = z.array(
  z.object({
    full_text: z.string(),
    spans: z.array(
      z.object({
        entity_type: z.string(),
        start_position: z.number().int().nonnegative(),
        end_position: z.number().int().nonnegative(),
      }),
    ),
  }),
);

export async function runEval(opts: EvalOptions): Promise<EvalReport> {
  const out = opts.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const presidioFile = resolve(opts.presidio);
  const bankingDir = resolve(opts.banking77);
  requirePath(presidioFile, 'file', '--presidio <file>', 'the Presidio synthetic dataset');
  requirePath(bankingDir, 'dir', '--banking77 <dir>', 'the banking77 folder');
  const trainFile = join(bankingDir, 'train.csv');
  const testFile = join(bankingDir, 'test.csv');
  requirePath(trainFile, 'file', '--banking77 <dir>', 'banking77 train.csv');
  requirePath(testFile, 'file', '--banking77 <dir>', 'banking77 test.csv');

  const pii = await evaluatePii(presidioFile);
  printPii(pii, out);
  out('');
  out(`intent-classifier: training on ${trainFile} …`);
  const classifier = await evaluateClassifier(trainFile, testFile);
  printClassifier(classifier, out);
  if (opts.llm === false) return { pii, classifier };
  out('');
  out('llm (local): timing generation …');
  const llm = await measureLocalThroughput(opts.llm ?? {});
  for (const line of formatTable(['llm (local)', 'value'], [
    ['model', `${llm.model} (${llm.modelFile})`],
    ['threads', String(llm.threads)],
    ['load time', `${(llm.loadMs / 1000).toFixed(1)} s`],
    ['prompts', String(llm.prompts)],
    ['prompt tokens', String(llm.promptTokens)],
    ['completion tokens', String(llm.completionTokens)],
    ['generation', `${llm.tokensPerSecond.toFixed(1)} tokens/s`],
    ['time per answer', `${(llm.meanAnswerMs / 1000).toFixed(2)} s`],
  ])) out(line);
  return { pii, classifier, llm };
}

function requirePath(path: string, kind: 'file' | 'dir', flag: string, what: string): void {
  const ok = existsSync(path) && (kind === 'dir' ? statSync(path).isDirectory() : statSync(path).isFile());
  if (!ok) throw new Error(`${what} not found at ${path}; pass ${flag} to point at it`);
}

export async function evaluatePii(file: string): Promise<EvalReport['pii']> {
  let items: z.infer<typeof presidioSchema>;
  try {
    items = presidioSchema.parse(JSON.parse(await readFile(file, 'utf8')));
  } catch (err) {
    throw new Error(`${file} is not a Presidio dataset (JSON array of { full_text, spans }): ${(err as Error).message}`);
  }
  const tally = new Map(PII_TYPES.map((type) => [type, { gold: 0, goldFound: 0, predicted: 0, predictedCorrect: 0 }]));
  const unsupportedGold: Record<string, number> = {};
  const started = performance.now();
  for (const item of items) {
    const toUtf16 = codePointToUtf16(item.full_text);
    const gold: Array<{ type: PiiType; start: number; end: number }> = [];
    for (const span of item.spans) {
      const type = PRESIDIO_TO_OURS[span.entity_type];
      if (type === undefined) {
        unsupportedGold[span.entity_type] = (unsupportedGold[span.entity_type] ?? 0) + 1;
        continue;
      }
      gold.push({ type, start: toUtf16(span.start_position), end: toUtf16(span.end_position) });
    }
    const { findings } = redactPii(item.full_text);
    const overlaps = (a: { type: PiiType; start: number; end: number }, b: typeof a) =>
      a.type === b.type && a.start < b.end && b.start < a.end;
    for (const g of gold) {
      const t = tally.get(g.type)!;
      t.gold++;
      if (findings.some((f) => overlaps(f, g))) t.goldFound++;
    }
    for (const f of findings) {
      const t = tally.get(f.type)!;
      t.predicted++;
      if (gold.some((g) => overlaps(f, g))) t.predictedCorrect++;
    }
  }
  const durationMs = performance.now() - started;
  const perType = PII_TYPES.map((type) => {
    const t = tally.get(type)!;
    return { type, ...t, ...prf(t.predictedCorrect, t.predicted, t.goldFound, t.gold) };
  });
  const sum = (key: 'gold' | 'goldFound' | 'predicted' | 'predictedCorrect') =>
    perType.reduce((acc, t) => acc + t[key], 0);
  const micro = prf(sum('predictedCorrect'), sum('predicted'), sum('goldFound'), sum('gold'));
  return { file, items: items.length, perType, micro, unsupportedGold, durationMs };
}

/** Presidio offsets count code points (Python strings); ours count UTF-16 units. Identity for BMP-only text. */
function codePointToUtf16(text: string): (index: number) => number {
  if (!/[\uD800-\uDBFF]/.test(text)) return (index) => index;
  const offsets: number[] = [];
  let unit = 0;
  for (const ch of text) {
    offsets.push(unit);
    unit += ch.length;
  }
  offsets.push(unit);
  return (index) => offsets[Math.min(index, offsets.length - 1)];
}

function prf(correctPredictions: number, predictions: number, foundGold: number, gold: number) {
  // With nothing predicted (or nothing to find) the ratio is undefined; 0 keeps the table honest rather than flattering.
  const precision = predictions === 0 ? 0 : correctPredictions / predictions;
  const recall = gold === 0 ? 0 : foundGold / gold;
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return { precision, recall, f1 };
}

export async function evaluateClassifier(trainFile: string, testFile: string): Promise<EvalReport['classifier']> {
  const train = await readLabelledCsv(trainFile);
  const test = await readLabelledCsv(testFile);
  const started = performance.now();
  const model = trainIntentModel(train.examples, DEFAULT_TRAINING_OPTIONS);
  const trainingMs = performance.now() - started;

  const perLabel = new Map<string, { tp: number; fp: number; fn: number }>();
  const counts = (label: string) => {
    let c = perLabel.get(label);
    if (!c) perLabel.set(label, (c = { tp: 0, fp: 0, fn: 0 }));
    return c;
  };
  const bins = Array.from({ length: 10 }, () => ({ n: 0, correct: 0, confidence: 0 }));
  let correct = 0;
  let confidenceSum = 0;
  const predictStarted = performance.now();
  for (const { text, label } of test.examples) {
    const prediction = predictIntent(model, text);
    const right = prediction.label === label;
    if (right) {
      correct++;
      counts(label).tp++;
    } else {
      counts(label).fn++;
      counts(prediction.label).fp++;
    }
    confidenceSum += prediction.confidence;
    const bin = bins[Math.min(9, Math.floor(prediction.confidence * 10))];
    bin.n++;
    bin.confidence += prediction.confidence;
    if (right) bin.correct++;
  }
  const predictMs = performance.now() - predictStarted;
  const n = test.examples.length;
  const f1s = [...perLabel.values()].map(({ tp, fp, fn }) => (tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn)));
  return {
    trainFile,
    testFile,
    trainExamples: train.examples.length,
    testExamples: n,
    labels: model.labels.length,
    features: model.vectorizer.terms.length,
    accuracy: correct / n,
    macroF1: f1s.reduce((a, b) => a + b, 0) / f1s.length,
    meanConfidence: confidenceSum / n,
    expectedCalibrationError: bins.reduce((acc, b) => acc + (b.n === 0 ? 0 : Math.abs(b.correct - b.confidence) / n), 0),
    trainingMs,
    predictMsPerText: predictMs / n,
  };
}

function printPii(report: EvalReport['pii'], out: (line: string) => void): void {
  out(`pii-redact on ${report.file} (${count(report.items, 'text')}, ${report.durationMs.toFixed(0)} ms)`);
  const rows = report.perType.map((t) => [
    t.type,
    String(t.gold),
    String(t.predicted),
    ratio(t.precision),
    ratio(t.recall),
    ratio(t.f1),
  ]);
  rows.push(['micro average', String(report.perType.reduce((a, t) => a + t.gold, 0)),
    String(report.perType.reduce((a, t) => a + t.predicted, 0)), ratio(report.micro.precision),
    ratio(report.micro.recall), ratio(report.micro.f1)]);
  for (const line of formatTable(['type', 'gold', 'predicted', 'precision', 'recall', 'F1'], rows)) out(line);
  const unsupported = Object.entries(report.unsupportedGold).sort(([a], [b]) => (a < b ? -1 : 1));
  if (unsupported.length > 0) {
    out(`not scored (types pii-redact does not detect): ${unsupported.map(([t, c]) => `${t} ${c}`).join(', ')}`);
  }
}

function printClassifier(report: EvalReport['classifier'], out: (line: string) => void): void {
  const rows = [
    ['train examples', String(report.trainExamples)],
    ['test examples', String(report.testExamples)],
    ['labels', String(report.labels)],
    ['features', String(report.features)],
    ['accuracy', ratio(report.accuracy)],
    ['macro F1', ratio(report.macroF1)],
    ['mean confidence', ratio(report.meanConfidence)],
    ['calibration error (ECE)', ratio(report.expectedCalibrationError)],
    ['training time', `${(report.trainingMs / 1000).toFixed(1)} s`],
    ['prediction time', `${report.predictMsPerText.toFixed(2)} ms/text`],
  ];
  for (const line of formatTable(['intent-classifier', 'value'], rows)) out(line);
}

function ratio(value: number): string {
  return value.toFixed(3);
}

/** Left-aligned first column, right-aligned numbers, a rule under the header. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
}
