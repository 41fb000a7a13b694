import type { StatementCounters, StatementDelta } from './statements.ts';

/** What makes a statement "slow" enough to report. */
export interface SlowQueryLimits {
  /** Report at most this many statements per target and run. */
  topN: number;
  /** Interval mean execution time at or above which a statement counts (ms). */
  minMeanMs: number;
  /** Interval calls at or above which a statement counts. */
  minCalls: number;
}

/** Interval activity of one fingerprint (all its pg_stat_statements entries summed). */
export interface SlowStatement extends StatementCounters {
  fingerprint: string;
  /** queryid of the entry that consumed the most time (decimal text: it is a signed int8). */
  queryId: string;
  /** Text of that entry, as pg_stat_statements normalised it ($n for constants). */
  query: string;
  meanExecTimeMs: number;
  stddevExecTimeMs: number;
  /** How many pg_stat_statements entries (users, top-level/nested, queryids) were merged. */
  entries: number;
}

/** What pg_stat_statements shows instead of the text of another role's statement. */
const HIDDEN_QUERY_TEXT = '<insufficient privilege>';

/** The marker on dbopt's own SQL (placed after the first keyword). */
export const DBOPT_MARKER = '/* dbopt */';

const addCounters = (into: StatementCounters, d: StatementCounters): void => {
  into.calls += d.calls;
  into.totalExecTimeMs += d.totalExecTimeMs;
  into.sumSquaresMs2 += d.sumSquaresMs2;
  into.rows += d.rows;
  into.sharedBlksHit += d.sharedBlksHit;
  into.sharedBlksRead += d.sharedBlksRead;
  into.tempBlksWritten += d.tempBlksWritten;
};

interface Group extends StatementCounters {
  key: string;
  queryId: string;
  query: string;
  topMs: number;
  entries: number;
}

const groupBy = (
  items: Iterable<{ key: string; counters: StatementCounters; queryId: string; query: string }>,
  entriesOf: (item: unknown) => number,
): Group[] => {
  const groups = new Map<string, Group>();
  for (const item of items) {
    let g = groups.get(item.key);
    if (!g) {
      g = {
        key: item.key,
        queryId: item.queryId,
        query: item.query,
        topMs: -1,
        entries: 0,
        calls: 0,
        totalExecTimeMs: 0,
        sumSquaresMs2: 0,
        rows: 0,
        sharedBlksHit: 0,
        sharedBlksRead: 0,
        tempBlksWritten: 0,
      };
      groups.set(item.key, g);
    }
    if (item.counters.totalExecTimeMs > g.topMs) {
      g.topMs = item.counters.totalExecTimeMs;
      g.queryId = item.queryId;
      g.query = item.query;
    }
    g.entries += entriesOf(item);
    addCounters(g, item.counters);
  }
  return [...groups.values()];
};

/** Deltas summed per queryid, without our own SQL and other roles' hidden statements. */
const queryIdGroups = (deltas: readonly StatementDelta[]): Group[] =>
  groupBy(
    (function* () {
      for (const d of deltas) {
        // Our own SQL, and other roles' statements hidden from a role without pg_read_all_stats.
        if (d.entry.query.includes(DBOPT_MARKER) || d.entry.query === HIDDEN_QUERY_TEXT) continue;
        yield { key: d.entry.queryId, counters: d, queryId: d.entry.queryId, query: d.entry.query };
      }
    })(),
    () => 1,
  );

const passes = (g: StatementCounters, limits: SlowQueryLimits): boolean =>
  g.calls >= limits.minCalls && g.calls > 0 && g.totalExecTimeMs / g.calls >= limits.minMeanMs;

const byTotalDesc = (a: StatementCounters, b: StatementCounters): number =>
  b.totalExecTimeMs - a.totalExecTimeMs;

/**
 * The slow statements of an interval: deltas grouped by fingerprint, ranked by time consumed
 * in the interval, the top `topN` whose interval mean and calls reach the limits. Pure.
 *
 * Fingerprinting (a WASM parse) is the expensive step, so entries are first summed per queryid
 * (users and top-level/nested variants of one query share it) and only the candidates that can
 * still reach the top are fingerprinted. `fingerprintOf` returns null for text the parser
 * rejects (e.g. truncated by track_activity_query_size); such a statement keeps
 * `queryid:<id>` as its fingerprint. Statements carrying the `/* dbopt *\/` marker are skipped,
 * and so are those `include` rejects (evaluated on candidates only; the collectors keep DML).
 */
