import {
  collectReferenceSites,
  collectReferences,
  evaluateCondition,
  parseTemplate,
  resolveMapping,
  resolvePath,
  type Condition,
  type ExpressionScope,
} from '../../../src/pipelines';

const scope: ExpressionScope = {
  input: { text: 'my card never came', ticketId: 'T-42', count: 3, tags: ['a', 'b'], nothing: null },
  signals: { note: { text: 'customer called back', urgent: true, tags: ['vip'] } },
  stages: {
    classify: {
      label: 'card_arrival',
      confidence: 0.42,
      alternatives: [{ label: 'card_delivery_estimate', confidence: 0.3 }],
    },
    route: { value: 'cards', matched: true },
    review: { decision: 'approved', approver: 'alice' },
    // A parallel group: its output keyed by member, each member's output also under its own name.
    enrich: { geo: { country: 'DE' }, risk: { score: 0.1 } },
    geo: { country: 'DE' },
    risk: { score: 0.1 },
  },
};

describe('resolvePath', () => {
  it('reads input fields, stage output fields and array indexes', () => {
    expect(resolvePath('input.text', scope)).toBe('my card never came');
    expect(resolvePath('classify.alternatives.0.label', scope)).toBe('card_delivery_estimate');
    expect(resolvePath('input.tags.1', scope)).toBe('b');
  });

  it('yields undefined for missing fields, out-of-range indexes, skipped stages and malformed paths', () => {
    expect(resolvePath('input.missing', scope)).toBeUndefined();
    expect(resolvePath('input.tags.5', scope)).toBeUndefined();
    expect(resolvePath('input.tags.first', scope)).toBeUndefined();
    expect(resolvePath('input.text.length', scope)).toBeUndefined();
    expect(resolvePath('reply.reply', scope)).toBeUndefined();
    expect(resolvePath('input..text', scope)).toBeUndefined();
  });

  it('never reaches into prototypes', () => {
    expect(resolvePath('input.constructor', scope)).toBeUndefined();
    expect(resolvePath('classify.__proto__', scope)).toBeUndefined();
    expect(resolvePath('toString', scope)).toBeUndefined();
  });
});

describe('signals, approvals and parallel groups', () => {
  it('resolves the latest payload of a signal, and a signal not yet received as missing', () => {
    expect(resolvePath('signals.note.text', scope)).toBe('customer called back');
    expect(resolvePath('signals.note.tags.0', scope)).toBe('vip');
    expect(resolvePath('signals.note', scope)).toEqual(scope.signals.note);
    expect(resolvePath('signals.priority.level', scope)).toBeUndefined();
    expect(resolvePath('signals.constructor', scope)).toBeUndefined();
    expect(resolvePath('signals.note.__proto__', scope)).toBeUndefined();
  });

  it('drops mapping keys for missing signals and interpolates present ones', () => {
    expect(
      resolveMapping(
        { note: '${signals.note.text}', urgent: '${signals.note.urgent}', level: '${signals.priority.level}', line: 'p=${signals.priority.level};' },
        scope,
      ),
    ).toEqual({ note: 'customer called back', urgent: true, line: 'p=;' });
  });

  it('evaluates conditions on signals, a missing one counting as missing', () => {
    expect(evaluateCondition({ ref: 'signals.note.urgent', eq: true }, scope)).toBe(true);
    expect(evaluateCondition({ ref: 'signals.priority', exists: false }, scope)).toBe(true);
    expect(evaluateCondition({ ref: 'signals.priority.level', gt: 0 }, scope)).toBe(false);
    const none: ExpressionScope = { ...scope, signals: {} };
    expect(evaluateCondition({ ref: 'signals.note.urgent', eq: true }, none)).toBe(false);
  });

  it('reads approval outputs and parallel groups through the stages', () => {
    expect(resolveMapping({ d: '${review.decision}', c: '${review.comment}' }, scope)).toEqual({ d: 'approved' });
    expect(resolvePath('enrich.geo.country', scope)).toBe('DE');
    expect(resolvePath('risk.score', scope)).toBe(0.1);
    expect(resolvePath('enrich.missing', scope)).toBeUndefined();
  });

  it('does not mistake a stage output for a signal or the other way round', () => {
    const clash: ExpressionScope = { input: {}, signals: { route: { value: 'x' } }, stages: { route: { value: 'y' } } };
    expect(resolvePath('route.value', clash)).toBe('y');
    expect(resolvePath('signals.route.value', clash)).toBe('x');
  });

  it('tolerates a scope without signals at run time', () => {
    const legacy = { input: {}, stages: {} } as unknown as ExpressionScope;
    expect(resolvePath('signals.note.text', legacy)).toBeUndefined();
    expect(evaluateCondition({ ref: 'signals.note', exists: false }, legacy)).toBe(true);
  });
});

