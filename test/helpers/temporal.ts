import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { SA_PIPELINE, SA_STATUS, SA_TENANT } from '../../src/contracts';
import { FAILURE_CONVERTER_PATH } from '../../src/temporal/connection';
import { resolveTemporalCli } from '../../src/temporal/temporal-cli';
import { testDataConverter } from './codec';

export interface StartTemporalOptions {
  /** Keep the dev server's state in this SQLite file (to inspect what Temporal stores). @default in memory */
  dbFilename?: string;
}

/**
 * A real Temporal dev server for one test file, using the CLI that `npm run setup` found or installed. `env.client`
 * encrypts and decrypts payloads with the test key ring (`TEST_PAYLOAD_KEYS`), like the facade does.
 */
export async function startTemporal(opts: StartTemporalOptions = {}): Promise<TestWorkflowEnvironment> {
  const path = resolveTemporalCli({ install: false, explicitPath: process.env.TEMPORAL_CLI_PATH });
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path },
      searchAttributes: [SA_TENANT, SA_PIPELINE, SA_STATUS],
      extraArgs: ['--log-level', 'error'],
      ...(opts.dbFilename ? { dbFilename: opts.dbFilename } : {}),
    },
    client: { dataConverter: testDataConverter },
  });
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

/** The workflow bundle, built once per test file (webpack takes a few seconds). */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), failureConverterPath: FAILURE_CONVERTER_PATH, logger: quietLogger });
  return bundle;
}

const noop = () => undefined;
export const quietLogger = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop };
