import type { z } from 'zod';
import type { StageUsage } from '../contracts';

/** The logger an agent receives, already bound to its run and stage. */
export interface AgentLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface AgentContext {
  /** Aborted when the run is cancelled or the activity times out; long work must stop when it fires. */
  signal: AbortSignal;
  /** Report liveness (and optional progress); cancellation is only delivered to agents that heartbeat. */
  heartbeat(progress?: unknown): void;
  logger: AgentLogger;
  /** Stable across retries of the same stage of the same run: use it for side effects that must happen once. */
  idempotencyKey: string;
  runId: string;
  stage: string;
  /** 1 on the first try. */
  attempt: number;
}

/**
 * An agent: a named, versioned unit of work with zod schemas for what it takes and what it gives. The registry
 * validates both on every call, so `run` may trust its input.
 */
export interface Agent<I extends z.ZodObject = z.ZodObject, O extends z.ZodObject = z.ZodObject> {
  readonly name: string;
  readonly version: string;
  readonly description: string;
  readonly input: I;
  readonly output: O;
  run(input: z.infer<I>, ctx: AgentContext): Promise<z.infer<O>>;
  /** Optional readiness probe; rejects when the agent cannot serve. */
  health?(): Promise<void>;
  /** Metered resources one call used (model tokens and cost), read from its output for the run's spend and audit. */
  usage?(output: z.infer<O>): StageUsage | undefined;
}

/**
 * Thrown by an agent for a failure that retrying will not fix (bad data rather than a flaky dependency).
 * Mapped to the non-retryable `AgentRejected` failure type.
 */
export class AgentRejectedError extends Error {
  override readonly name = 'AgentRejectedError';
  constructor(message: string, readonly details?: Record<string, unknown>) {
    super(message);
  }
}
