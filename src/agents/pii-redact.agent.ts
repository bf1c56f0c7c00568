import { z } from 'zod';
import type { Agent } from './agent-contract';
import { findPii, PII_TYPES, redactSpans, type PiiType } from './pii/detectors';

const inputSchema = z.object({ text: z.string() });

const outputSchema = z.object({
  /** The input with every finding replaced by `<TYPE>`. */
  text: z.string(),
  /** Offsets into the original text (UTF-16 code units, end exclusive), ordered by start. */
  findings: z.array(z.object({ type: z.enum(PII_TYPES), start: z.number().int(), end: z.number().int() })),
  /** Findings per type; every supported type is present, zero when absent, so consumers see a stable shape. */
  counts: z.record(z.string(), z.number().int().nonnegative()),
});

export type PiiRedactAgent = Agent<typeof inputSchema, typeof outputSchema>;

/** Pure redaction, shared by the agent and the evaluation. */
export function redactPii(text: string): z.infer<typeof outputSchema> {
  const findings = findPii(text);
  const counts = Object.fromEntries(PII_TYPES.map((type) => [type, 0])) as Record<PiiType, number>;
  for (const finding of findings) counts[finding.type]++;
  return { text: redactSpans(text, findings), findings, counts };
}

export function createPiiRedactAgent(): PiiRedactAgent {
  return {
    name: 'pii-redact',
    version: '1.0.0',
    description:
      'Replaces e-mail addresses, phone numbers, Luhn-valid card numbers, mod-97-valid IBANs, US SSNs and IP ' +
      'addresses with <TYPE> markers and reports where they were.',
    input: inputSchema,
    output: outputSchema,
    async run(input) {
      return redactPii(input.text);
    },
  };
}
