import type { z } from 'zod';
import type { Agent, AgentContext } from './agent-contract';
import {
  AgentInputError,
  AgentOutputError,
  DuplicateAgentError,
  UnknownAgentError,
  type AgentIssue,
} from './agent-errors';
import { createIntentClassifierAgent } from './intent-classifier.agent';
import { createLookupAgent } from './lookup.agent';
import { createLlmAgent, type LlmAgentOptions } from './llm';
import { createPiiRedactAgent } from './pii-redact.agent';
import { createTemplateReplyAgent } from './template-reply.agent';

export interface AgentRegistry {
  get(name: string): Agent | undefined;
  /** Agents in registration order. */
  list(): Agent[];
  /** Validates the input, runs the agent, validates its output; returns the parsed output. */
  invoke(name: string, rawInput: unknown, ctx: AgentContext): Promise<unknown>;
}

export function createAgentRegistry(agents: readonly Agent[]): AgentRegistry {
  const byName = new Map<string, Agent>();
  for (const agent of agents) {
    if (byName.has(agent.name)) throw new DuplicateAgentError(agent.name);
    byName.set(agent.name, agent);
  }
  return {
    get: (name) => byName.get(name),
    list: () => [...byName.values()],
    async invoke(name, rawInput, ctx) {
      const agent = byName.get(name);
      if (!agent) throw new UnknownAgentError(name, [...byName.keys()]);
      const input = await agent.input.safeParseAsync(rawInput);
      if (!input.success) throw new AgentInputError(name, toIssues(input.error));
      const rawOutput = await agent.run(input.data, ctx);
      const output = await agent.output.safeParseAsync(rawOutput);
      if (!output.success) throw new AgentOutputError(name, toIssues(output.error));
      return output.data;
    },
  };
}

/** `a.b[0].c: message`, which reads better in a run's failure than zod's raw issue objects. */
export function toIssues(error: z.ZodError): AgentIssue[] {
  return error.issues.map((issue) => ({
    path: issue.path.reduce<string>(
      (acc, key) =>
        typeof key === 'number' ? `${acc}[${key}]` : acc ? `${acc}.${String(key)}` : String(key),
      '',
    ),
    message: issue.message,
  }));
}

export interface BuiltinAgentOptions {
  /** Labelled CSV (`text,category`) the intent classifier trains on. */
  trainFile: string;
  /** Directory for the intent classifier's cached models. */
  cacheDir: string;
  /**
   * Provider, budgets and usage store of the `llm` agent.
   * @default the embedded local model (started on first use), default budgets, usage counted in process
   */
  llm?: LlmAgentOptions;
}

/** The agents this project ships: pii-redact, intent-classifier, template-reply, lookup, llm. */
export function createBuiltinAgents(opts: BuiltinAgentOptions): Agent[] {
  return [
    createPiiRedactAgent(),
    createIntentClassifierAgent({ trainFile: opts.trainFile, cacheDir: opts.cacheDir }),
    createTemplateReplyAgent(),
    createLookupAgent(),
    createLlmAgent(opts.llm),
  ];
}
