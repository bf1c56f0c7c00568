export { loadConfig, requireKeys, requirePayloadKeys, ConfigError, JWT_ALGORITHMS, type Config, type JwtAlgorithm, type TrustProxy } from './config';
