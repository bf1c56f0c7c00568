import { Gauge, type Registry } from 'prom-client';

/** What the checker needs of an agent: its name and its optional readiness probe. */
export interface HealthCheckedAgent {
  name: string;
  health?(): Promise<void>;
}

export interface AgentHealthOptions {
  agents: readonly HealthCheckedAgent[];
  registry: Registry;
  /** Time between two rounds of checks. @format ms */
  intervalMs: number;
  /** Longest one check may take; past it the agent counts as unhealthy. @format ms */
  timeoutMs: number;
  /** Told when an agent's health changes (and of the first failure). */
  onChange?: (agent: string, healthy: boolean, detail?: string) => void;
}

export interface AgentHealthChecker {
  /** Runs one round now (the timer runs them every `intervalMs`); resolves when every started check has settled or timed out. */
  checkNow(): Promise<void>;
  /** The last result per agent: true healthy, false not, undefined not checked yet. */
  state(): Record<string, boolean | undefined>;
  stop(): void;
}

class HealthCheckTimeout extends Error {
  override readonly name = 'HealthCheckTimeout';
  constructor(readonly timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
  }
}

/**
 * Runs each agent's `health()` periodically and exports the results as `agent_health{agent_name}` (1 healthy, 0 not)
 * and `agent_health_check_duration_seconds{agent_name}`. A check that hangs counts as failed once its timeout passes,
 * and no new check of that agent starts while it is still pending, so hung checks never pile up. Agents without a
 * `health()` have nothing to probe and report 1.
 */
export function startAgentHealthChecks(opts: AgentHealthOptions): AgentHealthChecker {
  const healthGauge = new Gauge({
    name: 'agent_health',
    help: "Result of the agent's last health check in this worker: 1 healthy, 0 failed or timed out.",
    labelNames: ['agent_name'] as const,
    registers: [opts.registry],
  });
  const durationGauge = new Gauge({
    name: 'agent_health_check_duration_seconds',
    help: "Time the agent's last health check took (the timeout when it did not answer).",
    labelNames: ['agent_name'] as const,
    registers: [opts.registry],
  });
  const results: Record<string, boolean | undefined> = {};
  const pending = new Map<string, Promise<void>>();

  const record = (name: string, healthy: boolean, seconds: number, detail?: string) => {
    healthGauge.set({ agent_name: name }, healthy ? 1 : 0);
    durationGauge.set({ agent_name: name }, seconds);
    if (results[name] !== healthy && (results[name] !== undefined || !healthy)) opts.onChange?.(name, healthy, detail);
    results[name] = healthy;
  };

  const checkOne = (agent: HealthCheckedAgent): Promise<void> => {
    if (!agent.health) {
      record(agent.name, true, 0);
      return Promise.resolve();
    }
    const start = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new HealthCheckTimeout(opts.timeoutMs)), opts.timeoutMs);
    });
    // The probe itself may outlive the timeout; it stays `pending` (blocking the next round for this agent) until
    // it settles, but the gauge turns 0 as soon as the timeout passes.
    // An agent whose health() throws at once (not async) counts as unhealthy, like one that rejects.
    const probe = Promise.resolve().then(() => agent.health!());
    probe.catch(() => undefined).finally(() => pending.delete(agent.name));
    pending.set(agent.name, probe.then(() => undefined, () => undefined));
    return Promise.race([probe, timeout]).then(
      () => record(agent.name, true, (performance.now() - start) / 1000),
      (err: unknown) => {
        const seconds = err instanceof HealthCheckTimeout ? opts.timeoutMs / 1000 : (performance.now() - start) / 1000;
        record(agent.name, false, seconds, err instanceof Error ? err.message : String(err));
      },
    ).finally(() => clearTimeout(timer));
  };

  const checkNow = async () => {
    await Promise.all(
      opts.agents.map((agent) => {
        if (pending.has(agent.name)) {
          // Still hanging from an earlier round: it already counts as failed; do not start another.
          record(agent.name, false, opts.timeoutMs / 1000, 'previous check still pending');
          return undefined;
        }
        return checkOne(agent);
      }),
    );
  };

  const timer = setInterval(() => void checkNow(), opts.intervalMs);
  timer.unref();
  return { checkNow, state: () => ({ ...results }), stop: () => clearInterval(timer) };
}
