import { describe, expect, it } from 'vitest';
import {
  diffStatementStats,
  type StatementEntry,
  type StatementSnapshot,
  toStoredStatementSnapshot,
} from '#shared/stats';
import { parseStoredStatementSnapshot } from '../../../shared/stats/statements.ts';

const entry = (queryId: string, counters: Partial<StatementEntry> = {}): StatementEntry => ({
  key: `10:5:${queryId}:t`,
  userId: '10',
  dbId: '5',
  queryId,
  toplevel: true,
  query: `SELECT ${queryId}`,
  statsSince: null,
  calls: 10,
  totalExecTimeMs: 100,
  sumSquaresMs2: 1_000,
  rows: 10,
  sharedBlksHit: 90,
  sharedBlksRead: 10,
  tempBlksWritten: 0,
  ...counters,
});

const snapshot = (
  entries: StatementEntry[],
  overrides: Partial<StatementSnapshot> = {},
): StatementSnapshot => ({
  takenAt: '2026-11-27T10:00:00.000Z',
  serverVersionNum: 150_004,
  statsResetAt: '2026-11-01T00:00:00.000Z',
  dealloc: 0,
  entries,
  ...overrides,
});

const LATER = '2026-11-27T10:05:00.000Z';

describe('diffStatementStats', () => {
  it('treats the first reading as a baseline and counts nothing', () => {
    // Act
    const diff = diffStatementStats(undefined, snapshot([entry('1')]));
    // Assess
    expect(diff).toMatchObject({ baseline: true, reset: false, deltas: [] });
  });

  it('subtracts the previous counters and derives interval mean and stddev', () => {
    // Prepare: 10 calls of 10 ms, then 10 more calls: 5 of 10 ms and 5 of 30 ms.
    const prev = toStoredStatementSnapshot(
      snapshot([entry('1', { calls: 10, totalExecTimeMs: 100, sumSquaresMs2: 1_000 })]),
    );
    const curr = snapshot(
      [
        entry('1', {
          calls: 20,
          totalExecTimeMs: 300,
          sumSquaresMs2: 1_000 + 5 * 100 + 5 * 900,
          rows: 25,
          sharedBlksHit: 190,
          sharedBlksRead: 30,
          tempBlksWritten: 4,
        }),
      ],
      { takenAt: LATER },
    );
    // Act
    const diff = diffStatementStats(prev, curr);
    // Assess
    expect(diff.baseline).toBe(false);
    expect(diff.reset).toBe(false);
    expect(diff.intervalSeconds).toBe(300);
    expect(diff.deltas).toHaveLength(1);
    expect(diff.deltas[0]).toMatchObject({
      calls: 10,
      totalExecTimeMs: 200,
      // Kept for the ranking, which merges entries and derives their stddev from it.
      sumSquaresMs2: 5_000,
      rows: 15,
      sharedBlksHit: 100,
      sharedBlksRead: 20,
      tempBlksWritten: 4,
      meanExecTimeMs: 20,
      countedFully: false,
    });
    expect(diff.deltas[0]?.stddevExecTimeMs).toBeCloseTo(10, 9);
  });

  it('leaves out entries without calls in the interval', () => {
    // Prepare
    const prev = toStoredStatementSnapshot(snapshot([entry('1'), entry('2')]));
    // Act
    const diff = diffStatementStats(
      prev,
      snapshot([entry('1'), entry('2', { calls: 11, totalExecTimeMs: 150 })], { takenAt: LATER }),
    );
    // Assess
    expect(diff.deltas.map((d) => d.entry.queryId)).toEqual(['2']);
    expect(diff.deltas[0]).toMatchObject({ calls: 1, totalExecTimeMs: 50 });
  });

  it('counts an entry new since the previous reading fully', () => {
    // Prepare
    const prev = toStoredStatementSnapshot(snapshot([entry('1')]));
    // Act
    const diff = diffStatementStats(
      prev,
      snapshot([entry('1'), entry('9', { calls: 3, totalExecTimeMs: 30 })], { takenAt: LATER }),
    );
    // Assess
    expect(diff.added).toBe(1);
    expect(diff.reset).toBe(false);
    expect(diff.deltas).toEqual([
      expect.objectContaining({ calls: 3, totalExecTimeMs: 30, countedFully: true }),
    ]);
  });

  it.each<[string, Partial<StatementEntry>]>([
    ['calls', { calls: 4, totalExecTimeMs: 400 }],
    ['total time', { calls: 12, totalExecTimeMs: 50 }],
    ['rows', { calls: 12, rows: 2 }],
    ['shared blocks read', { calls: 12, sharedBlksRead: 1 }],
  ])(
    'treats an entry whose %s went backwards as re-entered: counted fully, reset flagged, never negative',
    (_field, curr) => {
      // Prepare
      const prev = toStoredStatementSnapshot(snapshot([entry('1')]));
      // Act
      const diff = diffStatementStats(prev, snapshot([entry('1', curr)], { takenAt: LATER }));
      // Assess
      expect(diff.reset).toBe(true);
      expect(diff.wentBackwards).toBe(1);
      const d = diff.deltas[0];
      expect(d?.countedFully).toBe(true);
      for (const value of [d?.calls, d?.totalExecTimeMs, d?.rows, d?.sharedBlksRead]) {
        expect(value).toBeGreaterThanOrEqual(0);
      }
      expect(d?.calls).toBe(curr.calls);
    },
  );

  it('counts every entry fully after a full reset (pg_stat_statements_info.stats_reset moved)', () => {
    // Prepare: after the reset the counters are lower for one entry and higher for another.
    const prev = toStoredStatementSnapshot(snapshot([entry('1'), entry('2')]));
    const curr = snapshot([entry('1', { calls: 2 }), entry('2', { calls: 50 })], {
      takenAt: LATER,
      statsResetAt: '2026-11-27T10:02:00.000Z',
    });
    // Act
    const diff = diffStatementStats(prev, curr);
    // Assess
    expect(diff.reset).toBe(true);
    expect(diff.deltas.map((d) => [d.calls, d.countedFully])).toEqual([
      [2, true],
      [50, true],
    ]);
  });

  it('uses stats_since (PostgreSQL 17) to catch a re-entered entry whose counts already grew past the old ones', () => {
    // Prepare
    const prev = toStoredStatementSnapshot(
      snapshot([entry('1', { calls: 3 })], { serverVersionNum: 170_000 }),
    );
    const curr = snapshot([entry('1', { calls: 8, statsSince: '2026-11-27T10:03:00.000Z' })], {
      takenAt: LATER,
      serverVersionNum: 170_000,
    });
    // Act
    const diff = diffStatementStats(prev, curr);
    // Assess
    expect(diff.deltas[0]).toMatchObject({ calls: 8, countedFully: true });
    expect(diff.reset).toBe(true);
  });

  it('starts a new baseline when the server version changed (upgrade, failover)', () => {
    // Prepare
    const prev = toStoredStatementSnapshot(snapshot([entry('1')]));
    // Act
    const diff = diffStatementStats(
      prev,
      snapshot([entry('1', { calls: 99 })], { takenAt: LATER, serverVersionNum: 160_000 }),
    );
    // Assess
    expect(diff.baseline).toBe(true);
    expect(diff.deltas).toEqual([]);
  });

  it('starts a new baseline when stats_reset moved to before the previous reading (another server: failover to a long-running reader)', () => {
    // Prepare: the promoted reader's counters started three weeks ago.
    const prev = toStoredStatementSnapshot(snapshot([entry('1')]));
    const curr = snapshot([entry('1', { calls: 9_000_000, totalExecTimeMs: 5e7 })], {
      takenAt: LATER,
      statsResetAt: '2026-11-06 08:00:00.123456+00',
    });
    // Act
    const diff = diffStatementStats(prev, curr);
    // Assess
    expect(diff.baseline).toBe(true);
    expect(diff.deltas).toEqual([]);
  });

  it('reports evictions from pg_stat_statements_info.dealloc and entries that disappeared', () => {
    // Prepare
    const prev = toStoredStatementSnapshot(snapshot([entry('1'), entry('2')], { dealloc: 4 }));
    // Act
    const diff = diffStatementStats(prev, snapshot([entry('1')], { takenAt: LATER, dealloc: 7 }));
    // Assess
    expect(diff.deallocated).toBe(3);
    expect(diff.removed).toBe(1);
  });

  it('round-trips the stored form through JSON and rejects a malformed one', () => {
    // Prepare
    const stored = toStoredStatementSnapshot(snapshot([entry('1'), entry('2')]));
    // Act
    const back = parseStoredStatementSnapshot(JSON.parse(JSON.stringify(stored)));
    // Assess
    expect(back).toEqual(stored);
    expect(back.counters).toHaveLength(14);
    expect(() => parseStoredStatementSnapshot({ ...stored, counters: [1, 2] })).toThrow(
      /unexpected shape/,
    );
    expect(() => parseStoredStatementSnapshot(null)).toThrow(/unexpected shape/);
  });
});
