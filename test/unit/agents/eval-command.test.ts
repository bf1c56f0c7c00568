import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluatePii, formatTable, runEval } from '../../../src/cli/eval-command';

describe('eval command', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'agentry-eval-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('names a missing path and the flag that sets it', async () => {
    await expect(runEval({ presidio: join(dir, 'nope.json'), banking77: dir, out: () => {} })).rejects.toThrow(
      /nope\.json; pass --presidio/,
    );
    const presidio = join(dir, 'p.json');
    await writeFile(presidio, '[]');
    await expect(runEval({ presidio, banking77: join(dir, 'missing'), out: () => {} })).rejects.toThrow(
      /missing; pass --banking77/,
    );
  });

  it('scores overlap matches per type and leaves unsupported types out', async () => {
    const file = join(dir, 'mini.json');
    const text = 'Mail ann@example.com or call 555-867-5309, Ann Lee, card 4111 1111 1111 1112';
    await writeFile(
      file,
      JSON.stringify([
        {
          full_text: text,
          spans: [
            { entity_type: 'EMAIL_ADDRESS', start_position: 5, end_position: 20 },
            { entity_type: 'PERSON', start_position: 43, end_position: 50 },
            { entity_type: 'CREDIT_CARD', start_position: 57, end_position: 76 },
          ],
        },
      ]),
    );
    const report = await evaluatePii(file);
    const byType = Object.fromEntries(report.perType.map((t) => [t.type, t]));
    expect(byType.EMAIL_ADDRESS).toMatchObject({ gold: 1, goldFound: 1, predicted: 1, precision: 1, recall: 1 });
    expect(byType.PHONE_NUMBER).toMatchObject({ gold: 0, predicted: 1, precision: 0 });
    expect(byType.CREDIT_CARD).toMatchObject({ gold: 1, goldFound: 0, recall: 0 });
    expect(report.unsupportedGold).toEqual({ PERSON: 1 });
  });

  it('pads tables so columns line up', () => {
    expect(formatTable(['type', 'n'], [['a', '1'], ['longer', '100']])).toEqual([
      'type      n',
      '------  ---',
      'a         1',
      'longer  100',
    ]);
  });
});
