import { checkBudgets, checkStructured, compileResponseSchema, extractJson, LlmBudgetExceededError, LlmRequestRejectedError, parseRetryAfter } from '../../../src/agents/llm';
import { ConfigError, loadConfig } from '../../../src/config';

describe('parseRetryAfter', () => {
  it('reads delta-seconds and HTTP dates, and ignores what it cannot read', () => {
    expect(parseRetryAfter('2')).toBe(2000);
    expect(parseRetryAfter('0.5')).toBe(500);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT'))).toBe(10_000);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});

describe('structured answers', () => {
  const validate = compileResponseSchema({ type: 'object', properties: { urgent: { type: 'boolean' } }, required: ['urgent'] });

  it('finds the JSON in a fenced block or among words', () => {
    expect(extractJson('```json\n{"a": 1}\n```')).toEqual({ a: 1 });
    expect(extractJson('Sure! {"a": [1, 2]} Hope that helps.')).toEqual({ a: [1, 2] });
    expect(() => extractJson('no json here')).toThrow();
  });

  it('says what is wrong, and that a cut-off answer was cut off', () => {
    expect(checkStructured('{"urgent": true}', 'stop', validate)).toEqual({ ok: true, value: { urgent: true } });
    expect(checkStructured('{"urgent": 1}', 'stop', validate)).toEqual({ ok: false, problems: '/urgent must be boolean' });
    const cut = checkStructured('{"urgent": tr', 'length', validate);
    expect(cut.ok).toBe(false);
    expect(!cut.ok && cut.problems).toMatch(/not valid JSON: .*cut off at the token limit/);
  });

  it('rejects a response schema that does not compile, for good', () => {
    expect(() => compileResponseSchema({ type: 'object', properties: { a: { type: 'strin' } } })).toThrow(LlmRequestRejectedError);
    expect(() => compileResponseSchema({ type: 'object', maxLenght: 3 })).toThrow(/responseSchema does not compile: .*maxLenght/);
  });
});

describe('budgets', () => {
  const limits = { runTokens: 100, tenantDayTokens: 1000, tenantDayCostUsd: 1 };
  const spent = { runTokens: 60, tenantDayTokens: 900, tenantDayCostUsd: 0.5 };

  it('allows a call whose worst case fits every budget exactly', () => {
    expect(() => checkBudgets(spent, { tokens: 40, costUsd: 0.5 }, limits)).not.toThrow();
  });

  it('names the first budget the worst case would break: run, then tenant tokens, then tenant cost', () => {
    expect(() => checkBudgets(spent, { tokens: 41, costUsd: 0 }, limits)).toThrow(
      new LlmBudgetExceededError('run-tokens', 100, 60, 41),
    );
    expect(() => checkBudgets({ ...spent, runTokens: 0 }, { tokens: 101, costUsd: 0 }, { ...limits, runTokens: 1000 })).toThrow(
      'LLM budget "tenant-day-tokens" exceeded: this tenant today (UTC) has used 900 of 1000 tokens, and this call may use up to 101 more',
    );
    expect(() => checkBudgets(spent, { tokens: 1, costUsd: 0.6 }, limits)).toThrow(/"tenant-day-cost" exceeded: .* 0.5 of 1 USD, .* up to 0.6 more/);
    expect(() => checkBudgets(spent, { tokens: 1, costUsd: 5 }, { runTokens: 100, tenantDayTokens: 1000 })).not.toThrow();
  });
});

describe('LLM configuration', () => {
  it('has defaults that run the embedded model within budgets', () => {
    const cfg = loadConfig({});
    expect(cfg.LLM_BASE_URL).toBeUndefined();
    expect(cfg).toMatchObject({ LLM_MODEL: 'SmolLM2-135M-Instruct', LLM_PRICES: {}, LLM_BUDGET_PER_RUN_TOKENS: 20_000, LLM_LOCAL_HOST: '127.0.0.1', LLM_LOCAL_THREADS: 1 });
  });

  it('parses the price table and a cost budget', () => {
    const cfg = loadConfig({ LLM_PRICES: '{"gpt-4o-mini": {"input": 0.00015, "output": 0.0006}}', LLM_BUDGET_PER_TENANT_DAY_COST: '2.50' });
    expect(cfg.LLM_PRICES).toEqual({ 'gpt-4o-mini': { input: 0.00015, output: 0.0006 } });
    expect(cfg.LLM_BUDGET_PER_TENANT_DAY_COST).toBe(2.5);
  });

  it('refuses bad values, naming the key', () => {
    for (const [key, value] of [
      ['LLM_PRICES', '{"m": {"input": -1, "output": 0}}'],
      ['LLM_PRICES', 'not json'],
      ['LLM_BASE_URL', 'ftp://example.com/v1'],
      ['LLM_LOCAL_HOST', '0.0.0.0'],
      ['LLM_BUDGET_PER_RUN_TOKENS', '1e6'],
    ]) {
      expect(() => loadConfig({ [key!]: value })).toThrow(ConfigError);
      expect(() => loadConfig({ [key!]: value })).toThrow(new RegExp(`${key}:`));
    }
  });
});
