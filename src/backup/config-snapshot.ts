/** Config keys whose values are secrets (or key material) and never leave the process. */
const SECRET_KEY = /(SECRET|PASSWORD|TOKEN|PRIVATE|_KEYS?$)/i;
const REMOVED = '[removed]';

/**
 * The configuration as a backup records it: every key with its effective value, except secrets (JWT secrets, key
 * rings, anything named like a key, token or password), which are replaced by `[removed]`, and passwords inside
 * URLs (DATABASE_URL, REDIS_URL), which are dropped.
 */
export function configWithoutSecrets(config: Record<string, unknown>): { values: Record<string, unknown>; removed: string[] } {
  const values: Record<string, unknown> = {};
  const removed: string[] = [];
  for (const [key, value] of Object.entries(config)) {
    if (value === undefined) continue;
    if (SECRET_KEY.test(key)) {
      values[key] = REMOVED;
      removed.push(key);
    } else if (typeof value === 'string' && /^[a-z][a-z0-9+.-]*:\/\//i.test(value) && URL.canParse(value)) {
      const url = new URL(value);
      if (url.password) {
        url.password = '';
        removed.push(`${key} (password)`);
      }
      values[key] = url.toString();
    } else {
      values[key] = JSON.parse(JSON.stringify(value)) as unknown;
    }
  }
  return { values, removed };
}
