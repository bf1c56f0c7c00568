import { Registry } from 'prom-client';
import { createSystemStatusSource, type SystemStatusSource } from '../../src/facade';
import { DEFAULT_STATUS_THRESHOLDS } from '../../src/facade/system-status';
import { createHttpMetrics, type TemporalObserver } from '../../src/telemetry';

const queues = async () => [
  { taskQueue: 'q', taskType: 'workflow' as const, backlog: 0, backlogAgeSeconds: 0, pollers: 1 },
  { taskQueue: 'q', taskType: 'activity' as const, backlog: 0, backlogAgeSeconds: 0, pollers: 1 },
];

/**
 * The defaults with the process checks out of reach: the source measures the process it runs in (here the test
 * runner, whose CPU and memory say nothing about what is tested).
 */
const thresholds = {
  ...DEFAULT_STATUS_THRESHOLDS,
  cpuCores: { warning: Number.MAX_SAFE_INTEGER, critical: Number.MAX_SAFE_INTEGER },
  memoryBytes: { warning: Number.MAX_SAFE_INTEGER, critical: Number.MAX_SAFE_INTEGER },
};

describe('system status source', () => {
  let source: SystemStatusSource | undefined;
  afterEach(() => source?.stop());

  test('counts 5xx answers of API routes only, from the registry', async () => {
    const registry = new Registry();
    const http = createHttpMetrics(registry);
    const observer: TemporalObserver = { taskQueue: 'q', taskQueues: queues, approvals: async () => [], runTimes: async () => [] };
    source = createSystemStatusSource({ registry, observer, thresholds });
    http.requests.inc({ method: 'GET', route: '/v1/runs/:pipeline/:id', status: '200' }, 27);
    http.requests.inc({ method: 'POST', route: '/v1/pipelines/:pipeline/runs', status: '503' }, 3);
    // Probes failing (a dependency down) are not API errors.
    http.requests.inc({ method: 'GET', route: '/ready', status: '503' }, 100);
    const status = await source.read();
    expect(status.issues).toEqual([
      expect.objectContaining({ id: 'http-error-rate', severity: 'critical', value: 0.1, threshold: DEFAULT_STATUS_THRESHOLDS.httpErrorRatio.critical }),
    ]);
    expect(status.issues[0].summary).toMatch(/^3 of 30 API requests in the last /);
    expect(status.thresholds).toBe(thresholds);
  });

  test('an unreadable Temporal becomes an issue, and the checks that need it are skipped', async () => {
    const registry = new Registry();
    const down = async () => {
      throw new Error('14 UNAVAILABLE: connection refused\nmore detail');
    };
    source = createSystemStatusSource({ registry, observer: { taskQueue: 'q', taskQueues: down, approvals: down, runTimes: async () => [] }, thresholds });
    const status = await source.read();
    expect(status.status).toBe('critical');
    expect(status.issues.map((i) => [i.id, i.summary])).toEqual([
      ['source-unavailable:Temporal task queue', 'Temporal task queue could not be read: 14 UNAVAILABLE: connection refused'],
      ['source-unavailable:Temporal visibility', 'Temporal visibility could not be read: 14 UNAVAILABLE: connection refused'],
    ]);
  });
});
