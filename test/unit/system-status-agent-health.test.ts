import { Registry } from 'prom-client';
import { startAgentHealthChecks, type AgentHealthChecker, type HealthCheckedAgent } from '../../src/telemetry';

async function gauge(registry: Registry, name: string, agent: string): Promise<number | undefined> {
  const metric = registry.getSingleMetric(name);
  const values = metric ? (await metric.get()).values : [];
  return values.find((v) => v.labels.agent_name === agent)?.value;
}

describe('agent health checks', () => {
  let checker: AgentHealthChecker | undefined;
  afterEach(() => checker?.stop());

  test('exports 1 for a healthy agent, 0 for a failing one, and 1 for an agent without a probe', async () => {
    const registry = new Registry();
    const changes: string[] = [];
    let failing = true;
    const agents: HealthCheckedAgent[] = [
      { name: 'ok', health: async () => undefined },
      {
        name: 'flaky',
        health: async () => {
          if (failing) throw new Error('model not loaded');
        },
      },
      { name: 'plain' },
    ];
    checker = startAgentHealthChecks({ agents, registry, intervalMs: 3_600_000, timeoutMs: 1000, onChange: (a, h, d) => changes.push(`${a}:${h}:${d ?? ''}`) });
    await checker.checkNow();
    expect(await gauge(registry, 'agent_health', 'ok')).toBe(1);
    expect(await gauge(registry, 'agent_health', 'flaky')).toBe(0);
    expect(await gauge(registry, 'agent_health', 'plain')).toBe(1);
    expect(checker.state()).toEqual({ ok: true, flaky: false, plain: true });

    failing = false;
    await checker.checkNow();
    expect(await gauge(registry, 'agent_health', 'flaky')).toBe(1);
    // The first failure and the recovery are told; a first success is not news.
    expect(changes).toEqual(['flaky:false:model not loaded', 'flaky:true:']);
  });

  test('a hung check times out, counts as failed, and is not started again while it hangs', async () => {
    const registry = new Registry();
    let calls = 0;
    let release: () => void = () => undefined;
    const hung: HealthCheckedAgent = {
      name: 'hung',
      health: () => {
        calls += 1;
        return new Promise<void>((resolve) => (release = resolve));
      },
    };
    checker = startAgentHealthChecks({ agents: [hung], registry, intervalMs: 3_600_000, timeoutMs: 50 });
    await checker.checkNow();
    expect(await gauge(registry, 'agent_health', 'hung')).toBe(0);
    expect(await gauge(registry, 'agent_health_check_duration_seconds', 'hung')).toBe(0.05);

    // Two more rounds while the first probe still hangs: no new probe starts, the gauge stays 0.
    await checker.checkNow();
    await checker.checkNow();
    expect(calls).toBe(1);
    expect(await gauge(registry, 'agent_health', 'hung')).toBe(0);

    // Once it settles, the next round probes again (and this time answers at once).
    release();
    await new Promise((r) => setImmediate(r));
    hung.health = async () => {
      calls += 1;
    };
    await checker.checkNow();
    expect(calls).toBe(2);
    expect(await gauge(registry, 'agent_health', 'hung')).toBe(1);
  });

  test('runs rounds on its interval', async () => {
    const registry = new Registry();
    let calls = 0;
    checker = startAgentHealthChecks({ agents: [{ name: 'a', health: async () => void (calls += 1) }], registry, intervalMs: 20, timeoutMs: 1000 });
    const deadline = Date.now() + 5000;
    while (calls < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(calls).toBeGreaterThanOrEqual(3);
    expect(await gauge(registry, 'agent_health', 'a')).toBe(1);
  });
});
