import type { Queryable } from '#shared/db';
import { isAppError } from '#shared/errors';
import {
  STATEMENTS_EXTENSION_SQL,
  STATEMENTS_INFO_SQL,
  type StatementColumns,
  statementColumnsFor,
  statementCountersPageSqlFor,
  statementsSqlFor,
  statementTextsPageSqlFor,
} from './catalog.ts';
import { pgStatStatementsMissingMessage, StatsError } from './errors.ts';

/** Cumulative counters of one pg_stat_statements entry. Times in ms. */
export interface StatementCounters {
  calls: number;
  totalExecTimeMs: number;
  /** Σ(exec time²) in ms², rebuilt from stddev and mean (see `statementsSqlFor`). */
  sumSquaresMs2: number;
  rows: number;
  sharedBlksHit: number;
  sharedBlksRead: number;
  tempBlksWritten: number;
}

/** One pg_stat_statements entry as read. */
export interface StatementEntry extends StatementCounters {
  /** `userid:dbid:queryid:toplevel` — pg_stat_statements' own identity of an entry. */
  key: string;
  userId: string;
  dbId: string;
  queryId: string;
  /** null before PostgreSQL 14 (no `toplevel` column). */
  toplevel: boolean | null;
  query: string;
  /** When this entry's counters started (PostgreSQL 17+), else null. */
  statsSince: string | null;
}

/** One reading of pg_stat_statements for one database. */
export interface StatementSnapshot {
  /** ISO-8601 time of the reading. */
  takenAt: string;
  serverVersionNum: number;
  /** pg_stat_statements_info.stats_reset (PG 14+): moves on a full reset only. */
  statsResetAt: string | null;
  /** pg_stat_statements_info.dealloc (PG 14+): entries evicted to make room. */
  dealloc: number | null;
  entries: StatementEntry[];
  /**
   * Set when the reading was paged without query texts (a target with a response size limit):
   * every `query` is '' until {@link readStatementTexts} fetched it for the candidates.
   */
  textsPending?: { columns: StatementColumns; paging: StatementPaging };
}

/**
 * How to read pg_stat_statements through a reader that limits its response size (the RDS
 * Data API: 1 MiB per response, 64 KB per row): counters without texts in pages of
 * `counterPageRows`, then texts of the ranked candidates only, each cut to `textMaxChars`,
 * in pages of about `textPageBytes` of JSON.
 */
export interface StatementPaging {
  counterPageRows: number;
  textPageBytes: number;
  textMaxChars: number;
}

/**
 * Paging for the RDS Data API. 1,000 counter rows of at most ~400 bytes of JSON each is
 * ~400 KB (and the Data API's documented 1,000-records limit); 16,000 characters are at most
 * 64,000 bytes (UTF-8, 4 bytes a character), under the 64 KB row limit; a text page is at most
 * 400 KB plus one text, under 1 MiB with room for the non-ASCII escaping of the JSON records.
 */
export const DATA_API_STATEMENT_PAGING: StatementPaging = Object.freeze({
  counterPageRows: 1000,
  textPageBytes: 400_000,
  textMaxChars: 16_000,
});

/**
 * The stored form of a {@link StatementSnapshot}: no query texts (the next diff only needs the
 * counters) and the counters in one flat array, 7 per entry in {@link COUNTER_FIELDS} order.
 * Compact and fast to (de)serialise as jsonb: 10k entries are ~1 MB (the repository stores a
 * payload that large in parts of 60,000 bytes, under the Data API's 64 KB row limit).
 */
export interface StoredStatementSnapshot {
  format: 1;
  takenAt: string;
  serverVersionNum: number;
  statsResetAt: string | null;
  dealloc: number | null;
  keys: string[];
  counters: number[];
}

const COUNTER_FIELDS = [
  'calls',
  'totalExecTimeMs',
  'sumSquaresMs2',
  'rows',
  'sharedBlksHit',
  'sharedBlksRead',
  'tempBlksWritten',
] as const satisfies readonly (keyof StatementCounters)[];
const WIDTH = COUNTER_FIELDS.length;

