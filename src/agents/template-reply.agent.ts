import { z } from 'zod';
import type { Agent } from './agent-contract';
import { DEFAULT_TEMPLATES_FILE, loadReplyTemplates, renderReply } from './templates/reply-templates';

export { loadReplyTemplates, renderReply, type ReplyTemplates } from './templates/reply-templates';

const inputSchema = z.object({
  intent: z.string().min(1),
  team: z.string().min(1),
  ticketId: z.string().optional(),
  customerName: z.string().optional(),
  format: z.enum(['text', 'html']).default('text'),
});

const outputSchema = z.object({
  reply: z.string(),
  /** Which template was used: `intent:<intent>`, `team:<team>` or `default`. */
  template: z.string(),
});

export type TemplateReplyAgent = Agent<typeof inputSchema, typeof outputSchema>;

export interface TemplateReplyOptions {
  /** YAML template file. @default the bundled `templates/replies.yaml` */
  templatesFile?: string;
}

/** Loads and checks the templates now, so a broken file stops the worker at start-up rather than mid-run. */
export function createTemplateReplyAgent(options: TemplateReplyOptions = {}): TemplateReplyAgent {
  const templates = loadReplyTemplates(options.templatesFile ?? DEFAULT_TEMPLATES_FILE);
  return {
    name: 'template-reply',
    version: '1.0.0',
    description:
      'Drafts a customer reply from the template for the intent (falling back to the team, then a default), ' +
      'filling in team, ticket id and customer name as plain text or escaped HTML.',
    input: inputSchema,
    output: outputSchema,
    async run(input) {
      return renderReply(templates, input, input.format);
    },
  };
}
