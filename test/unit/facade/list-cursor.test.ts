import { createHash, randomBytes } from 'node:crypto';
import { createListCursors } from '../../../src/facade/list-cursor';

const query = "WorkflowType = 'pipeline' AND AgentryTenant = 'acme'";
const token = Buffer.from('a page token from Temporal');

test('a cursor decodes to its page token for the same tenant and query only', () => {
  const cursors = createListCursors([randomBytes(32)]);
  const cursor = cursors.encode('acme', query, token);
  expect(cursor).toMatch(/^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]+$/);
  expect(Buffer.from(cursors.decode('acme', query, cursor))).toEqual(token);
  expect(() => cursors.decode('other', query, cursor)).toThrow('invalid cursor');
  expect(() => cursors.decode('acme', `${query} AND AgentryStatus = 'failed'`, cursor)).toThrow('invalid cursor');
});

test('replicas sharing the key read each other\'s cursors; another key, or no key, cannot mint one', () => {
  const key = randomBytes(32);
  const cursor = createListCursors([key]).encode('acme', query, token);
  expect(Buffer.from(createListCursors([Buffer.from(key)]).decode('acme', query, cursor))).toEqual(token);
  expect(() => createListCursors([randomBytes(32)]).decode('acme', query, cursor)).toThrow('invalid cursor');

  // What a caller could compute without the key: the digest over tenant, query and a token of its own making.
  const forged = Buffer.from('garbage that Temporal would choke on');
  const unkeyed = createHash('sha256').update(`acme\n${query}\n`).update(forged).digest().subarray(0, 16);
  const attempt = `${unkeyed.toString('base64url')}.${forged.toString('base64url')}`;
  expect(() => createListCursors([key]).decode('acme', query, attempt)).toThrow('invalid cursor');
});

test('after a key rotation, cursors signed with the old key still read, and new ones are signed with the new key', () => {
  const [oldKey, newKey] = [randomBytes(32), randomBytes(32)];
  const before = createListCursors([oldKey]).encode('acme', query, token);
  const rotated = createListCursors([newKey, oldKey]);
  expect(Buffer.from(rotated.decode('acme', query, before))).toEqual(token);
  const after = rotated.encode('acme', query, token);
  expect(() => createListCursors([oldKey]).decode('acme', query, after)).toThrow('invalid cursor');
  expect(Buffer.from(createListCursors([newKey]).decode('acme', query, after))).toEqual(token);
});

test('malformed cursors are refused naming /cursor', () => {
  const cursors = createListCursors();
  for (const bad of ['', 'garbage', '.', 'a.b', `${'A'.repeat(22)}.`, `${'A'.repeat(21)}.abc`]) {
    try {
      cursors.decode('acme', query, bad);
      throw new Error(`accepted ${JSON.stringify(bad)}`);
    } catch (err) {
      expect(err).toMatchObject({ status: 400, errors: [{ path: '/cursor' }] });
    }
  }
});