/** Keeps the counters, drops the texts. */
export const toStoredStatementSnapshot = (s: StatementSnapshot): StoredStatementSnapshot => {
  const keys = new Array<string>(s.entries.length);
  const counters = new Array<number>(s.entries.length * WIDTH);
  s.entries.forEach((e, i) => {
    keys[i] = e.key;
    const o = i * WIDTH;
    counters[o] = e.calls;
    counters[o + 1] = e.totalExecTimeMs;
    counters[o + 2] = e.sumSquaresMs2;
    counters[o + 3] = e.rows;
    counters[o + 4] = e.sharedBlksHit;
    counters[o + 5] = e.sharedBlksRead;
    counters[o + 6] = e.tempBlksWritten;
  });
  return {
    format: 1,
    takenAt: s.takenAt,
    serverVersionNum: s.serverVersionNum,
    statsResetAt: s.statsResetAt,
    dealloc: s.dealloc,
    keys,
    counters,
  };
};

/**
 * Checks a payload read back from the repository; anything else is a {@link StatsError}
 * `SNAPSHOT_INVALID` (callers treat it as "no previous snapshot").
 */
export const parseStoredStatementSnapshot = (value: unknown): StoredStatementSnapshot => {
  const v = value as Partial<StoredStatementSnapshot> | null;
  if (
    v?.format !== 1 ||
    typeof v.takenAt !== 'string' ||
    Number.isNaN(Date.parse(v.takenAt)) ||
    typeof v.serverVersionNum !== 'number' ||
    !Array.isArray(v.keys) ||
    !Array.isArray(v.counters) ||
    v.counters.length !== v.keys.length * WIDTH
  ) {
    throw new StatsError('SNAPSHOT_INVALID', 'stored statement snapshot has an unexpected shape');
  }
  return v as StoredStatementSnapshot;
};

type StatementRow = {
  userid: string;
  dbid: string;
  queryid: string;
  toplevel: boolean | null;
  stats_since: string | null;
  query: string | null;
  calls: number;
  total_ms: number;
  sum_squares_ms2: number | null;
  rows: number;
  shared_blks_hit: number;
  shared_blks_read: number;
  temp_blks_written: number;
};

/** SQLSTATE 55000 "pg_stat_statements must be loaded via shared_preload_libraries". */
const NOT_PRELOADED_STATE = '55000';

/** Reads which pg_stat_statements columns this server has; throws when it is missing. */
export const readStatementColumns = async (
  q: Queryable,
  target: string,
  serverVersionNum: number,
): Promise<StatementColumns> => {
  const { rows } = await q.query<{ extversion: string }>(STATEMENTS_EXTENSION_SQL);
  const ext = rows[0];
  if (!ext) {
    throw new StatsError('PG_STAT_STATEMENTS_MISSING', pgStatStatementsMissingMessage(target), {
      details: { target, reason: 'extension not created' },
    });
  }
  return statementColumnsFor(serverVersionNum, ext.extversion);
};

/** Rethrows "not preloaded" as the actionable {@link StatsError}; other errors unchanged. */
export const mapStatementsError = (err: unknown, target: string): unknown => {
  if (err instanceof StatsError) return err;
  const sqlState =
    (isAppError(err) ? err.details.sqlState : (err as { code?: string } | null)?.code) ?? '';
  const message = err instanceof Error ? err.message : String(err);
  if (sqlState === NOT_PRELOADED_STATE || message.includes('shared_preload_libraries')) {
    return new StatsError('PG_STAT_STATEMENTS_MISSING', pgStatStatementsMissingMessage(target), {
      cause: err,
      details: { target, reason: 'not in shared_preload_libraries' },
    });
  }
  return err;
};

/**
 * Reads pg_stat_statements of the connected database (our own `/* dbopt *\/` statements left
 * out). Run it inside a read-only transaction.
 *
 * With `paging` (a reader limited to 1 MiB per response, the RDS Data API) the counters come
 * in keyset pages without texts, our own statements included (their text is not read), and
 * `textsPending` says to fetch the texts of the candidates with {@link readStatementTexts}
 * (`rankSlowStatementsFetchingTexts` does, and skips our own statements then).
 *
 * @throws StatsError `PG_STAT_STATEMENTS_MISSING` with the steps to enable it.
 */
