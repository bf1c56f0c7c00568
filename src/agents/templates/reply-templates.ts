/**
 * Loading, checking and rendering reply templates. Templates are compiled once into literal and placeholder
 * parts, and rendering only concatenates them: a value is never scanned for placeholders, so `{{` typed by a
 * customer stays text. Values are stripped of control characters and, for HTML, escaped; template text is
 * escaped too, because it is written as plain text.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { TemplateLoadError } from '../agent-errors';

export const DEFAULT_TEMPLATES_FILE = join(__dirname, 'replies.yaml');

const PLACEHOLDERS = ['team', 'intent', 'ticketId', 'customerName'] as const;
export type PlaceholderName = (typeof PLACEHOLDERS)[number];
/** Inputs a caller may leave out; a template must say what to write instead. */
const OPTIONAL_PLACEHOLDERS: ReadonlySet<PlaceholderName> = new Set(['ticketId', 'customerName']);

type Part = { literal: string } | { name: PlaceholderName; fallback?: string };

export interface CompiledTemplate {
  id: string;
  parts: Part[];
}

export interface ReplyTemplates {
  file: string;
  layout: { greeting: CompiledTemplate; reference: CompiledTemplate; signoff: CompiledTemplate };
  fallback: CompiledTemplate;
  byIntent: ReadonlyMap<string, CompiledTemplate>;
  byTeam: ReadonlyMap<string, CompiledTemplate>;
  /** The team each intent is filed under; handy as a routing table. */
  teamOfIntent: ReadonlyMap<string, string>;
}

export type ReplyValues = { team: string; intent: string; ticketId?: string; customerName?: string };

const fileSchema = z.strictObject({
  layout: z.strictObject({ greeting: z.string(), reference: z.string(), signoff: z.string() }),
  default: z.string().min(1),
  teams: z.record(
    z.string().min(1),
    z.strictObject({
      fallback: z.string().min(1),
      intents: z.record(z.string().min(1), z.string().min(1)).default({}),
    }),
  ),
});

const PLACEHOLDER_RE = /\{\{\s*([A-Za-z]+)\s*(?:\|([^{}]*))?\}\}/g;

export function loadReplyTemplates(file: string = DEFAULT_TEMPLATES_FILE): ReplyTemplates {
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (err) {
    throw new TemplateLoadError(file, undefined, `cannot read (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(source);
  } catch (err) {
    throw new TemplateLoadError(file, undefined, `invalid YAML: ${(err as Error).message}`);
  }
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TemplateLoadError(file, undefined, `${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const spec = parsed.data;
  const compile = (id: string, text: string, optionalAllowed: ReadonlySet<PlaceholderName> = new Set()) =>
    compileTemplate(file, id, text, optionalAllowed);

  const byIntent = new Map<string, CompiledTemplate>();
  const byTeam = new Map<string, CompiledTemplate>();
  const teamOfIntent = new Map<string, string>();
  for (const [team, group] of Object.entries(spec.teams)) {
    byTeam.set(team, compile(`team:${team}`, group.fallback));
    for (const [intent, text] of Object.entries(group.intents)) {
      if (byIntent.has(intent)) {
        throw new TemplateLoadError(file, `intent:${intent}`, `listed under both ${teamOfIntent.get(intent)} and ${team}`);
      }
      byIntent.set(intent, compile(`intent:${intent}`, text));
      teamOfIntent.set(intent, team);
    }
  }
  return {
    file,
    layout: {
      greeting: compile('layout:greeting', spec.layout.greeting),
      // The reference line is only rendered when a ticketId is present, so it may use it bare.
      reference: compile('layout:reference', spec.layout.reference, new Set(['ticketId'])),
      signoff: compile('layout:signoff', spec.layout.signoff),
    },
    fallback: compile('default', spec.default),
    byIntent,
    byTeam,
    teamOfIntent,
  };
}

/**
 * Splits a template into parts, refusing unknown placeholders, optional ones without a fallback (unless the
 * caller guarantees the value) and any `{{` that does not open a well-formed placeholder.
 */
export function compileTemplate(
  file: string,
  id: string,
  text: string,
  guaranteed: ReadonlySet<PlaceholderName> = new Set(),
): CompiledTemplate {
  const parts: Part[] = [];
  let cursor = 0;
  for (const m of text.matchAll(PLACEHOLDER_RE)) {
    pushLiteral(file, id, parts, text.slice(cursor, m.index));
    const name = m[1];
    if (!(PLACEHOLDERS as readonly string[]).includes(name)) {
      throw new TemplateLoadError(file, id, `unknown placeholder {{${name}}} (known: ${PLACEHOLDERS.join(', ')})`);
    }
    const placeholder = name as PlaceholderName;
    const fallback = m[2]?.trim();
    if (OPTIONAL_PLACEHOLDERS.has(placeholder) && fallback === undefined && !guaranteed.has(placeholder)) {
      throw new TemplateLoadError(file, id, `{{${name}}} is optional, so it needs a fallback: {{${name}|…}}`);
    }
    parts.push(fallback === undefined ? { name: placeholder } : { name: placeholder, fallback });
    cursor = m.index + m[0].length;
  }
  pushLiteral(file, id, parts, text.slice(cursor));
  return { id, parts };
}

function pushLiteral(file: string, id: string, parts: Part[], literal: string): void {
  if (literal.includes('{{')) throw new TemplateLoadError(file, id, `malformed placeholder near "${snippet(literal)}"`);
  if (literal) parts.push({ literal });
}

function snippet(literal: string): string {
  const at = literal.indexOf('{{');
  return literal.slice(at, at + 24);
}

/** Intent template, else the team's, else the default. */
export function selectTemplate(templates: ReplyTemplates, intent: string, team: string): CompiledTemplate {
  return templates.byIntent.get(intent) ?? templates.byTeam.get(team) ?? templates.fallback;
}

// C0/C1 controls (newlines and tabs included: values are single-line) and the bidirectional overrides and
// isolates that can make text display in a different order from how it is stored.
const UNSAFE_CHARS_RE = /[\p{Cc}\u200E\u200F\u202A-\u202E\u2066-\u2069]/gu;

export function sanitizeValue(value: string): string {
  return value.replace(UNSAFE_CHARS_RE, ' ').replace(/\s+/g, ' ').trim();
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/** Plain-text rendering of one template; absent or blank values use the placeholder's fallback. */
export function renderTemplate(template: CompiledTemplate, values: ReplyValues): string {
  let out = '';
  for (const part of template.parts) {
    if ('literal' in part) {
      out += part.literal;
    } else {
      const raw = values[part.name];
      const value = raw === undefined ? '' : sanitizeValue(raw);
      out += value || part.fallback || '';
    }
  }
  return out;
}

export function renderReply(
  templates: ReplyTemplates,
  values: ReplyValues,
  format: 'text' | 'html',
): { reply: string; template: string } {
  const body = selectTemplate(templates, values.intent, values.team);
  const paragraphs = [renderTemplate(templates.layout.greeting, values), renderTemplate(body, values)];
  if (values.ticketId !== undefined && sanitizeValue(values.ticketId)) {
    paragraphs.push(renderTemplate(templates.layout.reference, values));
  }
  paragraphs.push(renderTemplate(templates.layout.signoff, values));
  const reply =
    format === 'html'
      ? paragraphs.map((p) => `<p>${p.split('\n').map(escapeHtml).join('<br>')}</p>`).join('\n')
      : paragraphs.join('\n\n');
  return { reply, template: body.id };
}
