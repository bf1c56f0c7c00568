import { loadConfig } from '../../../src/config';
import { portsInUseError, stackPorts, type StackOptions } from '../../../src/cli/dev-stack';

const options = (env: Record<string, string>, extra: Partial<StackOptions> = {}): StackOptions => ({ config: loadConfig({ AGENTRY_STATE_DIR: '/tmp/x', ...env }), log: () => undefined, ...extra });

test('the demo checks every port it will listen on, the Web UI and the local model among them', () => {
  const ports = stackPorts(options({}), {});
  expect(ports.map((p) => [p.port, p.what])).toEqual([
    [7233, 'the Temporal dev server'],
    [8233, 'the Temporal Web UI'],
    [54329, 'the embedded PostgreSQL'],
    [8088, 'the local model server'],
    [3000, 'the facade'],
    [9464, 'the worker metrics endpoint'],
    [9465, 'the worker SDK metrics endpoint'],
  ]);
});

test('each port names the setting that moves it', () => {
  const byWhat = Object.fromEntries(stackPorts(options({ TEMPORAL_UI_URL: 'http://127.0.0.1:18233', LLM_LOCAL_PORT: '18088' }), {}).map((p) => [p.what, p]));
  expect(byWhat['the Temporal Web UI']).toMatchObject({ port: 18233, remedy: expect.stringContaining('TEMPORAL_UI_URL (e.g. TEMPORAL_UI_URL=http://127.0.0.1:18234)') });
  expect(byWhat['the local model server']).toMatchObject({ port: 18088, remedy: expect.stringContaining('set LLM_LOCAL_PORT') });
  expect(byWhat['the Temporal dev server'].remedy).toContain('TEMPORAL_ADDRESS=127.0.0.1:7233');
  expect(byWhat['the embedded PostgreSQL'].remedy).toContain('DATABASE_URL');
  expect(byWhat['the facade'].remedy).toContain('--port');
  expect(byWhat['the worker metrics endpoint'].remedy).toContain('WORKER_METRICS_PORT');
  expect(byWhat['the worker SDK metrics endpoint'].remedy).toContain('WORKER_SDK_METRICS_PORT');
});

test('parts reused through configuration, and ports the system picks, are not checked', () => {
  const env = {
    TEMPORAL_ADDRESS: '10.0.0.5:7233',
    DATABASE_URL: 'postgres://u@127.0.0.1:5432/db',
    LLM_BASE_URL: 'https://llm.example/v1',
    WORKER_SDK_METRICS_PORT: 'off',
  };
  expect(stackPorts(options(env, { facadePort: 4000 }), env).map((p) => p.port)).toEqual([4000, 9464]);
  // The local model port 0 picks a free one; pipelines without llm stages start no model server.
  expect(stackPorts(options({ LLM_LOCAL_PORT: '0' }), {}).map((p) => p.what)).not.toContain('the local model server');
  expect(stackPorts(options({}, { llm: false }), {}).map((p) => p.what)).not.toContain('the local model server');
});

test('taken ports are reported one sentence each, with what to do', () => {
  const [, ui, , llm] = stackPorts(options({}), {});
  expect(portsInUseError([ui]).message).toBe(
    'port 8233 (the Temporal Web UI) is already in use: stop what holds it, or move the Web UI with TEMPORAL_UI_URL (e.g. TEMPORAL_UI_URL=http://127.0.0.1:8234).',
  );
  expect(portsInUseError([ui, llm]).message.split('\n')).toEqual([
    '2 ports the stack needs are in use; nothing was started:',
    expect.stringMatching(/^ {2}port 8233 \(the Temporal Web UI\) is already in use: /),
    '  port 8088 (the local model server) is already in use: if a local model server runs there, reuse it with LLM_BASE_URL=http://127.0.0.1:8088/v1; otherwise stop what holds it, or set LLM_LOCAL_PORT (0 picks a free port).',
  ]);
});
