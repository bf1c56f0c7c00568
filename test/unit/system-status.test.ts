import {
  DEFAULT_STATUS_THRESHOLDS,
  MIN_REQUESTS_FOR_ERROR_RATIO,
  MIN_RUNS_FOR_P95,
  evaluateStatus,
  percentile,
  type StatusThresholds,
} from '../../src/facade/system-status';
import { loadConfig } from '../../src/config';

const t: StatusThresholds = DEFAULT_STATUS_THRESHOLDS;
const MiB = 1024 * 1024;

describe('percentile', () => {
  test('takes the nearest rank', () => {
    expect(percentile([], 0.95)).toBeUndefined();
    expect(percentile([7], 0.95)).toBe(7);
    const hundred = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(percentile(hundred, 0.95)).toBe(95);
    expect(percentile(hundred, 0.5)).toBe(50);
    expect(percentile([1, 2, 3, 4, 1000], 0.95)).toBe(1000);
  });
});

describe('evaluateStatus', () => {
  test('reports ok with no issues when every value is under its level', () => {
    const status = evaluateStatus(
      {
        cpuCores: 0.2,
        memoryBytes: 200 * MiB,
        http: { requests: 1000, serverErrors: 1, windowSeconds: 300 },
        runTimes: [{ pipeline: 'support-triage', durations: [1, 2, 3, 4, 5, 6] }],
        taskQueues: [
          { taskQueue: 'q', taskType: 'workflow', backlog: 3, pollers: 2 },
          { taskQueue: 'q', taskType: 'activity', backlog: 0, pollers: 2 },
        ],
        approvals: [{ pipeline: 'support-triage', waiting: 2, oldestSeconds: 600 }],
      },
      t,
    );
    expect(status).toEqual({ status: 'ok', issues: [] });
  });

  test('raises a warning past the warning level and a critical past the critical level, strictly', () => {
    expect(evaluateStatus({ memoryBytes: t.memoryBytes.warning }, t).issues).toEqual([]);
    const warning = evaluateStatus({ memoryBytes: t.memoryBytes.warning + 1 }, t);
    expect(warning.status).toBe('warning');
    expect(warning.issues).toEqual([
      expect.objectContaining({ id: 'memory', severity: 'warning', value: t.memoryBytes.warning + 1, threshold: t.memoryBytes.warning }),
    ]);
    const critical = evaluateStatus({ memoryBytes: 2000 * MiB }, t);
    expect(critical.issues[0]).toMatchObject({ id: 'memory', severity: 'critical', threshold: t.memoryBytes.critical });
    expect(critical.issues[0].summary).toContain('2000 MiB');
    expect(critical.issues[0].recommendation).toMatch(/memory limit/);
  });

  test('judges CPU in cores', () => {
    expect(evaluateStatus({ cpuCores: 0.9 }, t).issues[0]).toMatchObject({ id: 'cpu', severity: 'warning', value: 0.9, threshold: 0.8 });
    expect(evaluateStatus({ cpuCores: 1.5 }, t).issues[0]).toMatchObject({ id: 'cpu', severity: 'critical', threshold: 0.95 });
  });

  test('judges the HTTP error ratio only with enough requests in the window', () => {
    const few = MIN_REQUESTS_FOR_ERROR_RATIO - 1;
    expect(evaluateStatus({ http: { requests: few, serverErrors: few, windowSeconds: 300 } }, t).issues).toEqual([]);
    const status = evaluateStatus({ http: { requests: 200, serverErrors: 4, windowSeconds: 300 } }, t);
    expect(status.issues).toEqual([expect.objectContaining({ id: 'http-error-rate', severity: 'warning', value: 0.02, threshold: 0.01 })]);
    expect(status.issues[0].summary).toBe('4 of 200 API requests in the last 5 min were answered with a 5xx (threshold 1%)');
    expect(evaluateStatus({ http: { requests: 200, serverErrors: 20, windowSeconds: 300 } }, t).issues[0].severity).toBe('critical');
  });

  test('judges the p95 run time per pipeline, once it has enough runs', () => {
    const slow = Array.from({ length: 20 }, (_, i) => (i < 18 ? 60 : 2000));
    const status = evaluateStatus(
      {
        runTimes: [
          { pipeline: 'support-triage', durations: slow },
          { pipeline: 'tiny', durations: Array.from({ length: MIN_RUNS_FOR_P95 - 1 }, () => 99_999) },
        ],
      },
      t,
    );
    expect(status.issues).toEqual([expect.objectContaining({ id: 'run-time-p95:support-triage', severity: 'warning', value: 2000, threshold: 900 })]);
    expect(status.issues[0].summary).toContain('over 20 completed runs');
  });

  test('reports a task queue without pollers as critical and a backlog by its level', () => {
    const status = evaluateStatus(
      {
        taskQueues: [
          { taskQueue: 'agentry-agents', taskType: 'workflow', backlog: 150, pollers: 1 },
          { taskQueue: 'agentry-agents', taskType: 'activity', backlog: 5000, pollers: 0 },
        ],
      },
      t,
    );
    expect(status.status).toBe('critical');
    expect(status.issues.map((i) => [i.id, i.severity])).toEqual([
      ['task-queue-backlog:agentry-agents:activity', 'critical'],
      ['workers:agentry-agents:activity', 'critical'],
      ['task-queue-backlog:agentry-agents:workflow', 'warning'],
    ]);
    expect(status.issues[1]).toMatchObject({ value: 0, threshold: 1 });
  });

  test('reports the approval backlog per pipeline and ignores pipelines with nothing waiting', () => {
    const status = evaluateStatus(
      {
        approvals: [
          { pipeline: 'support-triage', waiting: 3, oldestSeconds: 5 * 3600 },
          { pipeline: 'idle', waiting: 0, oldestSeconds: 0 },
        ],
      },
      { ...t, approvalAgeSeconds: { warning: 4 * 3600, critical: 24 * 3600 } },
    );
    expect(status.issues).toEqual([
      {
        id: 'approval-backlog:support-triage',
        severity: 'warning',
        summary: '3 run(s) of support-triage wait for an approval, the oldest for 5 h (threshold 4 h)',
        value: 18_000,
        threshold: 14_400,
        recommendation: expect.stringContaining('approvers of support-triage'),
      },
    ]);
    // A zero level flags any wait at all, but still not a pipeline with nothing waiting.
    expect(evaluateStatus({ approvals: [{ pipeline: 'idle', waiting: 0, oldestSeconds: 0 }] }, { ...t, approvalAgeSeconds: { warning: 0, critical: 10 } }).issues).toEqual([]);
  });

  test('turns an unreadable source into a critical issue without a value', () => {
    const status = evaluateStatus({ unavailable: [{ source: 'Temporal visibility', detail: 'connection refused' }], cpuCores: 0.1 }, t);
    expect(status.issues).toEqual([
      expect.objectContaining({ id: 'source-unavailable:Temporal visibility', severity: 'critical', value: null, threshold: null }),
    ]);
  });

  test('lists the worst issues first', () => {
    const status = evaluateStatus({ cpuCores: 0.9, memoryBytes: 2000 * MiB, approvals: [{ pipeline: 'p', waiting: 1, oldestSeconds: 100_000 }] }, t);
    expect(status.issues.map((i) => `${i.severity}:${i.id}`)).toEqual(['critical:approval-backlog:p', 'critical:memory', 'warning:cpu']);
  });
});

