/**
 * Pattern detectors for the PII types the redactor supports. Each detector is a pure function from text to
 * candidate spans; regexes find shapes, then checksums and structural rules decide. Overlaps between detectors
 * are settled once, in `resolveOverlaps`, so individual detectors may over-report.
 *
 * Offsets are JavaScript string indices (UTF-16 code units), end exclusive.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { ibanLength, isCardNumber, isIbanValid, isUsSsn } from './checksums';

/** Type names follow Microsoft Presidio so evaluation against its datasets lines up. */
export const PII_TYPES = [
  'CREDIT_CARD',
  'IBAN_CODE',
  'US_SSN',
  'IP_ADDRESS',
  'EMAIL_ADDRESS',
  'PHONE_NUMBER',
] as const;
export type PiiType = (typeof PII_TYPES)[number];

export interface PiiSpan {
  type: PiiType;
  start: number;
  end: number;
}

// Order of PII_TYPES doubles as tie-break priority: earlier wins when two equally long spans overlap.
const PRIORITY: Readonly<Record<PiiType, number>> = Object.fromEntries(
  PII_TYPES.map((type, i) => [type, PII_TYPES.length - i]),
) as Record<PiiType, number>;

// Phone numbers are recognised by shape alone, so any checksum- or structure-validated finding beats them.
const WEAK_TYPES: ReadonlySet<PiiType> = new Set<PiiType>(['PHONE_NUMBER']);

const EMAIL_RE =
  /(?<![\w.%+-])[A-Za-z0-9_%+-](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![\w-])/g;

export function detectEmails(text: string): PiiSpan[] {
  const spans: PiiSpan[] = [];
  for (const m of text.matchAll(EMAIL_RE)) {
    const value = m[0];
    // Consecutive dots are legal in no mailbox we would want to guess about.
    if (value.includes('..')) continue;
    spans.push({ type: 'EMAIL_ADDRESS', start: m.index, end: m.index + value.length });
  }
  return spans;
}

// Runs of digit groups joined by single spaces or dashes; card windows are then chosen on group boundaries so a
// stray number written next to a card does not hide it.
const DIGIT_RUN_RE = /(?<![\w-])\d+(?:[ -]\d+)*/g;

export function detectCreditCards(text: string): PiiSpan[] {
  const spans: PiiSpan[] = [];
  for (const m of text.matchAll(DIGIT_RUN_RE)) {
    const groups: Array<{ start: number; end: number }> = [];
    for (const g of m[0].matchAll(/\d+/g)) {
      groups.push({ start: m.index + g.index, end: m.index + g.index + g[0].length });
    }
    let i = 0;
    while (i < groups.length) {
      let found = -1;
      let digits = '';
      const windows: Array<{ j: number; digits: string }> = [];
      for (let j = i; j < groups.length; j++) {
        digits += text.slice(groups[j].start, groups[j].end);
        if (digits.length > 19) break;
        if (digits.length >= 13) windows.push({ j, digits });
      }
      // Longest valid window first: a 19-digit card must not be reported as its 16-digit prefix.
      for (let w = windows.length - 1; w >= 0; w--) {
        if (isCardNumber(windows[w].digits)) {
          found = windows[w].j;
          break;
        }
      }
      if (found >= 0) {
        spans.push({ type: 'CREDIT_CARD', start: groups[i].start, end: groups[found].end });
        i = found + 1;
      } else {
        i++;
      }
    }
  }
  return spans;
}

// Letters and digits with optional single spaces; the country's registered length decides where it ends.
const IBAN_CANDIDATE_RE = /(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){10,34}/g;

export function detectIbans(text: string): PiiSpan[] {
  const spans: PiiSpan[] = [];
  const re = new RegExp(IBAN_CANDIDATE_RE.source, 'g');
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    const span = ibanSpanAt(text, m.index, m[0]);
    if (span) {
      spans.push(span);
      re.lastIndex = span.end;
    } else {
      // The candidate may have swallowed the start of a real IBAN written right after a code-like word.
      re.lastIndex = m.index + 1;
    }
  }
  return spans;
}

