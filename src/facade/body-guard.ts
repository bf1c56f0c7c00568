import { isUtf8 } from 'node:buffer';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MIMEType } from 'node:util';
import type { Request, RequestHandler } from 'express';
import { AppError } from './errors';
import { hasLoneSurrogate } from '../security/unicode';

/** Keys that reach object prototypes when a body is merged or assigned into another object. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

export type BodyProblemCode = 'forbidden_key' | 'invalid_unicode' | 'nesting_too_deep' | 'number_out_of_range';

export interface BodyProblem {
  code: BodyProblemCode;
  /** JSON Pointer (RFC 6901) of the offending key or value; '' is the whole body. */
  path: string;
  message: string;
}

export interface InspectOptions {
  /** Deepest nesting of objects and arrays accepted (the body itself is depth 1). @default 64 */
  maxDepth?: number;
  /** Stop after this many problems. @default 10 */
  maxProblems?: number;
}


const pointerToken = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');

/**
 * Walks a parsed JSON value (iteratively: a deep body must not overflow the stack here) and reports prototype
 * keys, strings or keys holding lone surrogates (JSON escapes such as "\ud800" parse into them), and nesting
 * deeper than `maxDepth` (which would overflow recursive code further on, e.g. JSON.stringify). Pure.
 */
export function inspectJson(value: unknown, opts: InspectOptions = {}): BodyProblem[] {
  const maxDepth = opts.maxDepth ?? 64;
  const maxProblems = opts.maxProblems ?? 10;
  const problems: BodyProblem[] = [];
  const stack: { value: unknown; path: string; depth: number }[] = [{ value, path: '', depth: 0 }];
  while (stack.length > 0 && problems.length < maxProblems) {
    const { value: v, path, depth } = stack.pop()!;
    if (typeof v === 'string') {
      if (hasLoneSurrogate(v)) problems.push({ code: 'invalid_unicode', path, message: 'contains a lone UTF-16 surrogate' });
      continue;
    }
    if (typeof v === 'number') {
      // JSON.parse reads 1e400 as Infinity, which no JSON encoder (nor the audit hash) can write back.
      if (!Number.isFinite(v)) problems.push({ code: 'number_out_of_range', path, message: 'is a number too large to represent (beyond ±1.8e308)' });
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    if (depth + 1 > maxDepth) {
      problems.push({ code: 'nesting_too_deep', path, message: `nests deeper than ${maxDepth} levels` });
      continue;
    }
    const children: { value: unknown; path: string; depth: number }[] = [];
    if (Array.isArray(v)) {
      v.forEach((item, i) => children.push({ value: item, path: `${path}/${i}`, depth: depth + 1 }));
    } else {
      // JSON.parse makes "__proto__" an own property, so Object.keys sees it.
      for (const key of Object.keys(v)) {
        const childPath = `${path}/${pointerToken(key)}`;
        if (FORBIDDEN_KEYS.has(key)) {
          problems.push({ code: 'forbidden_key', path: childPath, message: `the key "${key}" is not allowed` });
          continue;
        }
        if (hasLoneSurrogate(key)) {
          problems.push({ code: 'invalid_unicode', path: childPath, message: 'the key contains a lone UTF-16 surrogate' });
          continue;
        }
        children.push({ value: (v as Record<string, unknown>)[key], path: childPath, depth: depth + 1 });
      }
    }
    // Reversed onto the stack so problems come out in document order.
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]);
  }
  return problems.slice(0, maxProblems);
}

const TITLES: Record<BodyProblemCode, string> = {
  forbidden_key: 'Forbidden key in the request body',
  invalid_unicode: 'Invalid Unicode in the request body',
  nesting_too_deep: 'Request body nested too deeply',
  number_out_of_range: 'Number out of range in the request body',
};

/** The 400 for a body's problems: `code` is the first problem's, `errors` lists each with its JSON path. */
export function bodyProblemError(problems: BodyProblem[]): AppError {
  const first = problems[0];
  const detail = `${first.path === '' ? 'the body' : first.path} ${first.message}`;
  return new AppError(400, first.code, TITLES[first.code], detail, { errors: problems.map((p) => ({ path: p.path, code: p.code, message: p.message })) });
}

/** Runs after `express.json()`: refuses bodies `inspectJson` finds problems in. */
export function bodyGuard(opts: InspectOptions = {}): RequestHandler {
  return (req, _res, next) => {
    if (req.body !== undefined && typeof req.body === 'object') {
      const problems = inspectJson(req.body, opts);
      if (problems.length > 0) throw bodyProblemError(problems);
    }
    next();
  };
}

/** The charset parameter of a media type, or null when absent; a media type too malformed to read counts as a wrong one. */
function charsetOf(contentType: string): string | null {
  try {
    return new MIMEType(contentType).params.get('charset');
  } catch {
    return '(unreadable)';
  }
}

/**
 * A request body must be JSON in UTF-8 (RFC 8259, section 8.1): 415 otherwise. The parser alone would also take
 * UTF-16 and UTF-32.
 */
export function assertUtf8Json(req: Request): void {
  if (!req.is('application/json')) throw new AppError(415, 'unsupported_media_type', 'Unsupported media type', 'send the body as application/json');
  const charset = charsetOf(req.headers['content-type'] ?? '');
  // Only the registered name: the parser refuses the alias "utf8" too, and the answer should say so here.
  if (charset !== null && !/^utf-8$/i.test(charset)) {
    throw new AppError(
      415,
      'unsupported_media_type',
      'Unsupported media type',
      `charset "${charset.slice(0, 40)}" is not accepted; send the body as UTF-8, labelled charset=utf-8 or with no charset`,
    );
  }
}

/**
 * `verify` hook for `express.json()`: the decoder would silently turn invalid UTF-8 into U+FFFD, so check the
 * raw bytes first. Other charsets are refused before parsing (app.ts, jsonOnly).
 */
export function rejectInvalidUtf8(_req: IncomingMessage, _res: ServerResponse, buf: Buffer, encoding: string): void {
  // The charset the parser is about to decode with, as it read the header: authoritative where a header that
  // assertUtf8Json read differently (`charset =utf-16`) would otherwise slip through.
  if (!/^utf-?8$/i.test(encoding)) {
    throw new AppError(415, 'unsupported_media_type', 'Unsupported media type', `charset "${encoding.slice(0, 40)}" is not accepted; send the body as UTF-8`);
  }
  if (!isUtf8(buf)) {
    throw new AppError(400, 'invalid_unicode', TITLES.invalid_unicode, 'the request body is not valid UTF-8', {
      errors: [{ path: '', code: 'invalid_unicode', message: 'is not valid UTF-8' }],
    });
  }
}
