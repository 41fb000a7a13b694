import { describe, expect, it } from 'vitest';
import { rankSlowStatements, type SlowQueryLimits, type StatementDelta } from '#shared/stats';

const delta = (
  queryId: string,
  query: string,
  calls: number,
  totalExecTimeMs: number,
  extra: Partial<StatementDelta> = {},
): StatementDelta => ({
  entry: {
    key: `1:1:${queryId}:t`,
    userId: '1',
    dbId: '1',
    queryId,
    toplevel: true,
    query,
    statsSince: null,
    calls,
    totalExecTimeMs,
    sumSquaresMs2: 0,
    rows: 0,
    sharedBlksHit: 0,
    sharedBlksRead: 0,
    tempBlksWritten: 0,
  },
  calls,
  totalExecTimeMs,
  sumSquaresMs2: calls > 0 ? (totalExecTimeMs / calls) ** 2 * calls : 0,
  rows: calls,
  sharedBlksHit: 0,
  sharedBlksRead: 0,
  tempBlksWritten: 0,
  meanExecTimeMs: calls > 0 ? totalExecTimeMs / calls : 0,
  stddevExecTimeMs: 0,
  countedFully: false,
  ...extra,
});

const open: SlowQueryLimits = { topN: 10, minMeanMs: 0, minCalls: 1 };
/** A stand-in fingerprint: the text up to WHERE (what differs after it is "a constant"). */
const fp = (query: string): string | null =>
  query.includes('BROKEN') ? null : `fp:${query.split(' WHERE')[0]}`;

describe('rankSlowStatements', () => {
  it('ranks by interval total time, highest first', () => {
    // Act
    const ranked = rankSlowStatements(
      [
        delta('1', 'SELECT a', 10, 50),
        delta('2', 'SELECT b', 2, 400),
        delta('3', 'SELECT c', 5, 100),
      ],
      open,
      fp,
    );
    // Assess
    expect(ranked.map((s) => s.queryId)).toEqual(['2', '3', '1']);
    expect(ranked[0]).toMatchObject({ calls: 2, totalExecTimeMs: 400, meanExecTimeMs: 200 });
  });

  it('merges entries of one fingerprint (users, queryids) into one statement', () => {
    // Act
    const ranked = rankSlowStatements(
      [
        delta('1', 'SELECT a WHERE x = $1', 10, 100),
        delta('2', 'SELECT a WHERE x = $1 AND y = $2', 30, 600),
        delta('3', 'SELECT b', 1, 10),
      ],
      open,
      fp,
    );
    // Assess
    expect(ranked).toHaveLength(2);
    expect(ranked[0]).toMatchObject({
      fingerprint: 'fp:SELECT a',
      calls: 40,
      totalExecTimeMs: 700,
      queryId: '2',
      query: 'SELECT a WHERE x = $1 AND y = $2',
      entries: 2,
    });
  });

  it.each<[string, Partial<SlowQueryLimits>, string[]]>([
    ['top N', { topN: 1 }, ['2']],
    ['minimum mean', { minMeanMs: 50 }, ['2']],
    ['minimum calls', { minCalls: 5 }, ['1', '3']],
  ])('applies the %s limit', (_name, limits, expected) => {
    // Act
    const ranked = rankSlowStatements(
      [
        delta('1', 'SELECT a', 10, 50),
        delta('2', 'SELECT b', 2, 400),
        delta('3', 'SELECT c', 5, 100),
      ],
      { ...open, ...limits },
      fp,
    );
    // Assess
    expect(ranked.map((s) => s.queryId).sort()).toEqual(expected);
  });

  it('skips dbopt’s own statements and hidden texts, and keys unparsable text by queryid', () => {
    // Act
    const ranked = rankSlowStatements(
      [
        delta('1', 'SELECT /* dbopt */ count(*) FROM pg_stat_statements', 5, 9_000),
        delta('2', 'SELECT BROKEN tex', 1, 50),
        delta('3', '<insufficient privilege>', 9, 9_000),
      ],
      open,
      fp,
    );
    // Assess
    expect(ranked.map((s) => s.fingerprint)).toEqual(['queryid:2']);
  });

  it('combines the variance of merged entries from their sums of squares', () => {
    // Prepare: entry A: 2 calls of 10 ms; entry B: 2 calls of 30 ms, same fingerprint.
    const a = delta('1', 'SELECT a WHERE x = 1', 2, 20, { sumSquaresMs2: 200 });
    const b = delta('2', 'SELECT a WHERE x = 2', 2, 60, { sumSquaresMs2: 1_800 });
    // Act
    const [s] = rankSlowStatements([a, b], open, fp);
    // Assess: mean 20 ms, population stddev 10 ms.
    expect(s?.meanExecTimeMs).toBe(20);
    expect(s?.stddevExecTimeMs).toBeCloseTo(10, 9);
  });
});