describe('STATUS_THRESHOLDS', () => {
  test('overrides single levels and keeps the other defaults', () => {
    const config = loadConfig({ STATUS_THRESHOLDS: '{"approvalAgeSeconds": {"warning": 60}, "cpuCores": {"critical": 3}}' });
    expect(config.STATUS_THRESHOLDS.approvalAgeSeconds).toEqual({ warning: 60, critical: 86_400 });
    expect(config.STATUS_THRESHOLDS.cpuCores).toEqual({ warning: 0.8, critical: 3 });
    expect(config.STATUS_THRESHOLDS.memoryBytes).toEqual(DEFAULT_STATUS_THRESHOLDS.memoryBytes);
    expect(loadConfig({}).STATUS_THRESHOLDS).toEqual(DEFAULT_STATUS_THRESHOLDS);
  });

  test('refuses unknown keys, bad JSON and negative levels, naming the key', () => {
    expect(() => loadConfig({ STATUS_THRESHOLDS: '{"diskBytes": {"warning": 1}}' })).toThrow(/STATUS_THRESHOLDS: expected an object with some of the keys cpuCores/);
    expect(() => loadConfig({ STATUS_THRESHOLDS: '{approvalAgeSeconds: 1}' })).toThrow(/STATUS_THRESHOLDS: expected JSON/);
    expect(() => loadConfig({ STATUS_THRESHOLDS: '{"cpuCores": {"warning": -1}}' })).toThrow(/STATUS_THRESHOLDS/);
  });

  test('refuses a warning level above the critical one, after merging with the defaults', () => {
    expect(() => loadConfig({ STATUS_THRESHOLDS: '{"approvalAgeSeconds": {"warning": 90000}}' })).toThrow(
      /STATUS_THRESHOLDS.*approvalAgeSeconds: warning \(90000\) is above critical \(86400\)/,
    );
    expect(loadConfig({ STATUS_THRESHOLDS: '{"approvalAgeSeconds": {"warning": 90000, "critical": 90000}}' }).STATUS_THRESHOLDS.approvalAgeSeconds).toEqual({ warning: 90000, critical: 90000 });
  });

  test('WORKER_SDK_METRICS_PORT takes a port or off', () => {
    expect(loadConfig({}).WORKER_SDK_METRICS_PORT).toBe(9465);
    expect(loadConfig({ WORKER_SDK_METRICS_PORT: 'off' }).WORKER_SDK_METRICS_PORT).toBe('off');
    expect(loadConfig({ WORKER_SDK_METRICS_PORT: '19465' }).WORKER_SDK_METRICS_PORT).toBe(19_465);
    expect(() => loadConfig({ WORKER_SDK_METRICS_PORT: 'none' })).toThrow(/WORKER_SDK_METRICS_PORT: expected a port from 1 to 65535, or off/);
  });
});
