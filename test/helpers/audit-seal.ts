import { createHash } from 'node:crypto';
import { sealContext, unsealFields, type StoredAuditEvent } from '../../src/audit';
import { parseKeyRing } from '../../src/codec';

/**
 * The audit seal keys the tests use, in AUDIT_SEAL_KEYS format: for in-process stores and for the facade and worker
 * processes the e2e tests spawn. Derived from a fixed label so every test file agrees on it.
 */
export const TEST_AUDIT_SEAL_KEYS = `seal-test-1:${createHash('sha256').update('agentry test audit seal key 1').digest('base64')}`;

export const testSealKeys = parseKeyRing(TEST_AUDIT_SEAL_KEYS);

/** The event with its sealed fields opened, for assertions on what was recorded. Throws if one does not open. */
export function unsealed(event: StoredAuditEvent): StoredAuditEvent {
  const opened = unsealFields(event.data, testSealKeys, sealContext(event));
  if (opened.failures.length) throw opened.failures[0];
  return { ...event, data: opened.data };
}
