import { redactPii } from '../../../src/agents/pii-redact.agent';
import { draftedReplyLines } from '../../../src/cli/demo-command';

const draft = { text: ' We are sorry to hear that.\nWe will help. ', model: 'm', usage: { promptTokens: 10, completionTokens: 5, costUsd: 0, calls: 1 } };

test('a drafted reply shows the redacted ticket, never the PII the redact stage removed', () => {
  const original = 'My SSN is 536-22-8726 and card 4111 1111 1111 1111 was charged twice';
  const redact = redactPii(original);
  const lines = draftedReplyLines({ redact, draft });
  expect(lines).toEqual([`  ticket: ${redact.text}`, '  draft:  We are sorry to hear that. We will help.', '']);
  expect(lines.join('\n')).not.toMatch(/536-22-8726|4111/);
});

test('a long redacted ticket is cut to 90 characters, and a run without redacted text shows no ticket text', () => {
  const long = draftedReplyLines({ redact: { text: `${'word '.repeat(40)}<EMAIL_ADDRESS>` }, draft })[0];
  expect(long).toBe(`  ticket: ${'word '.repeat(40).slice(0, 87)}...`);
  expect(draftedReplyLines({ draft })[0]).toBe("  ticket: (no redacted text in the run's outputs)");
});
