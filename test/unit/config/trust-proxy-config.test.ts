import { ConfigError, loadConfig } from '../../../src/config';

const trustOf = (value?: string) => loadConfig(value === undefined ? {} : { TRUST_PROXY: value }).TRUST_PROXY;

describe('TRUST_PROXY', () => {
  test('is off by default: the client address is the connection peer', () => {
    expect(trustOf()).toBe(false);
    expect(trustOf('off')).toBe(false);
    expect(trustOf('false')).toBe(false);
  });

  test('takes a hop count or a list of addresses, ranges and named ranges', () => {
    expect(trustOf('1')).toBe(1);
    expect(trustOf('loopback')).toEqual(['loopback']);
    expect(trustOf('10.0.0.0/8, 192.168.1.7 ,fd00::/8,uniquelocal')).toEqual(['10.0.0.0/8', '192.168.1.7', 'fd00::/8', 'uniquelocal']);
  });

  test.each([
    ['true', /trusting every hop/],
    ['*', /trusting every hop/],
    ['0', /hop count from 1 to 10/],
    ['11', /hop count from 1 to 10/],
    ['10.0.0.0/33', /"10.0.0.0\/33" is not an IP address/],
    ['10.0.0.0/8/8', /is not an IP address/],
    ['proxy.internal', /"proxy.internal" is not an IP address/],
    ['loopback,', /"" is not an IP address/],
  ])('refuses %s, naming the key', (value, message) => {
    let error: unknown;
    try {
      loadConfig({ TRUST_PROXY: value });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([{ key: 'TRUST_PROXY', message: expect.stringMatching(message) }]);
  });
});
