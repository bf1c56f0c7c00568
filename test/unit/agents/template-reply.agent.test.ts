import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TemplateLoadError } from '../../../src/agents/agent-errors';
import { createTemplateReplyAgent, loadReplyTemplates } from '../../../src/agents/template-reply.agent';
import { fakeContext } from './fake-context';

const BANKING77_CATEGORIES = join(__dirname, '../../../../shared/data/banking77/categories.json');

describe('template-reply', () => {
  const agent = createTemplateReplyAgent();
  const run = (input: Record<string, unknown>) => agent.run(agent.input.parse(input), fakeContext());

  it('uses the intent template, with greeting, reference and sign-off', async () => {
    const out = await run({ intent: 'card_arrival', team: 'cards', ticketId: 'T-1042', customerName: 'Ana' });
    expect(out.template).toBe('intent:card_arrival');
    expect(out.reply).toMatch(/^Hi Ana,\n\nSorry your card has not reached you yet\./);
    expect(out.reply).toContain('Your reference for this conversation is T-1042;');
    expect(out.reply).toMatch(/Kind regards,\nThe cards team$/);
  });

  it('falls back to the team template, then to the default', async () => {
    expect((await run({ intent: 'something_new', team: 'payments' })).template).toBe('team:payments');
    const generic = await run({ intent: 'something_new', team: 'night shift' });
    expect(generic.template).toBe('default');
    expect(generic.reply).toContain('reached our night shift team');
  });

  it('uses fallbacks for missing optional values and leaves out the reference line', async () => {
    const out = await run({ intent: 'age_limit', team: 'account' });
    expect(out.reply.startsWith('Hi there,')).toBe(true);
    expect(out.reply).not.toContain('reference');
  });

  it('never reads a value as template syntax', async () => {
    const out = await run({ intent: 'age_limit', team: '{{intent}}', customerName: '{{ticketId}} {{team|x}}' });
    expect(out.reply).toContain('Hi {{ticketId}} {{team|x}},');
    expect(out.reply).toContain('The {{intent}} team');
  });

  it('escapes HTML in values, so an injection attempt stays text', async () => {
    const out = await run({
      intent: 'card_arrival',
      team: 'cards',
      customerName: '<script>alert("x")</script>',
      ticketId: '"><img src=x onerror=alert(1)>',
      format: 'html',
    });
    expect(out.reply).not.toMatch(/<script|<img/);
    expect(out.reply).toContain('Hi &#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62;,');
    expect(out.reply).toContain('&#34;&#62;&#60;img src=x onerror=alert(1)&#62;');
    expect(out.reply).toMatch(/^<p>Hi .*<\/p>\n<p>Sorry/);
    expect(out.reply).toContain('<p>Kind regards,<br>The cards team</p>');
  });

  it('strips control and bidi characters from values', async () => {
    const out = await run({ intent: 'age_limit', team: 'account', customerName: 'Ana\u0000\r\nBcc: x\u202Eevil\u0007' });
    expect(out.reply.split('\n')[0]).toBe('Hi Ana Bcc: x evil,');
  });

  it('treats a value that is blank after cleaning as missing', async () => {
    const out = await run({ intent: 'age_limit', team: 'account', customerName: '\u0000 \t', ticketId: '\u0001' });
    expect(out.reply.startsWith('Hi there,')).toBe(true);
    expect(out.reply).not.toContain('reference');
  });

  it('defaults to plain text and rejects unknown formats', () => {
    expect(agent.input.parse({ intent: 'a', team: 'b' }).format).toBe('text');
    expect(agent.input.safeParse({ intent: 'a', team: 'b', format: 'markdown' }).success).toBe(false);
  });

  it('files every intent under exactly one team', () => {
    const templates = loadReplyTemplates();
    expect(templates.byIntent.size).toBe(templates.teamOfIntent.size);
    expect(new Set(templates.teamOfIntent.values())).toEqual(new Set(templates.byTeam.keys()));
  });

  (existsSync(BANKING77_CATEGORIES) ? it : it.skip)('has a template for every banking77 intent', () => {
    const categories: string[] = JSON.parse(readFileSync(BANKING77_CATEGORIES, 'utf8'));
    const templates = loadReplyTemplates();
    expect(categories.filter((c) => !templates.byIntent.has(c))).toEqual([]);
  });

  describe('loading', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'agentry-templates-'));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });
    const yamlWith = (body: string) => `
layout:
  greeting: "Hi {{customerName|there}},"
  reference: "Ref {{ticketId}}"
  signoff: "The {{team}} team"
default: "Thanks."
teams:
  cards:
    fallback: "Cards."
    intents:
      card_arrival: "${body}"
`;
    const load = async (body: string) => {
      const file = join(dir, `t-${Math.random().toString(36).slice(2)}.yaml`);
      await writeFile(file, yamlWith(body));
      return () => createTemplateReplyAgent({ templatesFile: file });
    };

    it('refuses an unknown placeholder, naming file and template', async () => {
      const create = await load('Hello {{accountNumber}}');
      expect(create).toThrow(TemplateLoadError);
      expect(create).toThrow(/t-.*\.yaml \(template "intent:card_arrival"\): unknown placeholder \{\{accountNumber\}\}/);
    });

    it('refuses an optional placeholder without a fallback', async () => {
      expect(await load('About {{ticketId}}')).toThrow('needs a fallback');
    });

    it('refuses a malformed placeholder', async () => {
      expect(await load('Hello {{team')).toThrow('malformed placeholder');
    });

    it('accepts a well-formed file', async () => {
      expect(await load('Hello from {{team}} about {{intent}}')).not.toThrow();
    });

    it('refuses a file of the wrong shape', async () => {
      const file = join(dir, 'shape.yaml');
      await writeFile(file, 'layout: {}\n');
      expect(() => createTemplateReplyAgent({ templatesFile: file })).toThrow(/layout\.greeting/);
    });
  });
});
