import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { predictIntent, readLabelledCsv, trainIntentModel } from '../../../src/agents/intent-classifier.agent';

// banking77 lives outside the repository (it is not ours to redistribute); without it this suite is skipped,
// loudly, rather than silently passing.
const DATA_DIR = resolve(__dirname, '../../../../shared/data/banking77');
const present = existsSync(join(DATA_DIR, 'train.csv')) && existsSync(join(DATA_DIR, 'test.csv'));
if (!present) console.warn(`SKIPPED banking77 accuracy test: no train.csv/test.csv in ${DATA_DIR}`);
const describeWithData = present ? describe : describe.skip;

describeWithData('intent-classifier on banking77', () => {
  it('reaches at least 80% test accuracy', async () => {
    const train = await readLabelledCsv(join(DATA_DIR, 'train.csv'));
    const test = await readLabelledCsv(join(DATA_DIR, 'test.csv'));
    const model = trainIntentModel(train.examples);
    const correct = test.examples.filter((e) => predictIntent(model, e.text).label === e.label).length;
    expect(correct / test.examples.length).toBeGreaterThanOrEqual(0.8);
  });
});
