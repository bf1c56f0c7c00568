import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

// Workflow code runs in Temporal's deterministic sandbox: no Node built-ins (beyond the few the SDK allows) and
// no I/O clients. Activities are imported as types only.
const sandboxAllowed = new Set(['assert', 'url', 'util']);
const forbiddenInWorkflows = [
  ...builtinModules.filter((m) => !sandboxAllowed.has(m)).flatMap((m) => [m, `node:${m}`]),
  'pg',
  'ioredis',
  'express',
  'prom-client',
  'pino',
];

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.agentry/', '.tools/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: forbiddenInWorkflows,
              message: 'Workflow code must stay deterministic: do the I/O in an activity.',
            },
            {
              group: ['**/activities', '**/activities/*'],
              allowTypeImports: true,
              message: 'Import activities as types only (proxyActivities<Activities>).',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.mjs', '**/*.cjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
);
