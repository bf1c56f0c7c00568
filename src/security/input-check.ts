import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';

export interface InputProblem {
  /** JSON Pointer of the offending value inside the run input ('' for the whole input). */
  path: string;
  message: string;
}

export interface InputCheckResult {
  ok: boolean;
  bytes: number;
  problems: InputProblem[];
}

function describe(e: ErrorObject): InputProblem {
  if (e.keyword === 'additionalProperties') {
    const extra = (e.params as { additionalProperty: string }).additionalProperty;
    return { path: `${e.instancePath}/${extra}`, message: 'is not allowed by the pipeline input schema' };
  }
  if (e.keyword === 'required') {
    const missing = (e.params as { missingProperty: string }).missingProperty;
    return { path: `${e.instancePath}/${missing}`, message: 'is required' };
  }
  return { path: e.instancePath, message: e.message ?? e.keyword };
}

/**
 * Validates run input against a pipeline's input JSON Schema and size limit. Used by the facade (to answer 400
 * with the failing path) and again inside the run's security stage, so a run started by any client is checked.
 * Compiled validators are cached by the definition hash.
 */
export function createInputChecker() {
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  addFormats(ajv);
  const cache = new Map<string, ValidateFunction>();
  return {
    check(schema: object, cacheKey: string, input: unknown, maxBytes: number): InputCheckResult {
      const bytes = Buffer.byteLength(JSON.stringify(input ?? null), 'utf8');
      if (bytes > maxBytes) {
        return { ok: false, bytes, problems: [{ path: '', message: `input is ${bytes} bytes; the pipeline allows ${maxBytes}` }] };
      }
      let validate = cache.get(cacheKey);
      if (!validate) {
        validate = ajv.compile(schema);
        cache.set(cacheKey, validate);
      }
      if (validate(input)) return { ok: true, bytes, problems: [] };
      return { ok: false, bytes, problems: (validate.errors ?? []).map(describe) };
    },
  };
}
export type InputChecker = ReturnType<typeof createInputChecker>;
