/**
 * Screens text bound for an agent for prompt-injection attempts: instructions aimed at the model rather than at
 * the support team. Pattern-based and deliberately explainable: each finding names the rule that fired and where.
 * It is a tripwire that flags or blocks under the pipeline's policy, not a guarantee.
 */
export interface InjectionRule {
  id: string;
  description: string;
  pattern: RegExp;
}

export const INJECTION_RULES: readonly InjectionRule[] = [
  {
    id: 'override-instructions',
    description: 'asks to ignore, forget or override earlier instructions',
    pattern: /\b(ignore|disregard|forget|override|bypass)\b[^.\n]{0,40}\b(previous|prior|above|earlier|all|any|your|the|system)\b[^.\n]{0,30}\b(instructions?|prompts?|rules|directions|guidelines|context)\b/i,
  },
  {
    id: 'reveal-prompt',
    description: 'asks the model to reveal its system prompt or hidden instructions',
    pattern: /\b(reveal|show|print|repeat|output|leak|tell me)\b[^.\n]{0,40}\b(system prompt|hidden (instructions?|prompt)|initial (instructions?|prompt)|your (instructions|prompt|rules))\b/i,
  },
  {
    id: 'role-hijack',
    description: 'tries to give the model a new identity or mode',
    pattern: /\b(you are now|from now on,? you|pretend (to be|you are)|act as (an? )?(unrestricted|unfiltered|jailbroken|different)|developer mode|\bDAN\b mode|jailbreak)/i,
  },
  {
    id: 'fake-delimiters',
    description: 'imitates chat-format markers or system messages',
    pattern: /(<\|?\/?(system|im_start|im_end|assistant|user)\|?>|\[\/?(INST|SYS)\]|^\s*(system|assistant)\s*:)/im,
  },
  {
    id: 'tool-abuse',
    description: 'tries to make the agent call tools, run code or send data elsewhere',
    pattern: /\b(execute|run|call|invoke)\b[^.\n]{0,30}\b(shell|command|curl|wget|tool|function|script)\b|\b(send|post|upload|exfiltrate)\b[^.\n]{0,40}\b(to|at)\s+(https?:\/\/|[\w.-]+@)/i,
  },
];

export interface InjectionFinding {
  rule: string;
  /** Path of the string inside the screened value, as a JSON pointer. */
  path: string;
  /** Offset of the match in that string. */
  index: number;
}

/** Every string inside `value` (depth-first, JSON pointer paths), capped so hostile input cannot blow up work. */
function* strings(value: unknown, path = '', depth = 0): Generator<[string, string]> {
  if (depth > 20) return;
  if (typeof value === 'string') yield [path, value];
  else if (Array.isArray(value)) for (let i = 0; i < value.length; i++) yield* strings(value[i], `${path}/${i}`, depth + 1);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) yield* strings(v, `${path}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`, depth + 1);
  }
}

export function screenForInjection(value: unknown, rules: readonly InjectionRule[] = INJECTION_RULES): InjectionFinding[] {
  const findings: InjectionFinding[] = [];
  for (const [path, text] of strings(value)) {
    // Screen a bounded prefix: patterns are local, and a huge field must not cost unbounded regex time.
    const sample = text.length > 200_000 ? text.slice(0, 200_000) : text;
    for (const rule of rules) {
      const m = rule.pattern.exec(sample);
      if (m) findings.push({ rule: rule.id, path, index: m.index });
    }
  }
  return findings;
}
