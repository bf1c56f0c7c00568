import { z } from 'zod';
import { AgentRejectedError, type Agent } from './agent-contract';

const inputSchema = z.object({
  key: z.string(),
  table: z.record(z.string(), z.string()),
  default: z.string().optional(),
});

const outputSchema = z.object({
  value: z.string(),
  /** False when the default was used. */
  matched: z.boolean(),
});

export type LookupAgent = Agent<typeof inputSchema, typeof outputSchema>;

export function createLookupAgent(): LookupAgent {
  return {
    name: 'lookup',
    version: '1.0.0',
    description: 'Maps a key to a value through a table (e.g. intent to team), with an optional default.',
    input: inputSchema,
    output: outputSchema,
    async run({ key, table, default: fallback }) {
      // Own keys only: "constructor" or "__proto__" must not resolve through the prototype chain.
      if (Object.hasOwn(table, key)) return { value: table[key], matched: true };
      if (fallback !== undefined) return { value: fallback, matched: false };
      throw new AgentRejectedError(`no entry for "${key}" and no default`, {
        key,
        tableSize: Object.keys(table).length,
      });
    },
  };
}