export const readStatementSnapshot = async (
  q: Queryable,
  options: {
    target: string;
    serverVersionNum: number;
    now?: () => Date;
    /** Page the read (counters first, texts later); absent: one statement with the texts. */
    paging?: StatementPaging;
  },
): Promise<StatementSnapshot> => {
  try {
    const columns = await readStatementColumns(q, options.target, options.serverVersionNum);
    const rows = options.paging
      ? await readCounterPages(q, columns, options.paging.counterPageRows)
      : (await q.query<StatementRow>(statementsSqlFor(columns))).rows;
    let statsResetAt: string | null = null;
    let dealloc: number | null = null;
    if (columns.info) {
      const info = (
        await q.query<{ dealloc: number; stats_reset: string | null }>(STATEMENTS_INFO_SQL)
      ).rows[0];
      statsResetAt = info?.stats_reset ?? null;
      dealloc = info ? Number(info.dealloc) : null;
    }
    return {
      takenAt: (options.now?.() ?? new Date()).toISOString(),
      serverVersionNum: options.serverVersionNum,
      statsResetAt,
      dealloc,
      entries: rows.map(toEntry),
      ...(options.paging ? { textsPending: { columns, paging: options.paging } } : {}),
    };
  } catch (err) {
    throw mapStatementsError(err, options.target);
  }
};

/** The keyset parameters after `row` (userid, queryid[, toplevel]); NULLs before the first page. */
const keysetParams = (
  columns: StatementColumns,
  row: { userid: string; queryid: string; toplevel: boolean | null } | undefined,
): unknown[] => {
  const key = row ? [row.userid, row.queryid, row.toplevel] : [null, null, null];
  return columns.toplevel ? key : key.slice(0, 2);
};

/** All counters, `pageRows` at a time in key order (keyset: no OFFSET re-scans, no gaps). */
const readCounterPages = async (
  q: Queryable,
  columns: StatementColumns,
  pageRows: number,
): Promise<StatementRow[]> => {
  const sql = statementCountersPageSqlFor(columns);
  const all: StatementRow[] = [];
  let last: StatementRow | undefined;
  for (;;) {
    const { rows } = await q.query<StatementRow>(sql, [...keysetParams(columns, last), pageRows]);
    for (const r of rows) all.push(r);
    if (rows.length < pageRows) return all;
    last = rows[rows.length - 1];
  }
};

type TextRow = {
  userid: string;
  queryid: string;
  toplevel: boolean | null;
  query: string | null;
  /** Bytes of the JSON-escaped texts up to and including this row's, within the page. */
  end_bytes: number;
};

/**
 * Query texts of the entries with these queryids (all users, top-level and nested), keyed
 * like {@link StatementEntry.key}, each cut to `paging.textMaxChars`, read in pages of about
 * `paging.textPageBytes`. For a snapshot read with `paging` (see `textsPending`).
 */
export const readStatementTexts = async (
  q: Queryable,
  options: {
    target: string;
    dbId: string;
    columns: StatementColumns;
    paging: StatementPaging;
    queryIds: readonly string[];
  },
): Promise<Map<string, string>> => {
  const texts = new Map<string, string>();
  if (options.queryIds.length === 0) return texts;
  const { columns, paging } = options;
  const sql = statementTextsPageSqlFor(columns);
  let last: TextRow | undefined;
  try {
    for (;;) {
      const { rows } = await q.query<TextRow>(sql, [
        options.queryIds,
        paging.textMaxChars,
        paging.textPageBytes,
        ...keysetParams(columns, last),
      ]);
      for (const r of rows) texts.set(entryKey({ ...r, dbid: options.dbId }), r.query ?? '');
      last = rows[rows.length - 1];
      // The server ends a page only once its texts reach the budget: below it, none is left.
      if (!last || Number(last.end_bytes) < paging.textPageBytes) return texts;
    }
  } catch (err) {
    throw mapStatementsError(err, options.target);
  }
};

const entryKey = (r: {
  userid: string;
  dbid: string;
  queryid: string;
  toplevel: boolean | null;
}): string =>
  `${r.userid}:${r.dbid}:${r.queryid}:${r.toplevel === null ? '' : r.toplevel ? 't' : 'f'}`;

