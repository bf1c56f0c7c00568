import type { Client } from '@temporalio/client';
import { createTemporalObserver } from '../../src/telemetry/temporal-gauges';

/** A Temporal client whose describeTaskQueue answers only when the test says so, counting the calls. */
function slowTemporal() {
  const waiting: (() => void)[] = [];
  let calls = 0;
  const temporal = {
    workflowService: {
      describeTaskQueue: () => {
        calls++;
        return new Promise((resolve) => waiting.push(() => resolve({ pollers: [], stats: { approximateBacklogCount: 3 } })));
      },
    },
  } as unknown as Client;
  return {
    temporal,
    calls: () => calls,
    answerAll: () => waiting.splice(0).forEach((answer) => answer()),
  };
}

test('while Temporal is slow, callers share the call in flight instead of piling up more', async () => {
  let clock = 0;
  const t = slowTemporal();
  const observer = createTemporalObserver({ temporal: t.temporal, namespace: 'default', taskQueue: 'q', pipelines: () => [], pollerMaxAgeS: 60, taskQueueCacheMs: 2000, now: () => clock });
  const first = observer.taskQueues();
  clock += 10_000; // well past the cache's lifetime, while the first call still waits
  const second = observer.taskQueues();
  expect(second).toBe(first);
  expect(t.calls()).toBe(2); // one load: the workflow and the activity task queue

  t.answerAll();
  expect((await first).map((q) => q.backlog)).toEqual([3, 3]);
  // The answer is fresh from when it arrived: reused within the lifetime, reloaded after it.
  clock += 1000;
  await observer.taskQueues();
  expect(t.calls()).toBe(2);
  clock += 1500;
  const third = observer.taskQueues();
  expect(t.calls()).toBe(4);
  t.answerAll();
  await third;
});
