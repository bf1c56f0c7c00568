import { InvalidArgumentError } from 'commander';
import { nonNegativeInt, portNumber, portOrZero, positiveInt } from '../../../src/cli/options';

test('a port is a whole number from 1 to 65535', () => {
  expect(portNumber('1')).toBe(1);
  expect(portNumber('3000')).toBe(3000);
  expect(portNumber('65535')).toBe(65535);
  for (const bad of ['0', '65536', '99999', '-1', '3000.5', '1e3', '0x10', ' 80', '', 'http']) {
    expect(() => portNumber(bad)).toThrow(new InvalidArgumentError('expected a port from 1 to 65535'));
  }
});

test('a port or zero also takes 0, which picks a free port', () => {
  expect(portOrZero('0')).toBe(0);
  expect(portOrZero('65535')).toBe(65535);
  expect(() => portOrZero('65536')).toThrow(InvalidArgumentError);
  expect(() => portOrZero('-0')).toThrow(InvalidArgumentError);
});

test('counts are whole decimal numbers within range', () => {
  expect(positiveInt('8')).toBe(8);
  expect(() => positiveInt('0')).toThrow(new InvalidArgumentError('expected a whole number of 1 or more'));
  expect(nonNegativeInt('0')).toBe(0);
  expect(nonNegativeInt('60')).toBe(60);
  for (const bad of ['-1', '1.5', '1e2', '', ' 3', '99999999999999999999']) {
    expect(() => nonNegativeInt(bad)).toThrow(new InvalidArgumentError('expected a whole number of 0 or more'));
    expect(() => positiveInt(bad)).toThrow(InvalidArgumentError);
  }
});
