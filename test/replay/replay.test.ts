import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { DeterminismViolationError } from '@temporalio/workflow';
import { DefaultLogger, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { startTracing, workerTracingOptions, WORKFLOW_TRACING_INTERCEPTORS } from '../../src/telemetry/tracing';
import { testDataConverter } from '../helpers/codec';
import { FAILURE_CONVERTER_PATH } from '../../src/temporal/connection';
import { quietLogger, workflowBundle } from '../helpers/temporal';

const DIR = join(__dirname, 'histories');
const files = readdirSync(DIR).filter((f) => f.endsWith('.json')).sort();

beforeAll(() => {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
});

test('the corpus covers the interpreter paths', () => {
  expect(files.length).toBeGreaterThanOrEqual(15);
});

test('every recorded history replays against the current workflow code', async () => {
  const histories = files.map((f) => ({
    workflowId: f.replace(/\.json$/, ''),
    history: historyFromJSON(JSON.parse(readFileSync(join(DIR, f), 'utf8'))),
  }));
  const results: { workflowId: string; error?: unknown }[] = [];
  // The codec lets histories recorded with encryption on replay too; plaintext ones pass through it unchanged.
  for await (const r of Worker.runReplayHistories({ workflowBundle: await workflowBundle(), dataConverter: testDataConverter }, histories)) results.push(r);
  expect(results.map((r) => [r.workflowId, r.error ? String(r.error) : 'ok'])).toEqual(histories.map((h) => [h.workflowId, 'ok']));
});

test('every recorded history replays against the workflow code as the worker bundles it, tracing interceptors and failure converter included', async () => {
  // src/worker.ts bundles the OpenTelemetry workflow interceptors and the failure converter with the workflows;
  // histories recorded before they were installed must still replay with them.
  const traced = await bundleWorkflowCode({
    workflowsPath: require.resolve('../../workflows'),
    workflowInterceptorModules: [WORKFLOW_TRACING_INTERCEPTORS],
    failureConverterPath: FAILURE_CONVERTER_PATH,
    logger: quietLogger,
  });
  const histories = files.map((f) => ({
    workflowId: f.replace(/\.json$/, ''),
    history: historyFromJSON(JSON.parse(readFileSync(join(DIR, f), 'utf8'))),
  }));
  const results: { workflowId: string; error?: unknown }[] = [];
  // The worker's sink for workflow spans, with tracing off as by default.
  const { sinks } = workerTracingOptions(startTracing({ serviceName: 'agentry-replay' }));
  for await (const r of Worker.runReplayHistories({ workflowBundle: traced, dataConverter: testDataConverter, sinks }, histories)) results.push(r);
  expect(results.map((r) => [r.workflowId, r.error ? String(r.error) : 'ok'])).toEqual(histories.map((h) => [h.workflowId, 'ok']));
});

test('an incompatible change to the workflow fails replay with a determinism error', async () => {
  const altered = await bundleWorkflowCode({
    workflowsPath: require.resolve('../fixtures/altered-workflow'),
    logger: quietLogger,
  });
  const history = historyFromJSON(JSON.parse(readFileSync(join(DIR, 'support-triage-completed.json'), 'utf8')));
  await expect(Worker.runReplayHistory({ workflowBundle: altered }, history)).rejects.toBeInstanceOf(DeterminismViolationError);
});