export const rankSlowStatements = (
  deltas: readonly StatementDelta[],
  limits: SlowQueryLimits,
  fingerprintOf: (query: string) => string | null,
  include: (query: string) => boolean = () => true,
): SlowStatement[] => {
  if (limits.topN <= 0) return [];
  const byQueryId = queryIdGroups(deltas)
    .filter((g) => passes(g, limits))
    .sort(byTotalDesc);
  // Two queryids rarely share a fingerprint, so a few spare candidates cover merges.
  const wanted = limits.topN * 2 + 10;
  const candidates: Group[] = [];
  for (const g of byQueryId) {
    if (candidates.length >= wanted) break;
    if (include(g.query)) candidates.push(g);
  }
  const merged = groupBy(
    candidates.map((g) => ({
      key: fingerprintOf(g.query) ?? `queryid:${g.queryId}`,
      counters: g,
      queryId: g.queryId,
      query: g.query,
      group: g,
    })),
    (item) => (item as { group: Group }).group.entries,
  );
  return merged
    .filter((g) => passes(g, limits))
    .sort(byTotalDesc)
    .slice(0, limits.topN)
    .map((g) => {
      const mean = g.calls > 0 ? g.totalExecTimeMs / g.calls : 0;
      return {
        fingerprint: g.key,
        queryId: g.queryId,
        query: g.query,
        calls: g.calls,
        totalExecTimeMs: g.totalExecTimeMs,
        sumSquaresMs2: g.sumSquaresMs2,
        rows: g.rows,
        sharedBlksHit: g.sharedBlksHit,
        sharedBlksRead: g.sharedBlksRead,
        tempBlksWritten: g.tempBlksWritten,
        meanExecTimeMs: mean,
        stddevExecTimeMs:
          g.calls > 0 ? Math.sqrt(Math.max(0, g.sumSquaresMs2 / g.calls - mean * mean)) : 0,
        entries: g.entries,
      };
    });
};

/**
 * {@link rankSlowStatements} for deltas read without query texts (a reader with a response size
 * limit, e.g. the RDS Data API): texts are fetched only for the queryids that can reach the
 * top, `batchSize` at a time in the order of their interval time (default 3 × topN + 10,
 * over the `2 × topN + 10` candidates the ranking fingerprints).
 *
 * The own-SQL, hidden-text and `include` filters need the text, so they run on the fetched
 * texts. Fetching stops once enough candidates pass them with at least the interval time of
 * the first queryid not fetched yet (filters only remove time, so none of the rest can
 * overtake them): the result is the one {@link rankSlowStatements} gives with every text.
 * `loadTexts` returns the texts of the given queryids keyed by entry key; an entry without
 * one (evicted meanwhile) has the text ''.
 */
export const rankSlowStatementsFetchingTexts = async (
  deltas: readonly StatementDelta[],
  limits: SlowQueryLimits,
  fingerprintOf: (query: string) => string | null,
  include: (query: string) => boolean,
  loadTexts: (queryIds: string[]) => Promise<ReadonlyMap<string, string>>,
  batchSize = limits.topN * 3 + 10,
): Promise<SlowStatement[]> => {
  if (limits.topN <= 0 || deltas.length === 0) return [];
  // Leaving entries out can raise a group's mean, but never above its slowest entry's mean,
  // and never raise its calls: a queryid failing either bound cannot become a candidate.
  const slowestMeanMs = new Map<string, number>();
  for (const d of deltas) {
    const mean = d.calls > 0 ? d.totalExecTimeMs / d.calls : 0;
    if (mean > (slowestMeanMs.get(d.entry.queryId) ?? -1)) slowestMeanMs.set(d.entry.queryId, mean);
  }
  const order = groupBy(
    deltas.map((d) => ({ key: d.entry.queryId, counters: d, queryId: d.entry.queryId, query: '' })),
    () => 1,
  )
    .filter(
      (g) => g.calls >= limits.minCalls && (slowestMeanMs.get(g.queryId) ?? 0) >= limits.minMeanMs,
    )
    .sort(byTotalDesc);
  const wanted = limits.topN * 2 + 10;
  const fetched = new Set<string>();
  const texts = new Map<string, string>();
  let known: StatementDelta[] = [];
  for (let next = 0; next < order.length; ) {
    const ids = order.slice(next, next + Math.max(1, batchSize)).map((g) => g.queryId);
    next += ids.length;
    for (const [key, text] of await loadTexts(ids)) texts.set(key, text);
    for (const id of ids) fetched.add(id);
    known = deltas
      .filter((d) => fetched.has(d.entry.queryId))
      .map((d) => ({ ...d, entry: { ...d.entry, query: texts.get(d.entry.key) ?? '' } }));
    const boundaryMs = order[next]?.totalExecTimeMs ?? Number.NEGATIVE_INFINITY;
    if (settledCandidates(known, limits, include, boundaryMs) >= wanted) break;
  }
  return rankSlowStatements(known, limits, fingerprintOf, include);
};

/** Candidates (as {@link rankSlowStatements} picks them) with at least `boundaryMs` of time. */
const settledCandidates = (
  deltas: readonly StatementDelta[],
  limits: SlowQueryLimits,
  include: (query: string) => boolean,
  boundaryMs: number,
): number => {
  let settled = 0;
  for (const g of queryIdGroups(deltas)) {
    if (g.totalExecTimeMs >= boundaryMs && passes(g, limits) && include(g.query)) settled += 1;
  }
  return settled;
};
