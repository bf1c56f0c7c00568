import { z } from 'zod';
import type { Agent } from '../../src/agents';

/** Fails the first `failures` attempts of each stage with a transient error, then echoes. */
export function flakyAgent(failures: number): Agent {
  return {
    name: 'flaky',
    version: '1',
    description: 'fails transiently before succeeding',
    input: z.object({ text: z.string() }),
    output: z.object({ echoed: z.string(), attempt: z.number() }),
    async run(input, ctx) {
      if (ctx.attempt <= failures) throw new Error(`transient failure ${ctx.attempt}`);
      return { echoed: input.text, attempt: ctx.attempt };
    },
  };
}

/** Breaks its own output contract: a non-retryable failure. */
export const liarAgent: Agent = {
  name: 'liar',
  version: '1',
  description: 'returns output that does not match its schema',
  input: z.object({ text: z.string() }),
  output: z.object({ count: z.number() }),
  async run() {
    return { count: 'many' } as unknown as { count: number };
  },
};

/** Pipelines over the test agents, one per interpreter path worth covering. */
export const TEST_PIPELINES = {
  flaky: `
name: flaky-pipeline
version: 1
description: retries a transient failure
input: { type: object, required: [text], properties: { text: { type: string } } }
stages:
  - name: echo
    agent: flaky
    with: { text: "\${input.text}" }
    retry: { maximumAttempts: 3, initialInterval: 100ms }
`,
  liar: `
name: liar-pipeline
version: 1
description: contract violation
input: { type: object, properties: { text: { type: string } } }
stages:
  - name: lie
    agent: liar
    with: { text: "\${input.text}" }
    retry: { maximumAttempts: 5, initialInterval: 1s }
`,
  conditional: `
name: conditional
version: 1
description: skip on condition
input: { type: object, required: [text], properties: { text: { type: string }, urgent: { type: boolean } } }
stages:
  - name: first
    agent: flaky
    with: { text: "\${input.text}" }
    retry: { maximumAttempts: 3, initialInterval: 100ms }
  - name: urgent-only
    agent: pii-redact
    when: { ref: input.urgent, eq: true }
    with: { text: "\${input.text}" }
`,
};

/** What the sleeper agent saw: when each invocation stopped and why. Tests in the worker's process read it. */
export const sleeperLog: { stage: string; runId: string; stoppedAt: number; reason: 'done' | 'aborted' }[] = [];

/**
 * Works in a long loop (ticks of 100 ms, heartbeating), honouring the abort signal: the agent that proves a
 * cancelled run's work actually stops. With `deaf`, it ignores the signal, as a badly written agent would.
 */
export const sleeperAgent: Agent = {
  name: 'sleeper',
  version: '1',
  description: 'sleeps in a loop for `ms` milliseconds',
  input: z.object({ ms: z.number().int().min(0), deaf: z.boolean().optional() }),
  output: z.object({ slept: z.number() }),
  async run(input, ctx) {
    const started = Date.now();
    const ms = Number(input.ms);
    while (Date.now() - started < ms) {
      if (ctx.signal.aborted && input.deaf !== true) {
        sleeperLog.push({ stage: ctx.stage, runId: ctx.runId, stoppedAt: Date.now(), reason: 'aborted' });
        throw new Error('aborted');
      }
      ctx.heartbeat();
      await new Promise((r) => setTimeout(r, 100));
    }
    sleeperLog.push({ stage: ctx.stage, runId: ctx.runId, stoppedAt: Date.now(), reason: 'done' });
    return { slept: Date.now() - started };
  },
};

/** Produces `bytes` of text: an output far beyond Temporal's payload limit when asked. */
export const bigmouthAgent: Agent = {
  name: 'bigmouth',
  version: '1',
  description: 'writes a long text',
  input: z.object({ bytes: z.number().int().min(1) }),
  output: z.object({ text: z.string(), note: z.string() }),
  async run(input) {
    const line = 'All work and no play makes a long stage output. ';
    return { text: line.repeat(Math.ceil(Number(input.bytes) / line.length)).slice(0, Number(input.bytes)), note: 'small' };
  },
};

/** Measures the text it receives: proves the next stage got the whole value back from the claim. */
export const measureAgent: Agent = {
  name: 'measure',
  version: '1',
  description: 'counts characters',
  input: z.object({ text: z.string() }),
  output: z.object({ length: z.number(), head: z.string() }),
  async run(input) {
    const text = String(input.text);
    return { length: text.length, head: text.slice(0, 20) };
  },
};
