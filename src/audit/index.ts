export {
  createAuditStore,
  type AuditStore,
  type AuditStoreOptions,
  type AuditQuery,
  type AuditPage,
  type StoredAuditEvent,
  type VerifyResult,
  type BrokenLink,
  type TamperKind,
  type AppendResult,
} from './audit-store';
export { chainHash, contentHash, GENESIS_HASH } from './audit-chain';
export {
  sealFields,
  unsealFields,
  unsealValue,
  sealContext,
  isSealed,
  AuditSealError,
  SEALED_FIELDS,
  SEAL_ALGORITHM,
  type SealKeyRing,
  type SealedValue,
  type UnsealResult,
} from './audit-seal';
export { sealKeysFromConfig, loadOrCreateDevSealKeys, DEV_SEAL_KEY_FILE, type SealKeySetup } from './audit-seal-keys';
export { migrate } from './migrate';
