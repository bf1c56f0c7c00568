/**
 * Structured output: the stage's `responseSchema` (JSON Schema, draft 2020-12 unless `$schema` names draft-07)
 * checks the model's answer. The answer is parsed leniently (code fences and text around one JSON value are
 * tolerated, because small models add them) and validated strictly.
 */
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { LlmRequestRejectedError } from './llm-errors';

const DRAFT_07 = /json-schema\.org\/draft-07\/schema/;
const compiled = new Map<string, ValidateFunction>();

/** Compiles (and caches) a response schema; a schema that does not compile rejects the stage for good. */
export function compileResponseSchema(schema: Record<string, unknown>): ValidateFunction {
  const key = JSON.stringify(schema);
  const hit = compiled.get(key);
  if (hit) return hit;
  const options = { allErrors: true, strict: true, strictTypes: false, strictTuples: false, strictRequired: false };
  const ajv = typeof schema.$schema === 'string' && DRAFT_07.test(schema.$schema) ? new Ajv(options) : new Ajv2020(options);
  addFormats(ajv);
  let validate: ValidateFunction;
  try {
    validate = ajv.compile(schema);
  } catch (err) {
    throw new LlmRequestRejectedError(`responseSchema does not compile: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (compiled.size >= 64) compiled.delete(compiled.keys().next().value as string);
  compiled.set(key, validate);
  return validate;
}

/** The one JSON value in a model's answer: the whole text, a fenced block, or the outermost `{…}` / `[…]`. */
export function extractJson(text: string): unknown {
  const trimmed = text.trim();
  const candidates = [trimmed];
  const fenced = /```(?:json)?\s*([\s\S]*?)```/i.exec(trimmed);
  if (fenced) candidates.push(fenced[1]!.trim());
  for (const [open, close] of [['{', '}'], ['[', ']']] as const) {
    const start = trimmed.indexOf(open);
    const end = trimmed.lastIndexOf(close);
    if (start >= 0 && end > start) candidates.push(trimmed.slice(start, end + 1));
  }
  let first: unknown;
  for (const candidate of candidates) {
    try {
      return JSON.parse(candidate) as unknown;
    } catch (err) {
      first ??= err;
    }
  }
  throw first instanceof Error ? first : new Error('no JSON value found');
}

function describe(errors: readonly ErrorObject[] | null | undefined): string {
  return (errors ?? [])
    .slice(0, 5)
    .map((e) => `${e.instancePath || '(root)'} ${e.message ?? 'is invalid'}${e.keyword === 'additionalProperties' ? ` (${String((e.params as { additionalProperty?: string }).additionalProperty)})` : ''}`)
    .join('; ');
}

export type StructuredResult = { ok: true; value: unknown } | { ok: false; problems: string };

/** Parses and validates one answer; `problems` is written for the model to read in the repair request. */
export function checkStructured(text: string, finishReason: string, validate: ValidateFunction): StructuredResult {
  let value: unknown;
  try {
    value = extractJson(text);
  } catch (err) {
    const cut = finishReason === 'length' ? ' (the answer was cut off at the token limit: answer more briefly)' : '';
    return { ok: false, problems: `the answer is not valid JSON: ${err instanceof Error ? err.message : String(err)}${cut}` };
  }
  if (validate(value)) return { ok: true, value };
  return { ok: false, problems: describe(validate.errors) };
}
