import { Writable } from 'node:stream';
import { loadConfig } from '../../../src/config';
import { createLogger } from '../../../src/telemetry';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { logger: createLogger({ level: 'trace', name: 'redaction-test', destination }), text: () => lines.join('') };
}

const TOKEN = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJlLXNlY3JldC1wYXJ0';
const SECRET = 'jwt-secret-that-must-never-appear-in-logs-0123456789';

test('tokens, the JWT secret and connection strings are redacted wherever the logger is given them', () => {
  const { logger, text } = capture();
  const config = loadConfig({ JWT_SECRET: SECRET, DATABASE_URL: 'postgres://u:dbpass@h/db' });
  logger.info({ req: { headers: { authorization: `Bearer ${TOKEN}`, cookie: 'session=abc' } } }, 'request');
  logger.info({ headers: { authorization: `Bearer ${TOKEN}` } }, 'headers');
  logger.info({ request: { headers: { authorization: `Bearer ${TOKEN}`, cookie: 'session=abc' } } }, 'nested headers');
  logger.info({ authorization: `Bearer ${TOKEN}`, token: TOKEN, secret: SECRET }, 'top level');
  logger.info({ auth: { token: TOKEN, secret: SECRET } }, 'one level down');
  logger.info({ config }, 'config object');
  logger.info({ ...config }, 'config spread');
  logger.info({ settings: config }, 'config under another name');
  const out = text();
  expect(out).toContain('"msg":"config under another name"');
  expect(out).not.toContain(TOKEN);
  expect(out).not.toContain(SECRET);
  expect(out).not.toContain('session=abc');
  expect(out).not.toContain('dbpass');
  expect(out).toContain('[redacted]');
});
