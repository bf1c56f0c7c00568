import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

const ROOT = resolve(__dirname, '..', '..');

function lintAsWorkflow(code: string): string {
  const res = spawnSync(process.execPath, [resolve(ROOT, 'node_modules/eslint/bin/eslint.js'), '--stdin', '--stdin-filename', 'workflows/probe.ts'], {
    cwd: ROOT,
    input: code,
    encoding: 'utf8',
  });
  return res.stdout;
}

test('workflow code may not import Node built-ins or I/O clients', () => {
  const out = lintAsWorkflow("import { readFileSync } from 'node:fs';\nimport { Pool } from 'pg';\nimport express from 'express';\nexport const x = [readFileSync, Pool, express];\n");
  expect(out).toMatch(/'node:fs' import is restricted/);
  expect(out).toMatch(/'pg' import is restricted/);
  expect(out).toMatch(/'express' import is restricted/);
});

test('workflow code imports activities as types only', () => {
  expect(lintAsWorkflow("import { createActivities } from '../activities';\nexport const x = createActivities;\n")).toMatch(/types only/);
  expect(lintAsWorkflow("import type { Activities } from '../activities';\nexport type X = Activities;\n")).not.toMatch(/error/);
});
