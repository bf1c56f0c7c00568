import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import {
  AgentInputError,
  AgentOutputError,
  createAgentRegistry,
  createBuiltinAgents,
  DuplicateAgentError,
  UnknownAgentError,
  type Agent,
} from '../../../src/agents';
import { fakeContext } from './fake-context';

/** An agent that returns whatever it is told to, to exercise output validation. */
function echoAgent(name = 'echo'): Agent {
  return {
    name,
    version: '0.0.1',
    description: 'returns input.reply as its output',
    input: z.object({ reply: z.unknown(), count: z.number().int().default(1) }),
    output: z.object({ value: z.string(), items: z.array(z.object({ n: z.number() })).optional() }),
    async run(input) {
      return input.reply as never;
    },
  };
}

describe('agent registry', () => {
  const registry = createAgentRegistry([echoAgent()]);

  it('runs a valid call and returns the parsed output', async () => {
    await expect(registry.invoke('echo', { reply: { value: 'ok' } }, fakeContext())).resolves.toEqual({ value: 'ok' });
  });

  it('rejects input that fails the schema, with readable issue paths', async () => {
    const call = registry.invoke('echo', { reply: {}, count: 'many' }, fakeContext());
    await expect(call).rejects.toBeInstanceOf(AgentInputError);
    await expect(call).rejects.toMatchObject({
      name: 'AgentInputError',
      agent: 'echo',
      issues: [{ path: 'count', message: expect.any(String) }],
      message: expect.stringMatching(/^invalid input for agent "echo": count: /),
    });
  });

  it('rejects output that fails the schema, with indexed paths', async () => {
    const call = registry.invoke('echo', { reply: { value: 'x', items: [{ n: 1 }, { n: 'two' }] } }, fakeContext());
    await expect(call).rejects.toBeInstanceOf(AgentOutputError);
    await expect(call).rejects.toMatchObject({ issues: [{ path: 'items[1].n' }] });
  });

  it('names the unknown agent and the known ones', async () => {
    const call = registry.invoke('nope', {}, fakeContext());
    await expect(call).rejects.toBeInstanceOf(UnknownAgentError);
    await expect(call).rejects.toThrow('unknown agent "nope" (known: echo)');
  });

  it('refuses two agents with one name', () => {
    expect(() => createAgentRegistry([echoAgent(), echoAgent()])).toThrow(DuplicateAgentError);
  });

  describe('with the built-in agents', () => {
    let cacheDir: string;
    beforeAll(async () => {
      cacheDir = await mkdtemp(join(tmpdir(), 'agentry-registry-'));
    });
    afterAll(async () => {
      await rm(cacheDir, { recursive: true, force: true });
    });

    it('lists all five and runs a small support-triage chain through invoke', async () => {
      const trainFile = join(__dirname, '../../../src/demo/train.csv');
      const builtins = createAgentRegistry(createBuiltinAgents({ trainFile, cacheDir }));
      expect(builtins.list().map((a) => a.name)).toEqual(['pii-redact', 'intent-classifier', 'template-reply', 'lookup', 'llm']);
      const ctx = fakeContext();

      const redacted = (await builtins.invoke('pii-redact', { text: 'Lost my card! Call +44 20 7946 0958' }, ctx)) as {
        text: string;
      };
      expect(redacted.text).toBe('Lost my card! Call <PHONE_NUMBER>');
      const intent = (await builtins.invoke('intent-classifier', { text: redacted.text }, ctx)) as { label: string };
      expect(intent.label).toBe('lost_or_stolen_card');
      const team = (await builtins.invoke('lookup', { key: intent.label, table: { lost_or_stolen_card: 'security' } }, ctx)) as {
        value: string;
      };
      const reply = (await builtins.invoke('template-reply', { intent: intent.label, team: team.value }, ctx)) as {
        template: string;
      };
      expect(reply.template).toBe('intent:lost_or_stolen_card');
    });

    it('applies schema defaults before the agent runs', async () => {
      const builtins = createAgentRegistry(createBuiltinAgents({ trainFile: 'unused.csv', cacheDir }));
      const reply = (await builtins.invoke('template-reply', { intent: 'x', team: 'y' }, fakeContext())) as { reply: string };
      expect(reply.reply).not.toContain('<p>');
    });
  });
});
