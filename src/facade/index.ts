export { createApp, type App, type AppDeps } from './app';
export { createAuthenticator, mintToken, ROLES, type Role } from './auth';
export { loadVerificationKey, planVerification, type VerificationKey } from './verification-key';
export { createRequestLimiter, type RequestLimiter } from './limiter';
export { AppError } from './errors';
export { createLimitFailurePolicy, type LimitFailurePolicy, type LimitCheck } from './limit-failure';
export { createIntrusionGuard, type IntrusionGuard } from './intrusion-guard';
export { createRunAdmission, type RunAdmission, type RunSlotTicket } from './run-admission';
export { createSecurityEvents, SYSTEM_TENANT, type SecurityEvents } from './security-audit';
