import { z } from 'zod';
import type { AgentCatalog, AgentShape } from '../../../src/pipelines';

/**
 * The I/O shapes of the built-in agents that support-triage uses, written out here so the loader's tests do
 * not depend on the agents' implementations.
 */
export const FAKE_AGENTS: Record<string, AgentShape> = {
  'pii-redact': {
    input: z.object({ text: z.string() }),
    output: z.object({
      text: z.string(),
      findings: z.array(z.object({ kind: z.string(), start: z.number(), end: z.number() })),
      counts: z.record(z.string(), z.number()),
    }),
  },
  'intent-classifier': {
    input: z.object({ text: z.string() }),
    output: z.object({
      label: z.string(),
      confidence: z.number(),
      alternatives: z.array(z.object({ label: z.string(), confidence: z.number() })),
    }),
  },
  lookup: {
    input: z.object({ key: z.string(), table: z.record(z.string(), z.string()), default: z.string().optional() }),
    output: z.object({ value: z.string(), matched: z.boolean() }),
  },
  'template-reply': {
    input: z.object({
      intent: z.string(),
      team: z.string(),
      ticketId: z.string().optional(),
      customerName: z.string().optional(),
      format: z.enum(['text', 'html']).default('text'),
    }),
    output: z.object({ reply: z.string(), template: z.string() }),
  },
  llm: {
    input: z.object({
      system: z.string().optional(),
      prompt: z.string().optional(),
      messages: z.array(z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string() })).optional(),
      responseSchema: z.record(z.string(), z.unknown()).optional(),
      maxTokens: z.number().int().min(1).optional(),
      temperature: z.number().min(0).max(2).optional(),
      model: z.string().optional(),
    }),
    output: z.object({ text: z.string(), json: z.unknown().optional(), model: z.string(), finishReason: z.string(), usage: z.object({}).passthrough(), budget: z.object({}).passthrough() }),
  },
};

export function fakeAgentCatalog(agents: Record<string, AgentShape> = FAKE_AGENTS): AgentCatalog {
  return {
    get: (name) => (Object.prototype.hasOwnProperty.call(agents, name) ? agents[name] : undefined),
    names: () => Object.keys(agents),
  };
}
