import { type Database, type Queryable, withReadOnlyTransaction } from '#shared/db';
import { FreshnessError } from './errors.ts';

/**
 * Per-table write counters of one table, as read from `pg_stat_user_tables` and `pg_class`.
 * 64-bit counters stay decimal strings (JSON-safe, exact); they are only compared for equality.
 */
export interface TableCounters {
  /** pg_class OID: the identity across renames; a dropped and re-created table gets a new one. */
  relid: string;
  schemaName: string;
  relName: string;
  /**
   * TRUNCATE moves no tuple counter (n_tup_ins/upd/del stay put; verified on PostgreSQL 15) but
   * always assigns a new relfilenode, even to an empty table. VACUUM FULL, CLUSTER and rewriting
   * ALTER TABLEs change it too: a harmless extra invalidation. 0 for partitioned parents.
   */
  relfilenode: string;
  nTupIns: string;
  nTupUpd: string;
  nTupDel: string;
  /** Kept for diagnostics only: autovacuum and ANALYZE move them without any data change. */
  nLiveTup: string;
  nDeadTup: string;
  /**
   * Bare names of every inheritance/partition ancestor, sorted. A write to a partition changes what a query on the parent returns, so the parent counts as
   * changed too; a changed list (ATTACH/DETACH PARTITION) marks the table and both parents.
   */
  ancestors: string[];
}

/** Database-wide facts that tell whether the cumulative counters started over. */
export interface StatsEpoch {
  /** `pg_stat_database.stats_reset`: moved by pg_stat_reset() and pg_stat_reset_single_table_counters(). */
  statsResetAt: string | null;
  /** `pg_postmaster_start_time()`: a restart or a failover to another server discards the stats. */
  serverStartedAt: string;
  /**
   * xact_commit + xact_rollback of this database. Monotonic while the stats live, so a decrease
   * means they were discarded (crash recovery keeps the postmaster and leaves stats_reset NULL).
   */
  transactionCount: string;
}

/** One reading of every user table's counters. Stored as JSON between sweeps. */
export interface CounterSnapshot {
  formatVersion: 1;
  /** ISO-8601, when the counters were read (diagnostics only). */
  takenAt: string;
  epoch: StatsEpoch;
  tables: TableCounters[];
}

/** What changed between two snapshots, as bare table names (sorted, unique). */
export interface TableChanges {
  changed: string[];
  /** The statistics were reset or discarded: every table counts as changed. */
  reset: boolean;
}

/**
 * Every user table's write counters. `pg_stat_user_tables` already leaves out pg_catalog,
 * information_schema and TOAST; temporary tables (other sessions' `pg_temp_N`) are dropped
 * because no other session, and so no cached query, can read them.
 * https://www.postgresql.org/docs/15/monitoring-stats.html#MONITORING-PG-STAT-ALL-TABLES-VIEW
 */
export const TABLE_COUNTERS_SQL = `SELECT /* dbopt */
  s.relid::text AS relid,
  s.schemaname AS schema_name,
  s.relname AS rel_name,
  c.relfilenode::text AS relfilenode,
  s.n_tup_ins::text AS n_tup_ins,
  s.n_tup_upd::text AS n_tup_upd,
  s.n_tup_del::text AS n_tup_del,
  s.n_live_tup::text AS n_live_tup,
  s.n_dead_tup::text AS n_dead_tup,
  ARRAY(
    WITH RECURSIVE up (oid) AS (
      SELECT i.inhparent FROM pg_catalog.pg_inherits AS i WHERE i.inhrelid = s.relid
      UNION
      SELECT i.inhparent FROM pg_catalog.pg_inherits AS i JOIN up ON i.inhrelid = up.oid
    )
    SELECT p.relname::text FROM up JOIN pg_catalog.pg_class AS p ON p.oid = up.oid ORDER BY 1
  ) AS ancestors
FROM pg_catalog.pg_stat_user_tables AS s
JOIN pg_catalog.pg_class AS c ON c.oid = s.relid
WHERE c.relpersistence <> 't'
AND (cardinality($1::text[]) = 0 OR s.schemaname = ANY ($1::text[]))`;

/** The current database's stats epoch (see {@link StatsEpoch}). */
export const STATS_EPOCH_SQL = `SELECT /* dbopt */
  d.stats_reset::text AS stats_reset,
  pg_postmaster_start_time()::text AS server_started_at,
  (d.xact_commit + d.xact_rollback)::text AS transaction_count
FROM pg_catalog.pg_stat_database AS d
WHERE d.datname = current_database()`;

type TableCountersRow = {
  relid: string;
  schema_name: string;
  rel_name: string;
  relfilenode: string;
  n_tup_ins: string;
  n_tup_upd: string;
  n_tup_del: string;
  n_live_tup: string;
  n_dead_tup: string;
  ancestors: string[];
};

type StatsEpochRow = {
  stats_reset: string | null;
  server_started_at: string;
  transaction_count: string;
};

/** Options for reading counters. */
export interface ReadCountersOptions {
  /** Server-side limit for the catalog read (SET LOCAL statement_timeout). */
  timeoutMs: number;
  /** Only tables in these schemas; empty or absent means every schema. */
  schemas?: readonly string[];
}

/**
 * Reads a {@link CounterSnapshot} over `tx`. Run it in a fresh transaction: with PostgreSQL
 * 15's default `stats_fetch_consistency = cache` a backend keeps the counters it has read until
 * the transaction ends, so a second read in the same transaction returns the same numbers.
 */
