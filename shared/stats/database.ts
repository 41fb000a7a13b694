import type { Queryable } from '#shared/db';
import {
  ACTIVITY_SQL,
  AURORA_CHECK_SQL,
  AURORA_REPLICATION_SQL,
  DATABASE_SQL,
  INDEXES_SQL,
  LOCKS_SQL,
  PRIMARY_REPLICATION_SQL,
  REPLICA_REPLICATION_SQL,
  SERVER_SQL,
  STATEMENTS_EXTENSION_SQL,
  statementColumnsFor,
  statementTotalsSqlFor,
  TABLES_SQL,
} from './catalog.ts';
import { StatsError } from './errors.ts';
import { mapStatementsError } from './statements.ts';

/** The connected server and database. */
export interface ServerInfo {
  serverVersionNum: number;
  database: string;
  inRecovery: boolean;
  serverStartedAt: string;
}

/** Cumulative counters; rates come from two readings. */
export interface DatabaseCounters {
  xactCommit: number;
  xactRollback: number;
  blksHit: number;
  blksRead: number;
  tempBytes: number;
  tempFiles: number;
  deadlocks: number;
  seqScan: number;
  seqTupRead: number;
  idxScan: number;
}

/** One reading of a database's activity and statistics (pg_stat_* views). */
export interface DatabaseSnapshot {
  format: 1;
  takenAt: string;
  server: ServerInfo;
  /** pg_stat_database.stats_reset: moves on pg_stat_reset(). */
  statsResetAt: string | null;
  activity: {
    active: number;
    idle: number;
    idleInTransaction: number;
    /** Sessions waiting for a lock (wait_event_type = 'Lock'). */
    waiting: number;
    longestQuerySeconds: number;
    oldestTransactionSeconds: number;
    longestQueryPid: number | null;
    oldestTransactionPid: number | null;
    /** Client connections on the whole server (ours included) and the limit. */
    connections: number;
    maxConnections: number;
  };
  counters: DatabaseCounters;
  /** Top-level pg_stat_statements calls and time (ms); null without the extension. */
  statements: { calls: number; totalMs: number } | null;
  locks: { mode: string; granted: boolean; locks: number }[];
  tables: {
    tables: number;
    liveTuples: number;
    deadTuples: number;
    /** Worst n_dead_tup / (n_live + n_dead) over tables with ≥ `bigTableRows` rows. */
    worstDeadTupleRatio: number | null;
    /** `schema.table` of that table. */
    worstDeadTupleTable: string | null;
    neverVacuumedWithDead: number;
    oldestVacuumAgeSeconds: number | null;
  };
  indexes: { indexes: number; unusedIndexes: number; unusedIndexBytes: number };
  /** Replicas of a primary (or 1 on a replica) and the worst replay lag; null lag: none. */
  replication: { replicas: number; lagSeconds: number | null };
}

const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** Tables with at least this many rows count for the dead-tuple ratio (small tables churn). */
export const BIG_TABLE_ROWS = 10_000;

/** Reads the server identity (version decides the catalog SQL). */
export const readServerInfo = async (q: Queryable): Promise<ServerInfo> => {
  const row = (
    await q.query<{
      server_version_num: number;
      database: string;
      in_recovery: boolean;
      server_started_at: string;
    }>(SERVER_SQL)
  ).rows[0];
  if (!row) throw new StatsError('STATS_READ_FAILED', 'server information query returned no row');
  return {
    serverVersionNum: Number(row.server_version_num),
    database: row.database,
    inRecovery: Boolean(row.in_recovery),
    serverStartedAt: row.server_started_at,
  };
};

/**
 * Reads a {@link DatabaseSnapshot}. Run it in one read-only transaction: with the default
 * `stats_fetch_consistency = cache` (PG 15+) the counters are consistent within it.
 * A missing pg_stat_statements only leaves `statements` null here.
 */
export const readDatabaseSnapshot = async (
  q: Queryable,
  options: { now?: () => Date; server?: ServerInfo } = {},
): Promise<DatabaseSnapshot> => {
  const server = options.server ?? (await readServerInfo(q));
  const activity = (await q.query(ACTIVITY_SQL)).rows[0] ?? {};
  const db = (await q.query(DATABASE_SQL)).rows[0] ?? {};
  const locks = (
    await q.query<{ mode: string; granted: boolean; locks: number }>(LOCKS_SQL)
  ).rows.map((r) => ({ mode: r.mode, granted: Boolean(r.granted), locks: num(r.locks) }));
  const tables = (await q.query(TABLES_SQL, [BIG_TABLE_ROWS])).rows[0] ?? {};
  const indexes = (await q.query(INDEXES_SQL)).rows[0] ?? {};
  const aurora = (await q.query<{ aurora: boolean }>(AURORA_CHECK_SQL)).rows[0]?.aurora === true;
  const replicationSql = aurora
    ? AURORA_REPLICATION_SQL
    : server.inRecovery
      ? REPLICA_REPLICATION_SQL
      : PRIMARY_REPLICATION_SQL;
  const replication = (await q.query(replicationSql)).rows[0] ?? {};
  let statements: DatabaseSnapshot['statements'] = null;
  const ext = (await q.query<{ extversion: string }>(STATEMENTS_EXTENSION_SQL)).rows[0];
  if (ext) {
    const sql = statementTotalsSqlFor(statementColumnsFor(server.serverVersionNum, ext.extversion));
    // Created but not preloaded, reading fails and would abort the transaction: read inside
    // a savepoint (needs no privilege to check shared_preload_libraries). The slow-query
    // collector reports the missing preload; here the totals are only left out.
    await q.query('SAVEPOINT /* dbopt */ dbopt_statements');
    try {
      const totals = (await q.query(sql)).rows[0] ?? {};
      statements = { calls: num(totals.calls), totalMs: num(totals.total_ms) };
      await q.query('RELEASE /* dbopt */ SAVEPOINT dbopt_statements');
    } catch (err) {
      await q.query('ROLLBACK /* dbopt */ TO SAVEPOINT dbopt_statements');
      const mapped = mapStatementsError(err, server.database);
      if (!(mapped instanceof StatsError && mapped.code === 'PG_STAT_STATEMENTS_MISSING'))
        throw err;
    }
  }
  return {
    format: 1,
    takenAt: (options.now?.() ?? new Date()).toISOString(),
    server,
    statsResetAt: (db.stats_reset as string | null | undefined) ?? null,
    activity: {
      active: num(activity.active),
      idle: num(activity.idle),
      idleInTransaction: num(activity.idle_in_transaction),
      waiting: num(activity.waiting),
      longestQuerySeconds: num(activity.longest_query_seconds),
      oldestTransactionSeconds: num(activity.oldest_transaction_seconds),
      longestQueryPid: numOrNull(activity.longest_query_pid),
      oldestTransactionPid: numOrNull(activity.oldest_transaction_pid),
      // Our own session is a client connection too.
      connections: num(activity.connections) + 1,
      maxConnections: num(activity.max_connections),
    },
    counters: {
      xactCommit: num(db.xact_commit),
      xactRollback: num(db.xact_rollback),
      blksHit: num(db.blks_hit),
      blksRead: num(db.blks_read),
      tempBytes: num(db.temp_bytes),
      tempFiles: num(db.temp_files),
      deadlocks: num(db.deadlocks),
      seqScan: num(tables.seq_scan),
      seqTupRead: num(tables.seq_tup_read),
      idxScan: num(tables.idx_scan),
    },
    statements,
    locks,
    tables: {
      tables: num(tables.tables),
      liveTuples: num(tables.n_live_tup),
      deadTuples: num(tables.n_dead_tup),
      worstDeadTupleRatio: numOrNull(tables.worst_dead_tuple_ratio),
      worstDeadTupleTable: (tables.worst_dead_tuple_table as string | null | undefined) ?? null,
      neverVacuumedWithDead: num(tables.never_vacuumed_with_dead),
      oldestVacuumAgeSeconds: numOrNull(tables.oldest_vacuum_age_seconds),
    },
    indexes: {
      indexes: num(indexes.indexes),
      unusedIndexes: num(indexes.unused_indexes),
      unusedIndexBytes: num(indexes.unused_index_bytes),
    },
    replication: {
      replicas: num(replication.replicas),
      lagSeconds: numOrNull(replication.lag_seconds),
    },
  };
};

/** Checks a stored payload; anything else is `SNAPSHOT_INVALID`. */
export const parseDatabaseSnapshot = (value: unknown): DatabaseSnapshot => {
  const v = value as Partial<DatabaseSnapshot> | null;
  if (
    v?.format !== 1 ||
    typeof v.takenAt !== 'string' ||
    !v.server ||
    !v.counters ||
    !v.activity ||
    !v.tables ||
    !v.indexes ||
    !v.replication
  ) {
    throw new StatsError('SNAPSHOT_INVALID', 'stored database snapshot has an unexpected shape');
  }
  return v as DatabaseSnapshot;
};

/** Per-second (or per-minute) rates of one interval. */
export interface DatabaseRates {
  commitsPerSecond: number;
  rollbacksPerSecond: number;
  blocksReadPerSecond: number;
  tempBytesPerSecond: number;
  deadlocksPerMinute: number;
  /**
   * Sums over pg_stat_user_tables: null when the sum went down (a table was dropped or its
   * counters reset), which says nothing about the database-level counters above.
   */
  seqScansPerSecond: number | null;
  idxScansPerSecond: number | null;
  seqTuplesReadPerSecond: number | null;
}

