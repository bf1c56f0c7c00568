export { loadConfig, requireKeys, requirePayloadKeys, ConfigError, JWT_ALGORITHMS, type Config, type JwtAlgorithm } from './config';
