export {
  loadLocalEngine,
  LocalEngineBusyError,
  LocalRuntimeUnavailableError,
  PromptTooLongError,
  type LocalChatMessage,
  type LocalChatRequest,
  type LocalChatResult,
  type LocalEngine,
  type LocalEngineOptions,
} from './local-engine';
export {
  LOCAL_MODEL_DIR,
  LOCAL_MODEL_NAME,
  LOCAL_MODEL_PACKAGE,
  LOCAL_MODEL_PACKAGE_VERSION,
  LocalModelUnavailableError,
  resolveLocalModel,
  type LocalModelOptions,
} from './local-model';
export { startLocalServer, type LocalServer, type LocalServerOptions } from './local-server';
export { spawnLocalServer, type LocalServerProcess, type LocalServerProcessOptions } from './local-server-process';
