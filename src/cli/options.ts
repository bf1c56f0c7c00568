import { InvalidArgumentError } from 'commander';

/**
 * Parsers for numeric command-line options, for commander's `argParser`. They run while the command line is read,
 * before anything starts, and commander names the option in the error: `option '--port <n>' argument '99999' is
 * invalid. expected a port from 1 to 65535`.
 */

/** A whole number in decimal digits only: `1e3`, `0x10`, `5.0`, ` 5` and the empty string are refused. */
function wholeNumber(value: string): number | undefined {
  if (!/^\d+$/.test(value)) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}

export function nonNegativeInt(value: string): number {
  const n = wholeNumber(value);
  if (n === undefined) throw new InvalidArgumentError('expected a whole number of 0 or more');
  return n;
}

export function positiveInt(value: string): number {
  const n = wholeNumber(value);
  if (n === undefined || n < 1) throw new InvalidArgumentError('expected a whole number of 1 or more');
  return n;
}

/** A TCP port to listen on, 1 to 65535. */
export function portNumber(value: string): number {
  const n = wholeNumber(value);
  if (n === undefined || n < 1 || n > 65535) throw new InvalidArgumentError('expected a port from 1 to 65535');
  return n;
}

/** A TCP port to listen on, or 0 to let the system pick a free one. */
export function portOrZero(value: string): number {
  const n = wholeNumber(value);
  if (n === undefined || n > 65535) throw new InvalidArgumentError('expected a port from 0 to 65535 (0 picks a free one)');
  return n;
}
