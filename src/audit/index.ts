export {
  createAuditStore,
  readChainHeads,
  type AuditStore,
  type AuditStoreOptions,
  type AuditQuery,
  type AuditPage,
  type StoredAuditEvent,
  type VerifyResult,
  type BrokenLink,
  type TamperKind,
  type AppendResult,
  type AnchorCheck,
  type AnchorBreak,
  type AnchorBreakKind,
} from './audit-store';
export { chainHash, contentHash, GENESIS_HASH, type ChainHead } from './audit-chain';
export { readAnchor, parseAnchor, AnchorError, HEADS_FORMAT, type Anchor, type HeadsFile } from './audit-anchor';
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