const toEntry = (r: StatementRow): StatementEntry => ({
  key: entryKey(r),
  userId: r.userid,
  dbId: r.dbid,
  queryId: r.queryid,
  toplevel: r.toplevel,
  query: r.query ?? '',
  statsSince: r.stats_since,
  calls: Number(r.calls),
  totalExecTimeMs: Number(r.total_ms),
  sumSquaresMs2: Number(r.sum_squares_ms2 ?? 0),
  rows: Number(r.rows),
  sharedBlksHit: Number(r.shared_blks_hit),
  sharedBlksRead: Number(r.shared_blks_read),
  tempBlksWritten: Number(r.temp_blks_written),
});

/** One entry's activity within the interval. Times in ms. */
export interface StatementDelta extends StatementCounters {
  entry: StatementEntry;
  meanExecTimeMs: number;
  stddevExecTimeMs: number;
  /**
   * The entry's current counters were taken as the interval's activity: it is new since the
   * previous snapshot, went backwards (evicted and re-entered, or reset), or all statistics
   * were reset.
   */
  countedFully: boolean;
}

/** The result of {@link diffStatementStats}. */
export interface StatementDiff {
  /**
   * No usable previous snapshot (first run, unreadable state, server version changed): the
   * current reading is only stored as the baseline and nothing is counted.
   */
  baseline: boolean;
  /** Counters were reset between the readings (full reset, or entries that went backwards). */
  reset: boolean;
  /** Seconds between the two readings; 0 for a baseline. */
  intervalSeconds: number;
  /** Entries whose counters restarted (deallocated and re-entered, or a partial reset). */
  wentBackwards: number;
  /** Entries new since the previous reading. */
  added: number;
  /** Entries of the previous reading that are gone (evicted or reset). */
  removed: number;
  /** Evictions in the interval from pg_stat_statements_info.dealloc (PG 14+), else null. */
  deallocated: number | null;
  /** Entries with calls in the interval, in input order. */
  deltas: StatementDelta[];
}

const meanAndStddev = (
  calls: number,
  totalMs: number,
  sumSquaresMs2: number,
): { meanExecTimeMs: number; stddevExecTimeMs: number } => {
  if (calls <= 0) return { meanExecTimeMs: 0, stddevExecTimeMs: 0 };
  const mean = totalMs / calls;
  // Population variance E[x²] − E[x]², clamped: float rounding can dip a tiny bit below 0.
  const variance = Math.max(0, sumSquaresMs2 / calls - mean * mean);
  return { meanExecTimeMs: mean, stddevExecTimeMs: Math.sqrt(variance) };
};

/** An entry's cumulative counters as if they were one interval's (reports since stats reset). */
export const fullDelta = (entry: StatementEntry): StatementDelta => ({
  entry,
  calls: entry.calls,
  totalExecTimeMs: entry.totalExecTimeMs,
  sumSquaresMs2: entry.sumSquaresMs2,
  rows: entry.rows,
  sharedBlksHit: entry.sharedBlksHit,
  sharedBlksRead: entry.sharedBlksRead,
  tempBlksWritten: entry.tempBlksWritten,
  ...meanAndStddev(entry.calls, entry.totalExecTimeMs, entry.sumSquaresMs2),
  countedFully: true,
});

/**
 * Per-interval activity of every statement between two readings, keyed by pg_stat_statements'
 * entry identity (userid, dbid, queryid, toplevel). Pure.
 *
 * - no previous reading, another server version, or a stats_reset that moved to a time
 *   before the previous reading (another server: failover, target changed): a baseline,
 *   nothing counted;
 * - pg_stat_statements_info.stats_reset moved into the interval (full reset): every current
 *   entry was created after the reset, so its counters are counted fully (`reset`);
 * - an entry new since the previous reading was created inside the interval: counted fully;
 * - an entry whose counters went backwards (or, on PostgreSQL 17+, whose `stats_since` is
 *   newer than the previous reading) was deallocated and re-entered or reset by a
 *   partial `pg_stat_statements_reset(userid, dbid, queryid)`: counted fully, `reset` flagged.
 * No delta is ever negative.
 *
 * @example
 * const diff = diffStatementStats(prevStored, await readStatementSnapshot(tx, opts));
 * if (!diff.baseline) rankSlowStatements(diff.deltas, limits, fingerprintOf);
 */
