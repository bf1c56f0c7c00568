export { createInputChecker, type InputChecker, type InputProblem, type InputCheckResult } from './input-check';
export { screenForInjection, INJECTION_RULES, type InjectionFinding, type InjectionRule } from './injection-guard';
export { createLimitsRedis, type LimitsRedisOptions } from './redis-client';
export {
  createRunSlots,
  createMemoryRunSlots,
  runSlotKeys,
  RUN_SLOT_LEASE_MARGIN_MS,
  type RunSlots,
  type RunSlotsOptions,
  type SlotRequest,
  type SlotDecision,
} from './run-slots';
export {
  createIntrusionDetector,
  describeIdentity,
  intrusionKeys,
  type Identity,
  type IntrusionDetector,
  type IntrusionDetectorOptions,
} from './intrusion-detector';
