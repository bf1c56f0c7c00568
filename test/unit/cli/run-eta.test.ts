import { RunEta } from '../../../src/cli/run-eta';

const T0 = 1_000_000;
const s = (n: number) => T0 + n * 1000;

test('estimates nothing until the first run ends, rather than 0s', () => {
  const eta = new RunEta(10, T0);
  expect(eta.text(T0)).toBe('estimating…');
  expect(eta.text(s(30))).toBe('estimating…');
});

test('projects from the pace so far and counts down between finishes', () => {
  const eta = new RunEta(10, T0);
  eta.finished(s(10));
  eta.finished(s(20));
  // 10 s per run, 8 to go, from the last finish at 20 s: done at 100 s.
  expect(eta.text(s(20))).toBe('1m20s left');
  expect(eta.text(s(50))).toBe('50s left');
  expect(eta.text(s(99.5))).toBe('1s left');
});

test('says the estimate is exceeded instead of holding a stale small figure', () => {
  const eta = new RunEta(3, T0);
  eta.finished(s(5));
  eta.finished(s(10));
  expect(eta.text(s(12))).toBe('3s left');
  expect(eta.text(s(15))).toBe('taking 0s longer than estimated');
  expect(eta.text(s(75))).toBe('taking 1m00s longer than estimated');
});

test('a review the demo decides later sets a floor on the estimate until it is decided', () => {
  const eta = new RunEta(3, T0);
  eta.reviewWaiting('r1', s(60));
  expect(eta.text(s(1))).toBe('over 59s left (a review is waiting)');
  eta.finished(s(5));
  eta.finished(s(10));
  // The pace alone says 5 s more; the review is decided at 60 s.
  expect(eta.text(s(10))).toBe('over 50s left (a review is waiting)');
  expect(eta.text(s(40))).toBe('over 20s left (a review is waiting)');
  eta.reviewDecided('r1');
  expect(eta.text(s(40))).toBe('taking 25s longer than estimated');
});

test('a review whose run ended no longer counts, and a finished batch says so', () => {
  const eta = new RunEta(2, T0);
  eta.reviewWaiting('r1', s(100));
  eta.finished(s(10), 'r1');
  expect(eta.text(s(10))).toBe('10s left');
  eta.finished(s(20));
  expect(eta.text(s(20))).toBe('done');
});
