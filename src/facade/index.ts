export { createApp, type App, type AppDeps } from './app';
export { createAuthenticator, mintToken, ROLES, type Role } from './auth';
export { createRequestLimiter, type RequestLimiter } from './limiter';
export { AppError } from './errors';
