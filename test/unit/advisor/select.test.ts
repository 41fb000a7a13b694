import { describe, expect, it } from 'vitest';
import {
  type SelectionCandidate,
  type SelectionStatement,
  selectIndexes,
  writeOverheadOf,
} from '../../../shared/advisor/select.ts';

const statements: SelectionStatement[] = [
  { id: 'a', weightPerHour: 100, baseline: [1_000, 1_000] },
  { id: 'b', weightPerHour: 100, baseline: [1_000] },
];

const candidate = (
  id: string,
  costs: [number, number[]][],
  extra: Partial<SelectionCandidate> = {},
): SelectionCandidate => ({
  id,
  sizeBytes: 1_000,
  writeCostPerHour: 0,
  costs: new Map(costs),
  ...extra,
});

const options = { maxIndexes: 10, maxIndexBytes: 1e9, minImprovement: 0.2 };

describe('selectIndexes', () => {
  it('takes the candidate serving both statements and skips one that adds nothing after it', () => {
    // Prepare
    const both = candidate('both', [
      [0, [10, 10]],
      [1, [10]],
    ]);
    const onlyA = candidate('onlyA', [[0, [12, 12]]]);

    // Act
    const result = selectIndexes(statements, [onlyA, both], options);

    // Assess
    expect(result.chosen).toEqual(['both']);
    expect(result.rejected.get('onlyA')).toContain('already serve');
  });

  it('weighs the whole workload: a candidate helping two statements beats the best single-statement one', () => {
    // Prepare: 'single' saves 100 × 990 on one statement; 'shared' 100 × 490 + 100 × 980.
    const single = candidate('single', [[0, [10, 10]]]);
    const shared = candidate('shared', [
      [0, [510, 510]],
      [1, [20]],
    ]);

    // Act
    const result = selectIndexes(statements, [single, shared], { ...options, maxIndexes: 1 });

    // Assess
    expect(result.chosen).toEqual(['shared']);
  });

  it.each([
    [
      'write overhead larger than the read benefit',
      candidate('w', [[1, [10]]], { writeCostPerHour: 200_000 }),
      'write overhead',
    ],
    [
      'an improvement below minImprovement',
      candidate('s', [[1, [900]]]),
      'ADVISOR_MIN_IMPROVEMENT',
    ],
    ['no trusted use at all', candidate('n', []), 'no statement plan uses it'],
  ])('rejects %s', (_, c, reason) => {
    // Act
    const result = selectIndexes(statements, [c], options);

    // Assess
    expect(result.chosen).toEqual([]);
    expect(result.rejected.get(c.id)).toContain(reason);
  });

  it('respects the count and byte budgets', () => {
    // Prepare
    const big = candidate('big', [[0, [1, 1]]], { sizeBytes: 5_000 });
    const small = candidate('small', [[1, [1]]], { sizeBytes: 10 });

    // Act
    const byBytes = selectIndexes(statements, [big, small], { ...options, maxIndexBytes: 1_000 });
    const byCount = selectIndexes(statements, [big, small], { ...options, maxIndexes: 1 });

    // Assess
    expect(byBytes.chosen).toEqual(['small']);
    expect(byBytes.rejected.get('big')).toContain('ADVISOR_MAX_INDEX_BYTES');
    expect(byCount.chosen).toHaveLength(1);
    expect([...byCount.rejected.values()].join(' ')).toContain('ADVISOR_MAX_INDEXES');
  });
});

describe('selectIndexes with an initial set (second pass)', () => {
  it('keeps the initial choices, measures gains on top of them and counts them against the budget', () => {
    // Prepare: the plain index leaves 60% of the cost (heap fetches of a range scan).
    const plain = candidate('plain', [[0, [600, 600]]]);
    const wider = candidate('wider', [[0, [100, 100]]]);
    const marginal = candidate('marginal', [[0, [550, 550]]]);

    // Act
    const pays = selectIndexes(statements, [plain, wider], { ...options, initial: ['plain'] });
    const noRoom = selectIndexes(statements, [plain, wider], {
      ...options,
      initial: ['plain'],
      maxIndexes: 1,
    });
    const tooSmall = selectIndexes(statements, [plain, marginal], {
      ...options,
      initial: ['plain'],
    });

    // Assess
    expect(pays.chosen).toEqual(['plain', 'wider']);
    expect(noRoom.chosen).toEqual(['plain']);
    expect(tooSmall.chosen).toEqual(['plain']);
    expect(tooSmall.rejected.get('marginal')).toContain('already serve');
  });
});

describe('writeOverheadOf', () => {
  const writes = [
    {
      id: 'ins',
      table: 't',
      kind: 'insert' as const,
      setColumns: [],
      rowsPerCall: 500,
      weightPerHour: 10,
    },
    {
      id: 'upd',
      table: 't',
      kind: 'update' as const,
      setColumns: ['status'],
      rowsPerCall: 1,
      weightPerHour: 600,
    },
    {
      id: 'other',
      table: 'u',
      kind: 'insert' as const,
      setColumns: [],
      rowsPerCall: 1,
      weightPerHour: 1,
    },
  ];

  it('charges every inserted row, and lost HOT updates when the index stores an updated column', () => {
    // Act
    const plain = writeOverheadOf('t', ['created_at'], writes, 1);
    const onStatus = writeOverheadOf('t', ['created_at', 'status'], writes, 1);

    // Assess
    expect(plain).toMatchObject({
      statements: ['ins', 'upd'],
      entriesPerHour: 5_000,
      hotUpdatesLost: false,
    });
    expect(onStatus).toMatchObject({
      entriesPerHour: 5_000 + 1_200,
      hotUpdatesLost: true,
      updatedColumns: ['status'],
    });
    expect(onStatus.costPerHour).toBeGreaterThan(plain.costPerHour);
  });
});
