/**
 * Evaluation of stage input mappings and `when` conditions.
 *
 * This module runs inside the workflow sandbox, so it is pure and deterministic: no `eval`, no regular
 * expressions built from definition text, no clock, no randomness, and no imports except types. The loader
 * validates every reference at load time, so at run time an unresolvable path simply yields `undefined`.
 *
 * References
 * - A path is dot-separated segments of letters, digits, `_` and `-`: `input.ticketId`, `classify.label`,
 *   `redact.findings.0.kind` (a numeric segment indexes an array).
 * - The first segment is `input` (the run input), `signals` (then the signal name: the latest payload of a
 *   declared signal, `signals.note.text`) or the name of a stage (that stage's output). An approval stage's
 *   output is `{ decision, approver, comment? }`; a parallel group's is an object keyed by member name, and each
 *   member's output is also under its own name.
 * - A stage that was skipped by its `when` condition (or has not run, or did not complete) has no output, and a
 *   signal not yet received has no payload: every reference to them resolves to `undefined`. In a mapping that
 *   drops the key (so the agent's optional input or default applies); in a condition the value counts as
 *   missing (`exists: false` holds).
 *
 * Mapping values
 * - A string that is exactly `${path}` becomes the referenced value with its type (object, number, ...).
 * - A string with `${path}` among other text interpolates: strings as is, numbers and booleans via `String`,
 *   objects and arrays as JSON, `null` and `undefined` as the empty string.
 * - `$${` writes a literal `${`.
 * - Other JSON values pass through; strings nested in objects and arrays are resolved the same way. A nested
 *   object key whose value resolves to `undefined` is dropped; an array element that does becomes `null`
 *   (JSON has no holes).
 */
import type { Condition, JsonValue, Mapping, RefCondition } from './definition-schema';

/** What references resolve against. */
export interface ExpressionScope {
  /** The run input. */
  input: Record<string, unknown>;
  /** Latest payload of each declared signal received so far, by signal name; signals not yet received are absent. */
  signals: Record<string, unknown>;
  /**
   * Output of each completed stage, by stage name; skipped stages are absent. A parallel group's output is an
   * object keyed by member name, and each completed member's output is also here under its own name.
   */
  stages: Record<string, unknown>;
}

/** Where a reference was found, relative to the mapping or condition it came from. */
export interface ReferenceSite {
  /** Path of the string (mapping) or of the `ref` key (condition), e.g. `['text']`, `['all', 0, 'ref']`. */
  at: (string | number)[];
  /** The referenced path, trimmed, e.g. `classify.label`. */
  ref: string;
}

const SEGMENT = /^[A-Za-z0-9_-]+$/;

/** True for a well-formed reference path (`input.a.b`, `signals.note.text`, `stage.field.0`). */
export function isValidPath(path: string): boolean {
  if (path === '') return false;
  return path.split('.').every((segment) => SEGMENT.test(segment));
}

/** Resolves a reference path against the scope; `undefined` when any step is missing. */
export function resolvePath(path: string, scope: ExpressionScope): unknown {
  if (!isValidPath(path)) return undefined;
  const [root, ...rest] = path.split('.');
  let current: unknown =
    root === 'input' ? scope.input : root === 'signals' ? scope.signals : step(scope.stages, root!);
  for (const segment of rest) current = step(current, segment);
  return current;
}

function step(value: unknown, segment: string): unknown {
  if (Array.isArray(value)) {
    return /^\d+$/.test(segment) ? value[Number(segment)] : undefined;
  }
  if (typeof value === 'object' && value !== null) return ownValue(value as Record<string, unknown>, segment);
  return undefined;
}

// Own properties only: a path like `x.constructor` or `x.__proto__` must not reach into prototypes.
function ownValue(record: Record<string, unknown>, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------------------------------------------

/** One piece of a template string. */
export type TemplatePart =
  | { kind: 'text'; text: string }
  | { kind: 'ref'; ref: string }
  /** `${` with no closing `}`; kept as text at run time, reported by the loader. */
  | { kind: 'unterminated'; text: string };

/** Splits a string into literal text and `${path}` references (paths trimmed, not yet validated). */
export function parseTemplate(template: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let text = '';
  let i = 0;
  while (i < template.length) {
    if (template.startsWith('$${', i)) {
      text += '${';
      i += 3;
    } else if (template.startsWith('${', i)) {
      const close = template.indexOf('}', i + 2);
      if (close === -1) {
        if (text) parts.push({ kind: 'text', text });
        parts.push({ kind: 'unterminated', text: template.slice(i) });
        return parts;
      }
      if (text) parts.push({ kind: 'text', text });
      text = '';
      parts.push({ kind: 'ref', ref: template.slice(i + 2, close).trim() });
      i = close + 1;
    } else {
      text += template[i];
      i += 1;
    }
  }
  if (text) parts.push({ kind: 'text', text });
  return parts;
}

/** Resolves one template string: a lone `${path}` keeps the value's type, anything else interpolates. */
export function resolveTemplate(template: string, scope: ExpressionScope): unknown {
  const parts = parseTemplate(template);
  if (parts.length === 1 && parts[0]!.kind === 'ref') return resolvePath(parts[0]!.ref, scope);
  let out = '';
  for (const part of parts) {
    out += part.kind === 'ref' ? stringify(resolvePath(part.ref, scope)) : part.text;
  }
  return out;
}

function stringify(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function resolveValue(value: JsonValue, scope: ExpressionScope): unknown {
  if (typeof value === 'string') return resolveTemplate(value, scope);
  if (Array.isArray(value)) {
    return value.map((item) => {
      const resolved = resolveValue(item, scope);
      return resolved === undefined ? null : resolved;
    });
  }
  if (typeof value === 'object' && value !== null) return resolveObject(value, scope);
  return value;
}

function resolveObject(object: { [key: string]: JsonValue }, scope: ExpressionScope): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(object)) {
    const resolved = resolveValue(item, scope);
    if (resolved !== undefined) out[key] = resolved;
  }
  return out;
}

