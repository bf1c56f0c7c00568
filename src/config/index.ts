export { loadConfig, requireKeys, ConfigError, type Config } from './config';