/** The result of {@link diffDatabaseSnapshots}. */
export interface DatabaseDiff {
  /**
   * No rates this interval: no usable previous reading, or the counters started over
   * (`reset`). The current reading becomes the baseline of the next interval.
   */
  baseline: boolean;
  /** stats_reset moved, the server restarted, or a counter went down. */
  reset: boolean;
  intervalSeconds: number;
  rates: DatabaseRates | null;
  /** Buffer cache hit ratio of the interval (0..1); null without reads or rates. */
  cacheHitRatio: number | null;
  /** Mean top-level statement time of the interval (ms), from pg_stat_statements. */
  meanQueryTimeMs: number | null;
  /** pg_stat_statements went backwards (reset) while the database counters did not. */
  statementsReset: boolean;
}

/** pg_stat_database's own counters: one going down means the database's statistics restarted. */
const COUNTER_KEYS = [
  'xactCommit',
  'xactRollback',
  'blksHit',
  'blksRead',
  'tempBytes',
  'tempFiles',
  'deadlocks',
] as const satisfies readonly (keyof DatabaseCounters)[];

/** Sums over the tables: they also go down when a table is dropped (e.g. an ETL staging table). */
const TABLE_COUNTER_KEYS = [
  'seqScan',
  'seqTupRead',
  'idxScan',
] as const satisfies readonly (keyof DatabaseCounters)[];

/**
 * Turns two readings into per-interval rates. Pure. A pg_stat_database counter that went
 * down, a moved `stats_reset` or another postmaster start time mean the counters started
 * over: the interval is a fresh baseline (no rates, `reset` flagged), never a negative rate.
 * Table sums that went down (a dropped table) only leave the table rates out.
 */
export const diffDatabaseSnapshots = (
  prev: DatabaseSnapshot | undefined,
  curr: DatabaseSnapshot,
): DatabaseDiff => {
  const none = {
    rates: null,
    cacheHitRatio: null,
    meanQueryTimeMs: null,
    statementsReset: false,
  };
  if (!prev) return { baseline: true, reset: false, intervalSeconds: 0, ...none };
  const intervalSeconds = (Date.parse(curr.takenAt) - Date.parse(prev.takenAt)) / 1000;
  const reset =
    prev.statsResetAt !== curr.statsResetAt ||
    prev.server.serverStartedAt !== curr.server.serverStartedAt ||
    COUNTER_KEYS.some((k) => curr.counters[k] < prev.counters[k]);
  if (reset || !(intervalSeconds > 0)) {
    return { baseline: true, reset, intervalSeconds: Math.max(0, intervalSeconds), ...none };
  }
  type Key = keyof DatabaseCounters;
  const d = (k: Key): number => curr.counters[k] - prev.counters[k];
  const perSecond = (k: Key): number => d(k) / intervalSeconds;
  const tablesWentDown = TABLE_COUNTER_KEYS.some((k) => d(k) < 0);
  const tablePerSecond = (k: (typeof TABLE_COUNTER_KEYS)[number]): number | null =>
    tablesWentDown ? null : perSecond(k);
  const blocks = d('blksHit') + d('blksRead');
  let meanQueryTimeMs: number | null = null;
  let statementsReset = false;
  if (prev.statements && curr.statements) {
    const calls = curr.statements.calls - prev.statements.calls;
    const totalMs = curr.statements.totalMs - prev.statements.totalMs;
    if (calls < 0 || totalMs < 0) statementsReset = true;
    else if (calls > 0) meanQueryTimeMs = totalMs / calls;
  }
  return {
    baseline: false,
    reset: false,
    intervalSeconds,
    rates: {
      commitsPerSecond: perSecond('xactCommit'),
      rollbacksPerSecond: perSecond('xactRollback'),
      blocksReadPerSecond: perSecond('blksRead'),
      tempBytesPerSecond: perSecond('tempBytes'),
      deadlocksPerMinute: perSecond('deadlocks') * 60,
      seqScansPerSecond: tablePerSecond('seqScan'),
      idxScansPerSecond: tablePerSecond('idxScan'),
      seqTuplesReadPerSecond: tablePerSecond('seqTupRead'),
    },
    cacheHitRatio: blocks > 0 ? d('blksHit') / blocks : null,
    meanQueryTimeMs,
    statementsReset,
  };
};

/** Lock counts by state. */
export const lockTotals = (s: DatabaseSnapshot): { granted: number; waiting: number } => {
  let granted = 0;
  let waiting = 0;
  for (const l of s.locks) {
    if (l.granted) granted += l.locks;
    else waiting += l.locks;
  }
  return { granted, waiting };
};