export const readCounterSnapshot = async (
  tx: Queryable,
  schemas: readonly string[] = [],
  now: () => Date = () => new Date(),
): Promise<CounterSnapshot> => {
  const tables = await tx.query<TableCountersRow>(TABLE_COUNTERS_SQL, [[...schemas]]);
  const epochRows = await tx.query<StatsEpochRow>(STATS_EPOCH_SQL);
  const epoch = epochRows.rows[0];
  if (!epoch) throw new Error('pg_stat_database has no row for the current database');
  return {
    formatVersion: 1,
    takenAt: now().toISOString(),
    epoch: {
      statsResetAt: epoch.stats_reset,
      serverStartedAt: epoch.server_started_at,
      transactionCount: epoch.transaction_count,
    },
    tables: tables.rows.map((row) => ({
      relid: row.relid,
      schemaName: row.schema_name,
      relName: row.rel_name,
      relfilenode: row.relfilenode,
      nTupIns: row.n_tup_ins,
      nTupUpd: row.n_tup_upd,
      nTupDel: row.n_tup_del,
      nLiveTup: row.n_live_tup,
      nDeadTup: row.n_dead_tup,
      ancestors: row.ancestors,
    })),
  };
};

/** Whether the counters behind `prev` were reset or discarded before `curr` was read. */
const isStatsReset = (prev: StatsEpoch, curr: StatsEpoch): boolean =>
  prev.statsResetAt !== curr.statsResetAt ||
  prev.serverStartedAt !== curr.serverStartedAt ||
  BigInt(curr.transactionCount) < BigInt(prev.transactionCount);

const sameAncestors = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((name, i) => name === b[i]);

/**
 * Whether a table's data may have changed. Only counters that move on writes are compared:
 * n_live_tup/n_dead_tup also move on autovacuum and ANALYZE (noise), and miss a TRUNCATE of a
 * table whose estimate is already 0 — relfilenode catches TRUNCATE instead. Any difference
 * counts, not only increases, so a per-table reset is caught too.
 */
const isTableChanged = (prev: TableCounters, curr: TableCounters): boolean =>
  prev.nTupIns !== curr.nTupIns ||
  prev.nTupUpd !== curr.nTupUpd ||
  prev.nTupDel !== curr.nTupDel ||
  prev.relfilenode !== curr.relfilenode ||
  prev.relName !== curr.relName ||
  !sameAncestors(prev.ancestors, curr.ancestors);

const addTable = (into: Set<string>, table: TableCounters): void => {
  into.add(table.relName);
  for (const ancestor of table.ancestors) into.add(ancestor);
};

/**
 * The tables whose data may differ between two snapshots, as bare `relname`s: the cache keys
 * table versions by the unqualified name it extracts from SQL, so `a.orders` and `b.orders`
 * share one version (a write to either invalidates both: extra misses, never a stale read).
 *
 * - no previous snapshot (first sweep, lost or unreadable state): every current table;
 * - statistics reset or discarded: every table in either snapshot, `reset: true`;
 * - a table new since `prev` (or re-created: new relid), dropped, renamed (old and new name),
 *   written (n_tup_ins/upd/del), truncated or rewritten (relfilenode): that table and its
 *   inheritance/partition ancestors.
 *
 * @example
 * const { changed } = diffTableCounters(await store.load(target), current);
 */
export const diffTableCounters = (
  prev: CounterSnapshot | undefined,
  curr: CounterSnapshot,
): TableChanges => {
  const changed = new Set<string>();
  if (!prev) {
    for (const table of curr.tables) addTable(changed, table);
    return { changed: [...changed].sort(), reset: false };
  }
  if (isStatsReset(prev.epoch, curr.epoch)) {
    for (const table of [...prev.tables, ...curr.tables]) addTable(changed, table);
    return { changed: [...changed].sort(), reset: true };
  }
  const previous = new Map(prev.tables.map((table) => [table.relid, table]));
  for (const table of curr.tables) {
    const before = previous.get(table.relid);
    previous.delete(table.relid);
    if (!before) {
      addTable(changed, table);
    } else if (isTableChanged(before, table)) {
      addTable(changed, before);
      addTable(changed, table);
    }
  }
  // Whatever is left was dropped (or moved out of the watched schemas).
  for (const dropped of previous.values()) addTable(changed, dropped);
  return { changed: [...changed].sort(), reset: false };
};

/** The result of {@link detectChangedTables}: the changes and the snapshot to save after acting on them. */
export interface ChangeDetection extends TableChanges {
  snapshot: CounterSnapshot;
}

/**
 * Snapshot → diff: reads the counters in a fresh read-only transaction and diffs them against
 * `prev`. Publishing (bumping versions, then saving `snapshot`) is the caller's job.
 */
export const detectChangedTables = async (
  db: Database,
  prev: CounterSnapshot | undefined,
  options: ReadCountersOptions,
): Promise<ChangeDetection> => {
  let snapshot: CounterSnapshot;
  try {
    snapshot = await withReadOnlyTransaction(db, { timeoutMs: options.timeoutMs }, (tx) =>
      readCounterSnapshot(tx, options.schemas),
    );
  } catch (err) {
    throw new FreshnessError('COUNTERS_READ_FAILED', 'pg_stat_user_tables read failed', {
      cause: err,
    });
  }
  return { ...diffTableCounters(prev, snapshot), snapshot };
};
