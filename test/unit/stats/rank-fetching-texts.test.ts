import { describe, expect, it } from 'vitest';
import type { SlowQueryLimits, StatementDelta } from '#shared/stats';
import { rankSlowStatements, rankSlowStatementsFetchingTexts } from '../../../shared/stats/rank.ts';

const delta = (queryId: string, query: string, calls: number, totalMs: number, userId = '1') =>
  ({
    entry: {
      key: `${userId}:1:${queryId}:t`,
      userId,
      dbId: '1',
      queryId,
      toplevel: true,
      query,
      statsSince: null,
      calls,
      totalExecTimeMs: totalMs,
      sumSquaresMs2: 0,
      rows: 0,
      sharedBlksHit: 0,
      sharedBlksRead: 0,
      tempBlksWritten: 0,
    },
    calls,
    totalExecTimeMs: totalMs,
    sumSquaresMs2: (totalMs / calls) ** 2 * calls,
    rows: calls,
    sharedBlksHit: 0,
    sharedBlksRead: 0,
    tempBlksWritten: 0,
    meanExecTimeMs: totalMs / calls,
    stddevExecTimeMs: 0,
    countedFully: false,
  }) satisfies StatementDelta;

const fp = (query: string): string | null => `fp:${query}`;
const dml = (query: string): boolean => query.startsWith('SELECT');
const limits: SlowQueryLimits = { topN: 2, minMeanMs: 1, minCalls: 1 };

/** Deltas without texts, the texts aside (as a paged Data API read has them). */
const split = (deltas: StatementDelta[]) => ({
  withoutTexts: deltas.map((d) => ({ ...d, entry: { ...d.entry, query: '' } })),
  texts: new Map(deltas.map((d) => [d.entry.key, d.entry.query])),
});

describe('rankSlowStatementsFetchingTexts', () => {
  it.each([
    {
      name: 'fetches one batch when its candidates settle the top',
      leading: [] as StatementDelta[],
      batches: 1,
    },
    {
      name: 'fetches more while the text filters (own SQL, hidden, utility) removed candidates',
      leading: Array.from({ length: 20 }, (_, i) =>
        i % 3 === 0
          ? delta(`own${i}`, `SELECT /* dbopt */ ${i}`, 1, 1e6 - i)
          : i % 3 === 1
            ? delta(`hid${i}`, '<insufficient privilege>', 1, 1e6 - i, '10')
            : delta(`vac${i}`, `VACUUM t${i}`, 1, 1e6 - i),
      ),
      // 16 filtered, then 4 filtered and 12 settled (< the 14 candidates ranked), then more.
      batches: 3,
    },
  ])('$name, and ranks as with every text', async ({ leading, batches }) => {
    // Prepare: 100 statements, a few too fast to ever count (mean < 1 ms) among the slowest.
    const workload = Array.from({ length: 100 }, (_, i) =>
      delta(`q${i}`, `SELECT ${i}`, 10, i % 10 === 1 ? 5 : 10_000 - i),
    );
    const all = [...leading, ...workload];
    const { withoutTexts, texts } = split(all);
    const asked: string[][] = [];
    // Act
    const ranked = await rankSlowStatementsFetchingTexts(
      withoutTexts,
      limits,
      fp,
      dml,
      async (ids) => {
        asked.push(ids);
        return new Map([...texts].filter(([key]) => ids.includes(key.split(':')[2] as string)));
      },
    );
    // Assess
    expect(asked).toHaveLength(batches);
    expect(asked.every((ids) => ids.length <= limits.topN * 3 + 10)).toBe(true);
    expect(asked.flat()).not.toContain('q1');
    expect(ranked).toEqual(rankSlowStatements(all, limits, fp, dml));
    expect(ranked.map((s) => s.queryId)).toEqual(['q0', 'q2']);
  });

  it('gives an entry whose text is gone (evicted meanwhile) the empty text', async () => {
    // Prepare
    const { withoutTexts } = split([delta('q1', 'SELECT 1', 5, 500)]);
    // Act
    const ranked = await rankSlowStatementsFetchingTexts(
      withoutTexts,
      limits,
      fp,
      () => true,
      async () => new Map(),
    );
    // Assess
    expect(ranked.map((s) => [s.queryId, s.query])).toEqual([['q1', '']]);
  });
});
