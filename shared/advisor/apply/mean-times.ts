import type { Queryable } from '#shared/db';

/** A statement's pg_stat_statements counters when an index was built. */
export interface MeanTimeBaseline {
  readonly queryId: string;
  readonly calls: number;
  readonly totalExecTimeMs: number;
}

/** Mean time before the index (cumulative up to the build) and since (counter deltas). */
export interface MeanTimeComparison {
  readonly queryId: string;
  readonly meanBeforeMs: number;
  readonly meanAfterMs: number;
  readonly callsAfter: number;
}

export interface MeanTimeCheck {
  /** slower: some statement's mean grew by more than the tolerance; insufficient: too few calls since. */
  readonly verdict: 'not_slower' | 'slower' | 'insufficient_data';
  readonly statements: MeanTimeComparison[];
  readonly checkedAt: string;
}

const SQL_COUNTERS = `
SELECT /* dbopt */ s.queryid::text AS query_id,
  sum(s.calls)::float8 AS calls,
  sum(s.total_exec_time)::float8 AS total_ms
FROM pg_stat_statements s
JOIN pg_database d ON d.oid = s.dbid
WHERE d.datname = current_database()
  AND s.queryid = ANY($1::bigint[])
GROUP BY s.queryid`;

const SQL_HAS_PG_STAT_STATEMENTS = `
SELECT /* dbopt */ 1
FROM pg_extension
WHERE extname = 'pg_stat_statements'`;

/**
 * The counters of the given pg_stat_statements queryids right now (empty when the extension
 * is missing). Stored at build time, they let a later run compute the mean time *since* the
 * build from counter deltas, instead of a cumulative mean that mixes before and after.
 */
export const readMeanTimeBaselines = async (
  q: Queryable,
  queryIds: readonly string[],
): Promise<MeanTimeBaseline[]> => {
  if (queryIds.length === 0) return [];
  const { rows: installed } = await q.query(SQL_HAS_PG_STAT_STATEMENTS);
  if (installed.length === 0) return [];
  const { rows } = await q.query<{ query_id: string; calls: number; total_ms: number }>(
    SQL_COUNTERS,
    [[...new Set(queryIds)]],
  );
  return rows.map((r) => ({
    queryId: r.query_id,
    calls: Number(r.calls),
    totalExecTimeMs: Number(r.total_ms),
  }));
};

/**
 * Compares each statement's mean time since the build with its mean before. Needs at least
 * `minCalls` calls since the build for every statement; a counter that went backwards
 * (pg_stat_statements_reset) counts as insufficient data.
 */
export const compareMeanTimes = async (
  q: Queryable,
  baselines: readonly MeanTimeBaseline[],
  options: { minCalls: number; slowerTolerance: number },
): Promise<MeanTimeCheck> => {
  const now = new Map(
    (
      await readMeanTimeBaselines(
        q,
        baselines.map((b) => b.queryId),
      )
    ).map((c) => [c.queryId, c]),
  );
  const statements: MeanTimeComparison[] = [];
  let insufficient = baselines.length === 0;
  for (const before of baselines) {
    const current = now.get(before.queryId);
    const callsAfter = current ? current.calls - before.calls : 0;
    if (!current || callsAfter < options.minCalls || before.calls <= 0) {
      insufficient = true;
      continue;
    }
    statements.push({
      queryId: before.queryId,
      meanBeforeMs: before.totalExecTimeMs / before.calls,
      meanAfterMs: (current.totalExecTimeMs - before.totalExecTimeMs) / callsAfter,
      callsAfter,
    });
  }
  const slower = statements.some(
    (s) => s.meanAfterMs > s.meanBeforeMs * (1 + options.slowerTolerance),
  );
  return {
    verdict: slower ? 'slower' : insufficient ? 'insufficient_data' : 'not_slower',
    statements,
    checkedAt: new Date().toISOString(),
  };
};