function ibanSpanAt(text: string, start: number, candidate: string): PiiSpan | undefined {
  const expected = ibanLength(candidate.slice(0, 2));
  if (expected === undefined) return undefined;
  let compact = '';
  let offset = 0;
  while (offset < candidate.length && compact.length < expected) {
    const ch = candidate[offset];
    if (ch !== ' ') compact += ch;
    offset++;
  }
  if (compact.length !== expected) return undefined;
  const end = start + offset;
  // A longer alphanumeric run means the text holds something else that merely starts like an IBAN.
  if (end < text.length && /[A-Za-z0-9]/.test(text[end])) return undefined;
  if (!isIbanValid(compact)) return undefined;
  return { type: 'IBAN_CODE', start, end };
}

// Dash- or space-separated only, and the same separator twice: nine bare digits are too often something else.
const SSN_RE = /(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w]|-\d)/g;

export function detectUsSsns(text: string): PiiSpan[] {
  const spans: PiiSpan[] = [];
  for (const m of text.matchAll(SSN_RE)) {
    if (!isUsSsn(m[1] + m[3] + m[4])) continue;
    spans.push({ type: 'US_SSN', start: m.index, end: m.index + m[0].length });
  }
  return spans;
}

const IPV4_RE = /(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w]|\.\d)/g;
// Hex groups and colons (optionally ending in dotted IPv4); `net.isIPv6` decides, including `::` compression.
const IPV6_RE = /(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?(?![\w:]|\.\d)/g;

export function detectIpAddresses(text: string): PiiSpan[] {
  const spans: PiiSpan[] = [];
  for (const m of text.matchAll(IPV4_RE)) {
    if (isIPv4(m[0])) spans.push({ type: 'IP_ADDRESS', start: m.index, end: m.index + m[0].length });
  }
  for (const m of text.matchAll(IPV6_RE)) {
    // A bare `::` is valid IPv6 but in prose it is punctuation.
    if (!/[0-9A-Fa-f]/.test(m[0]) || !isIPv6(m[0])) continue;
    spans.push({ type: 'IP_ADDRESS', start: m.index, end: m.index + m[0].length });
  }
  return spans;
}

const PHONE_RE = new RegExp(
  [
    '(?<![\\w+.\\-/])',
    '(?:(?:\\+|\\b00)\\d{1,3}[ .\\-]?)?', // country calling code
    '(?:\\(0\\)[ .\\-]?)?', // optional trunk prefix, as in +44 (0)20
    '(?:\\(\\d{1,5}\\)[ .\\-]?)?', // area code in parentheses
    '\\d{1,11}(?:[ .\\-]\\d{1,8}){0,5}',
    '(?: ?(?:x|ext\\.?) ?\\d{1,6})?', // extension
    // A trailing "-Fax" label is fine; a dash, dot, comma or colon before more digits means a longer token.
    '(?![\\w/]|[-.,:]\\d)',
  ].join(''),
  'g',
);
const PHONE_EXTENSION_RE = / ?(?:x|ext\.?) ?\d{1,6}$/;
const DATE_SHAPES = [/^\d{4}[-. ]\d{1,2}[-. ]\d{1,2}$/, /^\d{1,2}[-. ]\d{1,2}[-. ]\d{4}$/];
const DOTTED_THOUSANDS_RE = /^\d{1,3}(?:\.\d{3})+$/;
const DOTTED_QUAD_RE = /^\d{1,3}(?:\.\d{1,3}){3}$/;
const SSN_SHAPE_RE = /^\d{3}-\d{2}-\d{4}$/;
// Words people put next to a phone number. Short or bare numbers are only phone numbers in their company:
// without a cue, "704 1436" is as likely a house number and "90010-170" a postal code.
const PHONE_CUE_RE =
  /\b(?:phone|tel|telephone|mobile|cell|cellphone|fax|desk|office|call|called|calling|contact|reach|dial|ring|text|sms|whatsapp|answering|registered|number|hotline)\b/i;
const CUE_BEFORE = 40;
const CUE_AFTER = 20;

/**
 * Phone numbers have no checksum, so acceptance rests on shape: 7–15 digits (E.164's ceiling) written in three
 * or more groups or with a `+` or parentheses; fewer groups need a cue word nearby. Shapes that belong to
 * dates, amounts, IPv4 addresses, SSNs and card/account numbers are turned away so their own detectors (or
 * nobody) own them.
 */
export function detectPhoneNumbers(text: string): PiiSpan[] {
  const spans: PiiSpan[] = [];
  for (const m of text.matchAll(PHONE_RE)) {
    const start = m.index;
    const end = start + m[0].length;
    const shape = phoneShape(m[0]);
    if (shape === 'reject') continue;
    if (shape === 'needs-cue' && !hasPhoneCue(text, start, end)) continue;
    spans.push({ type: 'PHONE_NUMBER', start, end });
  }
  return spans;
}

function phoneShape(candidate: string): 'phone' | 'needs-cue' | 'reject' {
  const main = candidate.replace(PHONE_EXTENSION_RE, '');
  const digitCount = main.replace(/\D/g, '').length;
  if (digitCount < 7 || digitCount > 15) return 'reject';
  if (DATE_SHAPES.some((re) => re.test(main))) return 'reject';
  if (DOTTED_THOUSANDS_RE.test(main) || DOTTED_QUAD_RE.test(main) || SSN_SHAPE_RE.test(main)) return 'reject';
  const groups = main.match(/\d+/g) ?? [];
  // Three or more four-digit blocks is how cards and account numbers are printed, not phone numbers.
  if (groups.filter((g) => g.length === 4).length >= 3) return 'reject';
  if (/[+(]/.test(main) || groups.length >= 3) return 'phone';
  if (groups.length === 1 && digitCount !== 10 && digitCount !== 11) return 'reject';
  return 'needs-cue';
}

function hasPhoneCue(text: string, start: number, end: number): boolean {
  return (
    PHONE_CUE_RE.test(text.slice(Math.max(0, start - CUE_BEFORE), start)) ||
    PHONE_CUE_RE.test(text.slice(end, end + CUE_AFTER))
  );
}

const DETECTORS: ReadonlyArray<(text: string) => PiiSpan[]> = [
  detectCreditCards,
  detectIbans,
  detectUsSsns,
  detectIpAddresses,
  detectEmails,
  detectPhoneNumbers,
];

/**
 * Picks a non-overlapping subset: validated types beat shape-only ones, then the longer span, then type
 * priority, then the earlier start. The order is total, so the same text always yields the same findings.
 */
export function resolveOverlaps(spans: readonly PiiSpan[]): PiiSpan[] {
  const ranked = [...spans].sort(
    (a, b) =>
      Number(WEAK_TYPES.has(a.type)) - Number(WEAK_TYPES.has(b.type)) ||
      b.end - b.start - (a.end - a.start) ||
      PRIORITY[b.type] - PRIORITY[a.type] ||
      a.start - b.start,
  );
  const kept: PiiSpan[] = [];
  for (const span of ranked) {
    if (kept.every((k) => span.end <= k.start || span.start >= k.end)) kept.push(span);
  }
  return kept.sort((a, b) => a.start - b.start);
}

/** Every supported PII span in `text`, non-overlapping and ordered by position. */
export function findPii(text: string): PiiSpan[] {
  return resolveOverlaps(DETECTORS.flatMap((detect) => detect(text)));
}

/** Replaces each span with `<TYPE>`; spans must be non-overlapping and sorted, as `findPii` returns them. */
export function redactSpans(text: string, spans: readonly PiiSpan[]): string {
  let out = '';
  let cursor = 0;
  for (const span of spans) {
    out += text.slice(cursor, span.start) + `<${span.type}>`;
    cursor = span.end;
  }
  return out + text.slice(cursor);
}
