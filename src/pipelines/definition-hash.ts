import { createHash } from 'node:crypto';
import type { PipelineDefinition } from './definition-schema';

/**
 * JSON with object keys sorted at every depth and `undefined`-valued keys left out, so two definitions that
 * differ only in key order (or in how a YAML author arranged them) serialise identically.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(canonicalise(value));
}

function canonicalise(value: unknown): unknown {
  if (Array.isArray(value)) return value.map((item) => (item === undefined ? null : canonicalise(item)));
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const item = (value as Record<string, unknown>)[key];
      if (item !== undefined) out[key] = canonicalise(item);
    }
    return out;
  }
  return value;
}

/**
 * sha256 (lower-case hex) of the parsed definition's canonical JSON. Hashing the parsed form means defaults and
 * duration spelling (`60s` versus `1m`) do not change the hash; only what the workflow would do differently does.
 */
export function definitionHash(definition: PipelineDefinition): string {
  return createHash('sha256').update(canonicalJson(definition), 'utf8').digest('hex');
}
