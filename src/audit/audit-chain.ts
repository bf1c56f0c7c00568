import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';

/** The hash that starts every tenant's chain. */
export const GENESIS_HASH = '0'.repeat(64);

export interface ChainedFields {
  id: string;
  tenant: string;
  chainIndex: number;
  runId: string;
  type: string;
  actor: string;
  pipeline: string | null;
  pipelineVersion: number | null;
  definitionHash: string | null;
  stage: string | null;
  data: unknown;
  /** ISO 8601 with milliseconds. */
  occurredAt: string;
}

/** sha256 over the previous hash and the RFC 8785 canonical JSON of the event: any change to either shows. */
export function chainHash(prevHash: string, fields: ChainedFields): string {
  const body = canonicalize({ ...fields, prevHash });
  return createHash('sha256').update(body ?? '').digest('hex');
}

/** sha256 of a value's canonical JSON: how inputs and outputs appear in the audit trail without their content. */
export function contentHash(value: unknown): string {
  return createHash('sha256').update(canonicalize(value ?? null) ?? '').digest('hex');
}