describe('resolveMapping', () => {
  it('replaces a lone reference with the value, keeping its type', () => {
    expect(
      resolveMapping(
        { n: '${input.count}', alt: '${classify.alternatives}', ok: '${route.matched}', whole: '${route}' },
        scope,
      ),
    ).toEqual({
      n: 3,
      alt: [{ label: 'card_delivery_estimate', confidence: 0.3 }],
      ok: true,
      whole: { value: 'cards', matched: true },
    });
  });

  it('tolerates whitespace inside ${ }', () => {
    expect(resolveMapping({ t: '${ input.ticketId }' }, scope)).toEqual({ t: 'T-42' });
  });

  it('interpolates references inside longer text, objects as JSON and missing values as empty', () => {
    expect(
      resolveMapping(
        {
          line: 'ticket ${input.ticketId}: ${classify.label} (${classify.confidence}, matched ${route.matched})',
          json: 'tags=${input.tags}',
          gaps: '[${input.missing}][${input.nothing}][${reply.reply}]',
        },
        scope,
      ),
    ).toEqual({
      line: 'ticket T-42: card_arrival (0.42, matched true)',
      json: 'tags=["a","b"]',
      gaps: '[][][]',
    });
  });

  it('passes other JSON values through and resolves strings nested in objects and arrays', () => {
    expect(
      resolveMapping(
        {
          n: 7,
          flag: false,
          none: null,
          nested: { team: '${route.value}', list: ['${input.count}', 'x-${input.ticketId}', 1], deep: { k: 'v' } },
        },
        scope,
      ),
    ).toEqual({
      n: 7,
      flag: false,
      none: null,
      nested: { team: 'cards', list: [3, 'x-T-42', 1], deep: { k: 'v' } },
    });
  });

  it('drops keys whose lone reference is missing, and turns missing array elements into null', () => {
    expect(
      resolveMapping(
        { ticketId: '${input.absent}', reply: '${reply.reply}', keep: 'x', list: ['${input.absent}', 1] },
        scope,
      ),
    ).toEqual({ keep: 'x', list: [null, 1] });
  });

  it('resolves references to a skipped stage as undefined', () => {
    const skipped: ExpressionScope = { input: scope.input, signals: {}, stages: { classify: scope.stages.classify } };
    expect(resolveMapping({ team: '${route.value}', text: 'team: ${route.value}' }, skipped)).toEqual({
      text: 'team: ',
    });
  });

  it('treats $${ as a literal ${', () => {
    expect(resolveMapping({ t: 'cost $${input.count} is ${input.count}' }, scope)).toEqual({
      t: 'cost ${input.count} is 3',
    });
  });

  it('does not mutate the mapping', () => {
    const mapping = { a: { b: ['${input.count}'] } };
    resolveMapping(mapping, scope);
    expect(mapping).toEqual({ a: { b: ['${input.count}'] } });
  });
});

describe('parseTemplate', () => {
  it('splits text, references and an unterminated ${', () => {
    expect(parseTemplate('a ${x.y} b ${oops')).toEqual([
      { kind: 'text', text: 'a ' },
      { kind: 'ref', ref: 'x.y' },
      { kind: 'text', text: ' b ' },
      { kind: 'unterminated', text: '${oops' },
    ]);
  });
});

