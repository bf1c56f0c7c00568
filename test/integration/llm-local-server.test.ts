/**
 * The embedded model under more concurrent requests than it has sequences: the extra ones wait in line and every
 * one is answered. A finished request used to hand its place to the next one before its context sequence was back,
 * so that one failed with "No sequences left" (HTTP 500) and its place was never returned. Also: the server's log
 * file, as `agentry demo` keeps it, holds JSON lines only.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnLocalServer, type LocalServerProcess } from '../../src/llm';

const PARALLEL = 2;
let server: LocalServerProcess;

beforeAll(async () => {
  server = await spawnLocalServer({ port: 0, env: { ...process.env, LLM_LOCAL_PARALLEL: String(PARALLEL), LLM_LOCAL_THREADS: '1', LOG_LEVEL: 'warn' } });
});

afterAll(async () => {
  await server?.stop();
});

const PROMPTS = ['Say hi.', 'Name a colour.', 'Count to three.', 'Say goodbye.', 'Name a fruit.', 'Say yes.'];

async function complete(prompt: string, maxTokens: number): Promise<{ status: number; body: string }> {
  const res = await fetch(`${server.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: prompt }], max_tokens: maxTokens }),
    // A lost place in line makes requests wait forever: fail the round instead of the whole file's timeout.
    signal: AbortSignal.timeout(30_000),
  });
  return { status: res.status, body: await res.text() };
}

test('answers three times as many concurrent requests as it has sequences, round after round', async () => {
  for (let round = 0; round < 4; round++) {
    // Different lengths, so requests finish while others are still generating.
    const answers = await Promise.all(
      Array.from({ length: 3 * PARALLEL }, (_, i) => complete(PROMPTS[i % PROMPTS.length]!, 2 + ((i + round) % 4) * 3)),
    );
    const failed = answers.filter((a) => a.status !== 200);
    expect({ round, failed }).toEqual({ round, failed: [] });
    for (const a of answers) expect((JSON.parse(a.body) as { choices: unknown[] }).choices).toHaveLength(1);
  }
});

test('keeps its log file to JSON lines; the ready line goes to the parent only', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'agentry-llm-log-'));
  try {
    const logFile = join(dir, 'llm.log');
    const logged = await spawnLocalServer({ port: 0, logFile, env: { ...process.env, LLM_LOCAL_PARALLEL: '1', LLM_LOCAL_THREADS: '1', LOG_LEVEL: 'info' } });
    await logged.stop();
    const deadline = Date.now() + 10_000;
    let text = '';
    while (!text.includes('local LLM stopped') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      text = await readFile(logFile, 'utf8').catch(() => '');
    }
    const lines = text.split('\n').filter((l) => l.trim() !== '');
    expect(lines.filter((l) => !l.startsWith('{'))).toEqual([]);
    const entries = lines.map((l) => JSON.parse(l) as { msg?: string; baseUrl?: string });
    expect(entries).toEqual(expect.arrayContaining([expect.objectContaining({ msg: 'local LLM ready', baseUrl: logged.baseUrl }), expect.objectContaining({ msg: 'local LLM stopped' })]));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
