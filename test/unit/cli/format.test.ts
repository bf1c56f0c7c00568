import { count, formatDuration, noun } from '../../../src/cli/format';

test('counts take the singular for one and the plural otherwise', () => {
  expect(count(1, 'ticket')).toBe('1 ticket');
  expect(count(0, 'ticket')).toBe('0 tickets');
  expect(count(2, 'ticket')).toBe('2 tickets');
  expect(count(1, 'ticket problem')).toBe('1 ticket problem');
  expect(count(3, 'entry', 'entries')).toBe('3 entries');
  expect(count(1, 'entry', 'entries')).toBe('1 entry');
  expect(noun(1, 'ticket')).toBe('ticket');
  expect(noun(41, 'ticket')).toBe('tickets');
});

test('durations round up to whole seconds before splitting, so seconds never read 60', () => {
  expect(formatDuration(0)).toBe('0s');
  expect(formatDuration(1)).toBe('1s');
  expect(formatDuration(45_000)).toBe('45s');
  expect(formatDuration(59_500)).toBe('1m00s');
  expect(formatDuration(60_000)).toBe('1m00s');
  expect(formatDuration(65_000)).toBe('1m05s');
  // 23 min 59.7 s: the bar's own formatter printed this as 23m60s.
  expect(formatDuration(23 * 60_000 + 59_700)).toBe('24m00s');
  expect(formatDuration(23 * 60_000 + 58_000)).toBe('23m58s');
  expect(formatDuration(3_599_000)).toBe('59m59s');
  expect(formatDuration(3_600_000)).toBe('1h00m');
  expect(formatDuration(3_600_000 + 59 * 60_000 + 30_000)).toBe('2h00m');
  expect(formatDuration(3_600_000 + 2 * 60_000)).toBe('1h02m');
  expect(formatDuration(-5_000)).toBe('0s');
});

test('no duration up to two days prints 60 seconds or 60 minutes', () => {
  const wrong: string[] = [];
  for (let ms = 0; ms < 2 * 24 * 3_600_000; ms += ms < 3 * 3_600_000 ? 250 : 29_989) {
    const text = formatDuration(ms);
    if (/(^|\D)60[sm]/.test(text)) wrong.push(`${ms} ms: ${text}`);
  }
  expect(wrong).toEqual([]);
});