describe('evaluateCondition', () => {
  const holds = (condition: Condition) => evaluateCondition(condition, scope);

  it('eq and ne compare JSON values deeply', () => {
    expect(holds({ ref: 'classify.label', eq: 'card_arrival' })).toBe(true);
    expect(holds({ ref: 'classify.label', eq: 'other' })).toBe(false);
    expect(holds({ ref: 'input.tags', eq: ['a', 'b'] })).toBe(true);
    expect(holds({ ref: 'route', eq: { matched: true, value: 'cards' } })).toBe(true);
    expect(holds({ ref: 'route', eq: { value: 'cards' } })).toBe(false);
    expect(holds({ ref: 'input.nothing', eq: null })).toBe(true);
    expect(holds({ ref: 'classify.label', ne: 'other' })).toBe(true);
    expect(holds({ ref: 'classify.label', ne: 'card_arrival' })).toBe(false);
    expect(holds({ ref: 'input.missing', ne: 'x' })).toBe(true);
  });

  it('lt, lte, gt and gte order numbers, and strings among themselves', () => {
    expect(holds({ ref: 'classify.confidence', lt: 0.5 })).toBe(true);
    expect(holds({ ref: 'classify.confidence', lt: 0.42 })).toBe(false);
    expect(holds({ ref: 'classify.confidence', lte: 0.42 })).toBe(true);
    expect(holds({ ref: 'classify.confidence', gt: 0.42 })).toBe(false);
    expect(holds({ ref: 'classify.confidence', gte: 0.42 })).toBe(true);
    expect(holds({ ref: 'input.count', gt: 2 })).toBe(true);
    expect(holds({ ref: 'classify.label', gt: 'card' })).toBe(true);
    expect(holds({ ref: 'classify.label', lt: 'card' })).toBe(false);
  });

  it('ordering is false across types and for missing values', () => {
    expect(holds({ ref: 'input.ticketId', lt: 100 })).toBe(false);
    expect(holds({ ref: 'input.count', lt: '9' })).toBe(false);
    expect(holds({ ref: 'input.missing', lt: 1 })).toBe(false);
    expect(holds({ ref: 'input.missing', gte: 0 })).toBe(false);
  });

  it('in checks membership with deep equality', () => {
    expect(holds({ ref: 'route.value', in: ['cards', 'fx'] })).toBe(true);
    expect(holds({ ref: 'route.value', in: ['fx'] })).toBe(false);
    expect(holds({ ref: 'input.tags', in: [['a', 'b'], 'x'] })).toBe(true);
    expect(holds({ ref: 'input.missing', in: ['x'] })).toBe(false);
  });

  it('exists tells present values from missing and null ones', () => {
    expect(holds({ ref: 'input.ticketId', exists: true })).toBe(true);
    expect(holds({ ref: 'input.missing', exists: true })).toBe(false);
    expect(holds({ ref: 'input.missing', exists: false })).toBe(true);
    expect(holds({ ref: 'input.nothing', exists: false })).toBe(true);
    expect(holds({ ref: 'input.count', exists: false })).toBe(false);
  });

  it('startsWith applies to strings only', () => {
    expect(holds({ ref: 'classify.label', startsWith: 'card_' })).toBe(true);
    expect(holds({ ref: 'classify.label', startsWith: 'top_up' })).toBe(false);
    expect(holds({ ref: 'input.count', startsWith: '3' })).toBe(false);
  });

  it('contains finds substrings in strings and elements in arrays', () => {
    expect(holds({ ref: 'input.text', contains: 'card' })).toBe(true);
    expect(holds({ ref: 'input.text', contains: 'pin' })).toBe(false);
    expect(holds({ ref: 'input.tags', contains: 'b' })).toBe(true);
    expect(holds({ ref: 'input.tags', contains: 'c' })).toBe(false);
    expect(holds({ ref: 'classify.alternatives', contains: { label: 'card_delivery_estimate', confidence: 0.3 } })).toBe(
      true,
    );
    expect(holds({ ref: 'input.count', contains: 3 })).toBe(false);
  });

  it('requires every operator given on one ref to hold', () => {
    expect(holds({ ref: 'classify.confidence', gte: 0.4, lt: 0.5 })).toBe(true);
    expect(holds({ ref: 'classify.confidence', gte: 0.45, lt: 0.5 })).toBe(false);
  });

  it('combines with all, any and not', () => {
    const low: Condition = { ref: 'classify.confidence', lt: 0.5 };
    const cards: Condition = { ref: 'route.value', eq: 'cards' };
    const fx: Condition = { ref: 'route.value', eq: 'fx' };
    expect(holds({ all: [low, cards] })).toBe(true);
    expect(holds({ all: [low, fx] })).toBe(false);
    expect(holds({ any: [fx, cards] })).toBe(true);
    expect(holds({ any: [fx, { not: low }] })).toBe(false);
    expect(holds({ not: fx })).toBe(true);
    expect(holds({ not: { all: [low, { any: [fx, cards] }] } })).toBe(false);
  });

  it('treats a skipped stage as missing', () => {
    const skipped: ExpressionScope = { input: scope.input, signals: {}, stages: {} };
    expect(evaluateCondition({ ref: 'classify.confidence', lt: 0.5 }, skipped)).toBe(false);
    expect(evaluateCondition({ ref: 'classify', exists: false }, skipped)).toBe(true);
  });
});

describe('collectReferences', () => {
  it('lists the references in a mapping at any depth', () => {
    expect(
      collectReferences({ a: '${input.x} and ${ s.y.0 }', b: { c: ['${t.z}', 1, 'plain'] }, d: 'cost $${x}' }, 'mapping'),
    ).toEqual(['input.x', 's.y.0', 't.z']);
  });

  it('lists the refs of a condition with where each one is', () => {
    const condition: Condition = {
      all: [{ ref: 'a.b', eq: '${not.a.reference}' }, { not: { any: [{ ref: 'c.d', exists: true }] } }],
    };
    expect(collectReferences(condition, 'condition')).toEqual(['a.b', 'c.d']);
    expect(collectReferenceSites(condition, 'condition').map((s) => s.at)).toEqual([
      ['all', 0, 'ref'],
      ['all', 1, 'not', 'any', 0, 'ref'],
    ]);
  });

  it('reads a mapping key named ref as an input name, not a condition', () => {
    expect(collectReferences({ ref: 'classify.label' }, 'mapping')).toEqual([]);
  });
});
