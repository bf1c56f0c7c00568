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

/**
 * The last event of a tenant's chain at some moment. Kept outside the database (a backup manifest, an `audit heads`
 * file), it proves the chain up to it unchanged later on: a truncation or a rewrite with recomputed hashes no longer
 * has this hash at this position.
 */
export interface ChainHead {
  /** Position of the last event, from 1. */
  chainIndex: number;
  /** Its hash, 64 lowercase hex characters. */
  hash: string;
}
