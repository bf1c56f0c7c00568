import type { AgentContext, AgentLogger } from '../../../src/agents/agent-contract';

export interface RecordingContext extends AgentContext {
  logs: Array<{ level: string; obj: object; msg?: string }>;
  heartbeats: unknown[];
}

/** A real AgentContext whose logger and heartbeat record what they receive. */
export function fakeContext(overrides: Partial<AgentContext> = {}): RecordingContext {
  const logs: RecordingContext['logs'] = [];
  const heartbeats: unknown[] = [];
  const record =
    (level: string) =>
    (obj: object, msg?: string): void => {
      logs.push({ level, obj, msg });
    };
  const logger: AgentLogger = { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') };
  return {
    signal: new AbortController().signal,
    heartbeat: (progress?: unknown) => heartbeats.push(progress),
    logger,
    idempotencyKey: 'test-run/stage/1',
    runId: 'test-run',
    stage: 'stage',
    attempt: 1,
    logs,
    heartbeats,
    ...overrides,
  };
}