export const diffStatementStats = (
  prev: StoredStatementSnapshot | undefined,
  curr: StatementSnapshot,
): StatementDiff => {
  const prevTakenMs = Date.parse(prev?.takenAt ?? '');
  const fullReset = prev !== undefined && prev.statsResetAt !== curr.statsResetAt;
  // A reset inside the interval sets stats_reset to a time after the previous reading. One
  // that does not (an older stats_reset, or none) belongs to another server: a failover to a
  // replica, or the target pointed elsewhere. Its cumulative counters (weeks of a reader's
  // traffic) are no interval's activity.
  const resetBeforeInterval = fullReset && !(Date.parse(curr.statsResetAt ?? '') > prevTakenMs);
  if (!prev || prev.serverVersionNum !== curr.serverVersionNum || resetBeforeInterval) {
    return {
      baseline: true,
      reset: false,
      intervalSeconds: 0,
      wentBackwards: 0,
      added: 0,
      removed: 0,
      deallocated: null,
      deltas: [],
    };
  }
  const intervalSeconds = Math.max(0, (Date.parse(curr.takenAt) - prevTakenMs) / 1000);
  const index = new Map<string, number>();
  for (let i = 0; i < prev.keys.length; i += 1) index.set(prev.keys[i] as string, i * WIDTH);
  const c = prev.counters;
  const deltas: StatementDelta[] = [];
  let wentBackwards = 0;
  let added = 0;
  let matched = 0;
  for (const entry of curr.entries) {
    const o = index.get(entry.key);
    if (o !== undefined) matched += 1;
    // PostgreSQL 17 says when an entry's counters started: a re-entered entry is caught even
    // when its new counts already exceed the old ones.
    const restarted = entry.statsSince !== null && Date.parse(entry.statsSince) > prevTakenMs;
    if (fullReset || o === undefined || restarted) {
      if (o === undefined) added += 1;
      else if (restarted && !fullReset) wentBackwards += 1;
      if (entry.calls > 0) deltas.push(fullDelta(entry));
      continue;
    }
    const calls = entry.calls - (c[o] as number);
    const totalExecTimeMs = entry.totalExecTimeMs - (c[o + 1] as number);
    const sumSquaresMs2 = entry.sumSquaresMs2 - (c[o + 2] as number);
    const rows = entry.rows - (c[o + 3] as number);
    const sharedBlksHit = entry.sharedBlksHit - (c[o + 4] as number);
    const sharedBlksRead = entry.sharedBlksRead - (c[o + 5] as number);
    const tempBlksWritten = entry.tempBlksWritten - (c[o + 6] as number);
    if (
      calls < 0 ||
      totalExecTimeMs < 0 ||
      rows < 0 ||
      sharedBlksHit < 0 ||
      sharedBlksRead < 0 ||
      tempBlksWritten < 0
    ) {
      wentBackwards += 1;
      if (entry.calls > 0) deltas.push(fullDelta(entry));
      continue;
    }
    if (calls === 0) continue;
    deltas.push({
      entry,
      calls,
      totalExecTimeMs,
      sumSquaresMs2: Math.max(0, sumSquaresMs2),
      rows,
      sharedBlksHit,
      sharedBlksRead,
      tempBlksWritten,
      ...meanAndStddev(calls, totalExecTimeMs, Math.max(0, sumSquaresMs2)),
      countedFully: false,
    });
  }
  const deallocDelta =
    prev.dealloc !== null && curr.dealloc !== null ? curr.dealloc - prev.dealloc : null;
  return {
    baseline: false,
    reset: fullReset || wentBackwards > 0 || (deallocDelta !== null && deallocDelta < 0),
    intervalSeconds,
    wentBackwards,
    added,
    removed: prev.keys.length - matched,
    deallocated: deallocDelta !== null && deallocDelta >= 0 ? deallocDelta : null,
    deltas,
  };
};