/**
 * Builds a stage's agent input from its mapping. Keys whose value resolves to `undefined` (a missing optional
 * input field, a skipped stage) are left out, so the agent's own optional/default handling applies.
 */
export function resolveMapping(mapping: Mapping, scope: ExpressionScope): Record<string, unknown> {
  return resolveObject(mapping, scope);
}

// ---------------------------------------------------------------------------------------------------------------
// Conditions
// ---------------------------------------------------------------------------------------------------------------

/**
 * Evaluates a `when` condition. Every operator given on one `ref` must hold. Ordering operators hold only
 * when both sides are numbers or both are strings; anything else (including a missing value) is false, so a
 * condition on a skipped stage's output never accidentally passes a threshold.
 */
export function evaluateCondition(condition: Condition, scope: ExpressionScope): boolean {
  if ('all' in condition) return condition.all.every((c) => evaluateCondition(c, scope));
  if ('any' in condition) return condition.any.some((c) => evaluateCondition(c, scope));
  if ('not' in condition) return !evaluateCondition(condition.not, scope);
  return evaluateComparison(condition, scope);
}

function evaluateComparison(condition: RefCondition, scope: ExpressionScope): boolean {
  const value = resolvePath(condition.ref, scope);
  const has = (op: keyof RefCondition): boolean => Object.prototype.hasOwnProperty.call(condition, op);
  if (has('eq') && !deepEqual(value, condition.eq)) return false;
  if (has('ne') && deepEqual(value, condition.ne)) return false;
  if (has('lt') && !compare(value, condition.lt, (c) => c < 0)) return false;
  if (has('lte') && !compare(value, condition.lte, (c) => c <= 0)) return false;
  if (has('gt') && !compare(value, condition.gt, (c) => c > 0)) return false;
  if (has('gte') && !compare(value, condition.gte, (c) => c >= 0)) return false;
  if (has('in') && !(condition.in ?? []).some((candidate) => deepEqual(value, candidate))) return false;
  if (has('exists') && (value !== undefined && value !== null) !== condition.exists) return false;
  if (has('startsWith') && !(typeof value === 'string' && value.startsWith(condition.startsWith ?? ''))) {
    return false;
  }
  if (has('contains') && !contains(value, condition.contains)) return false;
  return true;
}

function compare(value: unknown, operand: unknown, test: (order: number) => boolean): boolean {
  if (typeof value === 'number' && typeof operand === 'number') return test(value - operand);
  if (typeof value === 'string' && typeof operand === 'string') {
    return test(value < operand ? -1 : value > operand ? 1 : 0);
  }
  return false;
}

function contains(value: unknown, operand: unknown): boolean {
  if (typeof value === 'string') return typeof operand === 'string' && value.includes(operand);
  if (Array.isArray(value)) return value.some((item) => deepEqual(item, operand));
  return false;
}

/** JSON equality: same primitives, arrays element-wise, objects with the same own keys and equal values. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((item, i) => deepEqual(item, b[i]));
  }
  const aRecord = a as Record<string, unknown>;
  const bRecord = b as Record<string, unknown>;
  const aKeys = Object.keys(aRecord);
  if (aKeys.length !== Object.keys(bRecord).length) return false;
  return aKeys.every(
    (key) => Object.prototype.hasOwnProperty.call(bRecord, key) && deepEqual(aRecord[key], bRecord[key]),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Reference collection (for the loader)
// ---------------------------------------------------------------------------------------------------------------

/**
 * Every reference in a mapping (the `${path}` inside its strings, at any depth) or in a condition (each
 * `ref`), with where it was found. Mappings and conditions are both plain objects and a mapping may have a key
 * called `ref`, so the caller says which one it passes.
 */
export function collectReferenceSites(value: Mapping | Condition, kind: 'mapping' | 'condition'): ReferenceSite[] {
  const sites: ReferenceSite[] = [];
  if (kind === 'mapping') collectFromValue(value as Mapping, [], sites);
  else collectFromCondition(value as Condition, [], sites);
  return sites;
}

/** The referenced paths of a mapping or condition, in document order (duplicates kept). */
export function collectReferences(value: Mapping | Condition, kind: 'mapping' | 'condition'): string[] {
  return collectReferenceSites(value, kind).map((site) => site.ref);
}

function collectFromValue(value: JsonValue, at: (string | number)[], sites: ReferenceSite[]): void {
  if (typeof value === 'string') {
    for (const part of parseTemplate(value)) if (part.kind === 'ref') sites.push({ at, ref: part.ref });
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => collectFromValue(item, [...at, i], sites));
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) collectFromValue(item, [...at, key], sites);
  }
}

function collectFromCondition(condition: Condition, at: (string | number)[], sites: ReferenceSite[]): void {
  if ('all' in condition) condition.all.forEach((c, i) => collectFromCondition(c, [...at, 'all', i], sites));
  else if ('any' in condition) condition.any.forEach((c, i) => collectFromCondition(c, [...at, 'any', i], sites));
  else if ('not' in condition) collectFromCondition(condition.not, [...at, 'not'], sites);
  else sites.push({ at: [...at, 'ref'], ref: condition.ref });
}
