import { describeThrown, embeddedPostgresError } from '../../../src/cli/dev-stack';

const where = { port: 54329, dataDir: '/srv/state/postgres' };

test.each([
  [undefined, 'postgres exited while starting and gave no reason'],
  [null, 'postgres exited while starting and gave no reason'],
  ['Postgres init script exited with code 1. Please check the logs.', 'Postgres init script exited with code 1. Please check the logs.'],
  ['  ', 'no reason given'],
  [new Error('spawn EACCES'), 'spawn EACCES'],
  [{ code: 'EADDRINUSE' }, "{ code: 'EADDRINUSE' }"],
])('describes a thrown %p as text', (thrown, text) => {
  expect(describeThrown(thrown)).toBe(text);
});

test('names the port, the data folder and both ways out when postgres rejects with undefined', () => {
  const err = embeddedPostgresError(undefined, { ...where, portInUse: false });
  expect(err).toBeInstanceOf(Error);
  expect(err.message).toContain('127.0.0.1:54329');
  expect(err.message).toContain('/srv/state/postgres');
  expect(err.message).toContain('postgres exited while starting and gave no reason');
  expect(err.message).toContain('set DATABASE_URL');
  expect(err.message).toContain('Free port 54329');
  expect(err.message).not.toMatch(/\bundefined\b/);
});

test('says the port is in use when it is', () => {
  const err = embeddedPostgresError(undefined, { ...where, portInUse: true });
  expect(err.message).toMatch(/^the embedded PostgreSQL could not start on 127\.0\.0\.1:54329 with its data in \/srv\/state\/postgres: port 54329 is already in use\. /);
  expect(err.message).not.toContain('Common causes');
});
