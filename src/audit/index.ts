export { createAuditStore, type AuditStore, type StoredAuditEvent, type VerifyResult, type AppendResult } from './audit-store';
export { chainHash, contentHash, GENESIS_HASH } from './audit-chain';
export { migrate } from './migrate';
