import { describe, expect, it } from 'vitest';
import { compareMeanTimes } from '#shared/advisor';
import type { Queryable } from '#shared/db';

/** pg_stat_statements as it reads now: installed, with these counters per queryid. */
const statStatements = (
  counters: Array<{ query_id: string; calls: number; total_ms: number }>,
): Queryable => ({
  query: async (sql: string) => ({
    rows: (sql.includes('pg_extension') ? [{ '?column?': 1 }] : counters) as never[],
  }),
});

const BASELINE = [{ queryId: '11', calls: 100, totalExecTimeMs: 1_000 }]; // 10 ms before

describe('compareMeanTimes', () => {
  it.each([
    ['faster since the build', { calls: 200, total_ms: 1_200 }, 'not_slower', 2],
    ['slightly slower, within 10 %', { calls: 200, total_ms: 2_050 }, 'not_slower', 10.5],
    ['more than 10 % slower', { calls: 200, total_ms: 2_500 }, 'slower', 15],
  ])('%s', async (_name, now, verdict, meanAfterMs) => {
    // Act
    const check = await compareMeanTimes(statStatements([{ query_id: '11', ...now }]), BASELINE, {
      minCalls: 50,
      slowerTolerance: 0.1,
    });
    // Assess
    expect(check.verdict).toBe(verdict);
    expect(check.statements).toEqual([
      { queryId: '11', meanBeforeMs: 10, meanAfterMs, callsAfter: 100 },
    ]);
  });

  it.each([
    ['too few calls since the build', [{ query_id: '11', calls: 120, total_ms: 1_100 }]],
    ['counters reset since the build', [{ query_id: '11', calls: 10, total_ms: 50 }]],
    ['the statement gone from pg_stat_statements', []],
  ])('waits with %s', async (_name, counters) => {
    // Act
    const check = await compareMeanTimes(statStatements(counters), BASELINE, {
      minCalls: 50,
      slowerTolerance: 0.1,
    });
    // Assess
    expect(check.verdict).toBe('insufficient_data');
  });
});
