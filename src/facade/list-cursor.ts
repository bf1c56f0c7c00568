import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ValidationError } from './errors';

/**
 * List cursors wrap Temporal's page token with a MAC over the tenant and the query it belongs to: `<mac>.<token>`,
 * both base64url. A cursor that was altered, made up, or taken from another tenant's or another filter's listing is
 * refused as 400 before it reaches Temporal, which would otherwise spend seconds on a garbage token and fail. The MAC
 * is keyed (HMAC-SHA256, cut to 128 bits), so a caller cannot mint a cursor for a token of its own making; the key
 * must be the same on every facade replica, or a page fetched through one cannot be continued through another.
 */
export interface ListCursors {
  encode(tenant: string, query: string, token: Uint8Array): string;
  /** The page token of a cursor made by `encode` for this tenant and query; throws a 400 otherwise. */
  decode(tenant: string, query: string, cursor: string): Uint8Array;
}

const CURSOR = /^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]+)$/;

/**
 * @param keys shared by every replica (server.ts derives them from AUDIT_SEAL_KEYS): the first signs, every one is
 * accepted, so cursors survive a key rotation and a rolling deploy. Random when absent, for one process.
 */
export function createListCursors(keys: readonly Buffer[] = [randomBytes(32)]): ListCursors {
  if (keys.length === 0) throw new Error('createListCursors needs at least one key');
  const mac = (key: Buffer, tenant: string, query: string, token: Uint8Array) =>
    createHmac('sha256', key).update(`${tenant}\n${query}\n`).update(token).digest().subarray(0, 16);
  return {
    encode(tenant, query, token) {
      return `${mac(keys[0], tenant, query, token).toString('base64url')}.${Buffer.from(token).toString('base64url')}`;
    },
    decode(tenant, query, cursor) {
      const parts = CURSOR.exec(cursor);
      const token = parts ? Buffer.from(parts[2], 'base64url') : undefined;
      const given = parts ? Buffer.from(parts[1], 'base64url') : undefined;
      if (!token || !given || given.length !== 16 || !keys.some((k) => timingSafeEqual(given, mac(k, tenant, query, token)))) {
        throw new ValidationError('invalid cursor', [{ path: '/cursor', message: 'must be the nextCursor of a previous page of this listing, with the same filters' }]);
      }
      return token;
    },
  };
}
