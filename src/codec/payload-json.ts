import type { Payload } from '@temporalio/common';

/** A payload in protobuf JSON form, as the codec server protocol carries it: bytes as base64. */
export interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

// Protobuf JSON accepts the standard and the URL-safe alphabet, padded or not.
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;
/** Problems listed in one answer at most. */
const MAX_ERRORS = 20;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Reads `{ payloads: [{ metadata: { k: base64 }, data: base64 }] }`. Returns the payloads, or the problems as
 * JSON-pointer paths; unknown fields are ignored, as protobuf JSON parsers do.
 */
export function payloadsFromJson(body: unknown): { payloads: Payload[] } | { errors: { path: string; message: string }[] } {
  if (!isObject(body) || !Array.isArray(body.payloads)) return { errors: [{ path: '/payloads', message: 'must be an array of payloads' }] };
  const problems: { path: string; message: string }[] = [];
  // A body can hold a great many bad fields; the answer names the first ones, not all of them.
  const errors = {
    push(problem: { path: string; message: string }) {
      if (problems.length < MAX_ERRORS) problems.push(problem);
      else if (problems.length === MAX_ERRORS) problems.push({ path: '', message: `more problems are not listed (the first ${MAX_ERRORS} are)` });
    },
    get length() {
      return problems.length;
    },
  };
  const payloads = body.payloads.map((raw, i): Payload => {
    const at = `/payloads/${i}`;
    if (!isObject(raw)) {
      errors.push({ path: at, message: 'must be an object with metadata and data' });
      return {};
    }
    const bytes = (value: unknown, path: string): Uint8Array | undefined => {
      // One character short of a byte (length 4n+1 once unpadded) is not base64 either.
      if (typeof value !== 'string' || !BASE64.test(value) || value.replace(/=+$/, '').length % 4 === 1 || (value.includes('=') && value.length % 4 !== 0)) {
        errors.push({ path, message: 'must be a base64 string' });
        return undefined;
      }
      return Buffer.from(value, 'base64');
    };
    const metadata: Record<string, Uint8Array> = {};
    if (raw.metadata !== undefined && raw.metadata !== null) {
      if (!isObject(raw.metadata)) errors.push({ path: `${at}/metadata`, message: 'must be an object of base64 strings' });
      else {
        for (const [k, v] of Object.entries(raw.metadata)) {
          const path = `${at}/metadata/${k.replaceAll('~', '~0').replaceAll('/', '~1')}`;
          // Assigned, "__proto__" would set the object's prototype and vanish from the payload.
          if (k === '__proto__') errors.push({ path, message: 'the key "__proto__" is not allowed' });
          else metadata[k] = bytes(v, path) ?? new Uint8Array();
        }
      }
    }
    const data = raw.data === undefined || raw.data === null ? new Uint8Array() : bytes(raw.data, `${at}/data`);
    return { metadata, data };
  });
  return problems.length > 0 ? { errors: problems } : { payloads };
}

/** Writes payloads back in protobuf JSON form. */
export function payloadsToJson(payloads: Payload[]): { payloads: JsonPayload[] } {
  return {
    payloads: payloads.map((p) => ({
      metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
      data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
    })),
  };
}
