import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { SA_PIPELINE, SA_STATUS, SA_TENANT } from '../../src/contracts';
import { resolveTemporalCli } from '../../src/temporal/temporal-cli';

/** A real Temporal dev server for one test file, using the CLI that `npm run setup` found or installed. */
export async function startTemporal(): Promise<TestWorkflowEnvironment> {
  const path = resolveTemporalCli({ install: false, explicitPath: process.env.TEMPORAL_CLI_PATH });
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path },
      searchAttributes: [SA_TENANT, SA_PIPELINE, SA_STATUS],
      extraArgs: ['--log-level', 'error'],
    },
  });
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

/** The workflow bundle, built once per test file (webpack takes a few seconds). */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), logger: quietLogger });
  return bundle;
}

const noop = () => undefined;
export const quietLogger = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop };
