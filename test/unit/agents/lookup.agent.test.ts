import { AgentRejectedError } from '../../../src/agents/agent-contract';
import { createLookupAgent } from '../../../src/agents/lookup.agent';
import { fakeContext } from './fake-context';

describe('lookup', () => {
  const agent = createLookupAgent();
  const table = { card_arrival: 'cards', cancel_transfer: 'transfers' };

  it('returns the matching value', async () => {
    await expect(agent.run({ key: 'cancel_transfer', table }, fakeContext())).resolves.toEqual({
      value: 'transfers',
      matched: true,
    });
  });

  it('falls back to the default when nothing matches', async () => {
    await expect(agent.run({ key: 'nope', table, default: 'general' }, fakeContext())).resolves.toEqual({
      value: 'general',
      matched: false,
    });
  });

  it('rejects (non-retryably) when nothing matches and there is no default', async () => {
    const run = agent.run({ key: 'nope', table }, fakeContext());
    await expect(run).rejects.toBeInstanceOf(AgentRejectedError);
    await expect(run).rejects.toMatchObject({ details: { key: 'nope', tableSize: 2 } });
  });

  it('does not resolve keys through the prototype chain', async () => {
    await expect(agent.run({ key: 'constructor', table, default: 'd' }, fakeContext())).resolves.toEqual({
      value: 'd',
      matched: false,
    });
  });
});
