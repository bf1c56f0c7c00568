/**
 * Text to sparse TF-IDF vectors. Short customer messages carry little signal per word, so besides word
 * unigrams and bigrams we use character n-grams inside word boundaries: they survive typos ("recieved"),
 * inflections ("topped"/"top-up") and compounds that whole-word features miss.
 */

export interface FeatureOptions {
  /** Longest word n-gram. @default 2 */
  maxWordNgram: number;
  /** Character n-gram lengths, inclusive; `[0, 0]` turns them off. @default [3, 5] */
  charNgramRange: readonly [number, number];
  /** Terms seen in fewer training documents are dropped; keeps the model small and ignores one-off noise. @default 2 */
  minDocumentFrequency: number;
}

export const DEFAULT_FEATURE_OPTIONS: FeatureOptions = {
  maxWordNgram: 2,
  charNgramRange: [3, 5],
  minDocumentFrequency: 2,
};

export interface SparseVector {
  indices: Int32Array;
  values: Float32Array;
}

/** A fitted vocabulary: term → column, and the inverse document frequency of each column. */
export interface Vectorizer {
  options: FeatureOptions;
  terms: string[];
  index: Map<string, number>;
  idf: Float32Array;
}

const WORD_RE = /[\p{L}\p{N}]+(?:['’][\p{L}]+)?/gu;
// Markers left by pii-redact (`<EMAIL_ADDRESS>`) run ahead of classification in pipelines; their words
// ("email", "address", "number") would otherwise pull every redacted message towards edit_personal_details.
const REDACTION_MARKER_RE = /<[A-Z][A-Z_]*>/g;

export function tokenize(text: string): string[] {
  const plain = text.replace(REDACTION_MARKER_RE, ' ').normalize('NFKC').toLowerCase().replace(/’/g, "'");
  return Array.from(plain.matchAll(WORD_RE), (m) => m[0]);
}

/** All terms of a text, with repetition (term frequency matters). Prefixes keep the three families apart. */
export function extractTerms(text: string, options: FeatureOptions): string[] {
  const words = tokenize(text);
  const terms: string[] = [];
  for (let n = 1; n <= options.maxWordNgram; n++) {
    for (let i = 0; i + n <= words.length; i++) terms.push(`w${n}:${words.slice(i, i + n).join(' ')}`);
  }
  const [minChar, maxChar] = options.charNgramRange;
  if (minChar > 0) {
    for (const word of words) {
      const padded = ` ${word} `;
      for (let n = minChar; n <= maxChar; n++) {
        for (let i = 0; i + n <= padded.length; i++) terms.push(`c:${padded.slice(i, i + n)}`);
      }
    }
  }
  return terms;
}

/** Fits the vocabulary; columns are in sorted term order so the same data always yields the same layout. */
export function fitVectorizer(documents: readonly string[][], options: FeatureOptions): Vectorizer {
  const documentFrequency = new Map<string, number>();
  for (const terms of documents) {
    for (const term of new Set(terms)) documentFrequency.set(term, (documentFrequency.get(term) ?? 0) + 1);
  }
  const terms = [...documentFrequency.entries()]
    .filter(([, df]) => df >= options.minDocumentFrequency)
    .map(([term]) => term)
    .sort();
  const idf = new Float32Array(terms.length);
  const n = documents.length;
  // Smoothed idf, as if one extra document contained every term; never zero, so common terms still count a bit.
  terms.forEach((term, i) => (idf[i] = Math.log((1 + n) / (1 + (documentFrequency.get(term) ?? 0))) + 1));
  return vectorizerFrom(options, terms, idf);
}

export function vectorizerFrom(options: FeatureOptions, terms: string[], idf: Float32Array): Vectorizer {
  return { options, terms, idf, index: new Map(terms.map((term, i) => [term, i])) };
}

/** Sublinear TF (1 + log tf) × idf, L2-normalised; unknown terms are ignored. */
export function vectorize(terms: readonly string[], vectorizer: Vectorizer): SparseVector {
  // Sorting the columns groups repeats together, so term frequencies fall out of one pass without a map.
  const columns = new Int32Array(terms.length);
  let known = 0;
  for (const term of terms) {
    const column = vectorizer.index.get(term);
    if (column !== undefined) columns[known++] = column;
  }
  const sorted = columns.subarray(0, known).sort();
  const indices: number[] = [];
  const values: number[] = [];
  let norm = 0;
  for (let i = 0; i < sorted.length; ) {
    let j = i + 1;
    while (j < sorted.length && sorted[j] === sorted[i]) j++;
    const weight = (1 + Math.log(j - i)) * vectorizer.idf[sorted[i]];
    indices.push(sorted[i]);
    values.push(weight);
    norm += weight * weight;
    i = j;
  }
  const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  return { indices: Int32Array.from(indices), values: Float32Array.from(values, (v) => v * scale) };
}
