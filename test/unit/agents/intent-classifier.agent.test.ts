import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrainingDataError } from '../../../src/agents/agent-errors';
import {
  createIntentClassifierAgent,
  loadIntentModel,
  parseLabelledCsv,
  predictIntent,
  trainIntentModel,
} from '../../../src/agents/intent-classifier.agent';
import { fakeContext } from './fake-context';

const DEMO_TRAIN = join(__dirname, '../../../src/demo/train.csv');
const demoExamples = () => parseLabelledCsv(readFileSync(DEMO_TRAIN), DEMO_TRAIN);

describe('intent-classifier', () => {
  let cacheDir: string;
  beforeEach(async () => {
    cacheDir = await mkdtemp(join(tmpdir(), 'agentry-intent-'));
  });
  afterEach(async () => {
    await rm(cacheDir, { recursive: true, force: true });
  });

  it('classifies held-out phrasings of the demo intents', () => {
    const model = trainIntentModel(demoExamples());
    const cases: Array<[string, string]> = [
      ['my card has not come in the post yet', 'card_arrival'],
      ['somebody stole my card at the station', 'lost_or_stolen_card'],
      ['after three wrong attempts my PIN got locked', 'pin_blocked'],
      ['they took the payment twice from my card', 'transaction_charged_twice'],
      ['please stop the transfer I sent an hour ago', 'cancel_transfer'],
      ['my top-up keeps failing with an error', 'top_up_failed'],
      ['what rate do I get converting pounds to euros', 'exchange_rate'],
      ['I would like to close my account for good', 'terminate_account'],
    ];
    const wrong = cases.filter(([text, label]) => predictIntent(model, text).label !== label);
    expect(wrong).toEqual([]);
  });

  it('returns a probability, with the top three alternatives in order', () => {
    const model = trainIntentModel(demoExamples());
    const prediction = predictIntent(model, 'I lost my card');
    expect(prediction.alternatives).toHaveLength(3);
    expect(prediction.alternatives[0]).toEqual({ label: prediction.label, confidence: prediction.confidence });
    const confidences = prediction.alternatives.map((a) => a.confidence);
    expect([...confidences].sort((a, b) => b - a)).toEqual(confidences);
    expect(prediction.confidence).toBeGreaterThan(0.5);
    expect(prediction.confidence).toBeLessThanOrEqual(1);
  });

  it('is deterministic: the same data gives bit-identical weights and answers', () => {
    const a = trainIntentModel(demoExamples());
    const b = trainIntentModel(demoExamples());
    expect(Buffer.from(a.weights.buffer).equals(Buffer.from(b.weights.buffer))).toBe(true);
    expect(predictIntent(a, 'where is my money')).toEqual(predictIntent(b, 'where is my money'));
  });

  it('caches the model by training data and reuses it across agent instances', async () => {
    const trainFile = join(cacheDir, 'train.csv');
    await writeFile(trainFile, readFileSync(DEMO_TRAIN));
    const first = await loadIntentModel({ trainFile, cacheDir });
    expect(first.source).toBe('trained');
    const cachedAt = (await stat(first.cacheFile)).mtimeMs;

    const ctx = fakeContext();
    const agent = createIntentClassifierAgent({ trainFile, cacheDir });
    const answer = await agent.run({ text: 'my card never arrived' }, ctx);
    expect(ctx.logs).toContainEqual(expect.objectContaining({ obj: expect.objectContaining({ source: 'cache' }) }));
    expect((await stat(first.cacheFile)).mtimeMs).toBe(cachedAt);
    expect(answer).toEqual(predictIntent(first.model, 'my card never arrived'));
    expect(agent.output.parse(answer)).toEqual(answer);

    // Changing the training data changes the key: a new model is trained next to the old one.
    await writeFile(trainFile, `${readFileSync(DEMO_TRAIN, 'utf8')}"one more card example",card_arrival\n`);
    const second = await loadIntentModel({ trainFile, cacheDir });
    expect(second.source).toBe('trained');
    expect(second.cacheFile).not.toBe(first.cacheFile);
    expect((await readdir(cacheDir)).filter((f) => f.startsWith('intent-model-'))).toHaveLength(2);
  });

  it('retrains over a corrupt cache file', async () => {
    const first = await loadIntentModel({ trainFile: DEMO_TRAIN, cacheDir });
    await writeFile(first.cacheFile, '{"format":"agentry-intent-model","truncated');
    const again = await loadIntentModel({ trainFile: DEMO_TRAIN, cacheDir });
    expect(again.source).toBe('trained');
    expect(predictIntent(again.model, 'lost card')).toEqual(predictIntent(first.model, 'lost card'));
  });

  it('loads the model once for concurrent calls', async () => {
    const agent = createIntentClassifierAgent({ trainFile: DEMO_TRAIN, cacheDir });
    const ctx = fakeContext();
    await Promise.all([agent.run({ text: 'a' }, ctx), agent.run({ text: 'b' }, ctx), agent.health!()]);
    expect(ctx.logs.filter((l) => l.msg === 'intent model ready')).toHaveLength(1);
  });

  it('stops waiting when the call is cancelled', async () => {
    const agent = createIntentClassifierAgent({ trainFile: DEMO_TRAIN, cacheDir });
    const controller = new AbortController();
    const pending = agent.run({ text: 'hello' }, fakeContext({ signal: controller.signal }));
    controller.abort(new Error('cancelled'));
    await expect(pending).rejects.toThrow('cancelled');
    // The load carries on for the next caller (and must finish before the temp dir goes).
    await expect(agent.health!()).resolves.toBeUndefined();
  });

  describe('training file errors', () => {
    const write = async (content: string) => {
      const file = join(cacheDir, 'bad.csv');
      await writeFile(file, content);
      return file;
    };

    it('names the file when it cannot be read, from run and from health', async () => {
      const missing = join(cacheDir, 'missing.csv');
      const agent = createIntentClassifierAgent({ trainFile: missing, cacheDir });
      await expect(agent.health!()).rejects.toThrow(TrainingDataError);
      await expect(agent.run({ text: 'x' }, fakeContext())).rejects.toThrow(`${missing}: cannot read training file (ENOENT)`);
    });

    it('names the file and line of a malformed record', async () => {
      const file = await write('text,category\n"fine",a\n"also fine",b\n"broken"x,c\n');
      await expect(loadIntentModel({ trainFile: file, cacheDir })).rejects.toMatchObject({
        name: 'TrainingDataError',
        file,
        line: 4,
      });
    });

    it('names the line of an empty field', async () => {
      const file = await write('text,category\nhello,a\n  ,b\n');
      await expect(loadIntentModel({ trainFile: file, cacheDir })).rejects.toThrow(`${file}:3: empty "text" field`);
    });

    it('rejects a header without text and category columns', async () => {
      const file = await write('sentence,label\nhello,a\n');
      await expect(loadIntentModel({ trainFile: file, cacheDir })).rejects.toThrow(`${file}:1: header must name`);
    });

    it('rejects a file with a single category', async () => {
      const file = await write('text,category\nhello,a\nhi,a\n');
      await expect(loadIntentModel({ trainFile: file, cacheDir })).rejects.toThrow('at least two categories');
    });

    it('recovers once the file is fixed', async () => {
      const file = await write('text,category\n');
      const agent = createIntentClassifierAgent({ trainFile: file, cacheDir });
      await expect(agent.health!()).rejects.toThrow('no examples');
      await writeFile(file, readFileSync(DEMO_TRAIN));
      await expect(agent.health!()).resolves.toBeUndefined();
    });
  });
});
