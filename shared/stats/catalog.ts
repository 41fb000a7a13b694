/**
 * Catalog SQL of the collectors, one clause per line. Every statement carries the `/* dbopt *\/`
 * marker after its first keyword so the slow-query collector skips it (PostgreSQL 18 drops a
 * leading comment from pg_stat_statements.query). Values are always bound.
 *
 * Views: https://www.postgresql.org/docs/15/monitoring-stats.html and
 * https://www.postgresql.org/docs/15/pgstatstatements.html
 */

/** Server version and role of the connected server. */
export const SERVER_SQL = `SELECT /* dbopt */
  current_setting('server_version_num')::int AS server_version_num,
  current_database() AS database,
  pg_is_in_recovery() AS in_recovery,
  pg_postmaster_start_time()::text AS server_started_at`;

/**
 * Sessions of the current database by state, plus the server-wide connection count against
 * max_connections (connection exhaustion is a server-wide failure). Ages in seconds; our own
 * backend is left out.
 */
export const ACTIVITY_SQL = `SELECT /* dbopt */
  count(*) FILTER (WHERE a.datname = current_database() AND a.state = 'active') AS active,
  count(*) FILTER (WHERE a.datname = current_database() AND a.state = 'idle') AS idle,
  count(*) FILTER (WHERE a.datname = current_database() AND a.state LIKE 'idle in transaction%') AS idle_in_transaction,
  count(*) FILTER (WHERE a.datname = current_database() AND a.wait_event_type = 'Lock') AS waiting,
  coalesce(extract(epoch FROM max(clock_timestamp() - a.query_start) FILTER (WHERE a.datname = current_database() AND a.state = 'active')), 0)::float8 AS longest_query_seconds,
  coalesce(extract(epoch FROM max(clock_timestamp() - a.xact_start) FILTER (WHERE a.datname = current_database())), 0)::float8 AS oldest_transaction_seconds,
  (array_agg(a.pid ORDER BY a.query_start) FILTER (WHERE a.datname = current_database() AND a.state = 'active'))[1] AS longest_query_pid,
  (array_agg(a.pid ORDER BY a.xact_start) FILTER (WHERE a.datname = current_database() AND a.xact_start IS NOT NULL))[1] AS oldest_transaction_pid,
  count(*) AS connections,
  current_setting('max_connections')::int AS max_connections
FROM pg_catalog.pg_stat_activity AS a
WHERE a.backend_type = 'client backend'
AND a.pid <> pg_backend_pid()`;

/** Cumulative counters of the current database (pg_stat_database). */
export const DATABASE_SQL = `SELECT /* dbopt */
  d.xact_commit::float8 AS xact_commit,
  d.xact_rollback::float8 AS xact_rollback,
  d.blks_hit::float8 AS blks_hit,
  d.blks_read::float8 AS blks_read,
  d.temp_bytes::float8 AS temp_bytes,
  d.temp_files::float8 AS temp_files,
  d.deadlocks::float8 AS deadlocks,
  d.stats_reset::text AS stats_reset
FROM pg_catalog.pg_stat_database AS d
WHERE d.datname = current_database()`;

/** Locks held or awaited by other backends, by mode. */
export const LOCKS_SQL = `SELECT /* dbopt */
  l.mode,
  l.granted,
  count(*)::int AS locks
FROM pg_catalog.pg_locks AS l
WHERE l.pid <> pg_backend_pid()
GROUP BY l.mode, l.granted
ORDER BY l.mode, l.granted`;

/**
 * Table counters summed over the database, and the worst dead-tuple ratio among tables with
 * at least $1 rows (small tables churn without mattering).
 */
export const TABLES_SQL = `SELECT /* dbopt */
  count(*)::int AS tables,
  coalesce(sum(t.seq_scan), 0)::float8 AS seq_scan,
  coalesce(sum(t.seq_tup_read), 0)::float8 AS seq_tup_read,
  coalesce(sum(t.idx_scan), 0)::float8 AS idx_scan,
  coalesce(sum(t.n_live_tup), 0)::float8 AS n_live_tup,
  coalesce(sum(t.n_dead_tup), 0)::float8 AS n_dead_tup,
  max(t.n_dead_tup::float8 / nullif(t.n_live_tup + t.n_dead_tup, 0)) FILTER (WHERE t.n_live_tup + t.n_dead_tup >= $1) AS worst_dead_tuple_ratio,
  (array_agg(t.schemaname || '.' || t.relname ORDER BY t.n_dead_tup::float8 / nullif(t.n_live_tup + t.n_dead_tup, 0) DESC NULLS LAST) FILTER (WHERE t.n_live_tup + t.n_dead_tup >= $1))[1] AS worst_dead_tuple_table,
  count(*) FILTER (WHERE t.n_dead_tup > 0 AND t.last_autovacuum IS NULL AND t.last_vacuum IS NULL)::int AS never_vacuumed_with_dead,
  extract(epoch FROM clock_timestamp() - min(greatest(t.last_autovacuum, t.last_vacuum)))::float8 AS oldest_vacuum_age_seconds
FROM pg_catalog.pg_stat_user_tables AS t`;

/** The tables with the most dead tuples (bloat signal), for reports. */
export const DEAD_TUPLE_TABLES_SQL = `SELECT /* dbopt */
  t.schemaname AS schema_name,
  t.relname AS table_name,
  t.n_live_tup::float8 AS live_tuples,
  t.n_dead_tup::float8 AS dead_tuples,
  t.seq_scan::float8 AS seq_scan,
  coalesce(t.idx_scan, 0)::float8 AS idx_scan,
  t.last_autovacuum::text AS last_autovacuum
FROM pg_catalog.pg_stat_user_tables AS t
WHERE t.n_dead_tup > 0
ORDER BY t.n_dead_tup DESC
LIMIT $1`;

/** Index usage summed over the database; unused = never scanned and not backing a constraint. */
export const INDEXES_SQL = `SELECT /* dbopt */
  count(*)::int AS indexes,
  coalesce(sum(s.idx_scan), 0)::float8 AS idx_scan,
  count(*) FILTER (WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary)::int AS unused_indexes,
  coalesce(sum(pg_relation_size(s.indexrelid)) FILTER (WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary), 0)::float8 AS unused_index_bytes
FROM pg_catalog.pg_stat_user_indexes AS s
JOIN pg_catalog.pg_index AS i ON i.indexrelid = s.indexrelid`;

/** Never-scanned indexes that back no constraint, largest first (candidates to drop). */
export const UNUSED_INDEXES_SQL = `SELECT /* dbopt */
  s.schemaname AS schema_name,
  s.relname AS table_name,
  s.indexrelname AS index_name,
  pg_relation_size(s.indexrelid)::float8 AS size_bytes
FROM pg_catalog.pg_stat_user_indexes AS s
JOIN pg_catalog.pg_index AS i ON i.indexrelid = s.indexrelid
WHERE s.idx_scan = 0
AND NOT i.indisunique
AND NOT i.indisprimary
ORDER BY pg_relation_size(s.indexrelid) DESC
LIMIT $1`;

/**
 * On a primary: the largest replay lag of its streaming replicas (NULL without replicas).
 * replay_lag turns NULL once a streaming standby has caught up and no WAL is flowing: that is
 * no lag (0), not "unknown" (a standby still in catch-up stays NULL).
 * https://www.postgresql.org/docs/15/monitoring-stats.html#MONITORING-PG-STAT-REPLICATION-VIEW
 */
export const PRIMARY_REPLICATION_SQL = `SELECT /* dbopt */
  count(*)::int AS replicas,
  max(coalesce(extract(epoch FROM r.replay_lag), CASE WHEN r.state = 'streaming' THEN 0 END))::float8 AS lag_seconds
FROM pg_catalog.pg_stat_replication AS r`;

/**
 * On a replica: time since the last replayed transaction, 0 when everything received is
 * replayed (an idle primary sends nothing, so the timestamp alone would look like lag).
 */
export const REPLICA_REPLICATION_SQL = `SELECT /* dbopt */
  1 AS replicas,
  CASE
    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
    ELSE extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())
  END::float8 AS lag_seconds`;

/**
 * Aurora PostgreSQL: readers share the writer's storage and never appear in
 * pg_stat_replication; `aurora_replica_status()` reports every node, the writer as
 * `MASTER_SESSION_ID`, with each reader's `replica_lag_in_msec`.
 * https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora_replica_status.html
 */
export const AURORA_CHECK_SQL = `SELECT /* dbopt */
  EXISTS (SELECT 1 FROM pg_catalog.pg_proc AS p WHERE p.proname = 'aurora_replica_status') AS aurora`;

export const AURORA_REPLICATION_SQL = `SELECT /* dbopt */
  count(*)::int AS replicas,
  (max(greatest(s.replica_lag_in_msec, 0)) / 1000.0)::float8 AS lag_seconds
FROM aurora_replica_status() AS s
WHERE s.session_id <> 'MASTER_SESSION_ID'`;

/** Whether pg_stat_statements is created in the current database, and its version. */
export const STATEMENTS_EXTENSION_SQL = `SELECT /* dbopt */
  e.extversion
FROM pg_catalog.pg_extension AS e
WHERE e.extname = 'pg_stat_statements'`;

/**
 * The column names pg_stat_statements uses, which changed over the versions:
 * `total_exec_time` & co from 1.8 (PostgreSQL 13), `toplevel` and pg_stat_statements_info
 * from 1.9 (PostgreSQL 14).
 */
export interface StatementColumns {
  readonly execTime: 'exec_time' | 'time';
  readonly toplevel: boolean;
  readonly info: boolean;
  /** Per-entry `stats_since` (1.11, PostgreSQL 17): when the entry's counters started. */
  readonly statsSince: boolean;
}

/**
 * Picks the columns by server version, capped by the installed extension version: a server
 * upgraded without `ALTER EXTENSION pg_stat_statements UPDATE` still has the old columns.
 */
export const statementColumnsFor = (
  serverVersionNum: number,
  extensionVersion?: string | null,
): StatementColumns => {
  const [major = 0, minor = 0] = (extensionVersion ?? '99.99').split('.').map(Number);
  const ext = major * 100 + minor;
  return Object.freeze({
    execTime: serverVersionNum >= 130_000 && ext >= 108 ? 'exec_time' : 'time',
    toplevel: serverVersionNum >= 140_000 && ext >= 109,
    info: serverVersionNum >= 140_000 && ext >= 109,
    statsSince: serverVersionNum >= 170_000 && ext >= 111,
  });
};

/**
 * pg_stat_statements of the current database, by columns. Times in ms. Sum of squares is not
 * exposed, so it is rebuilt from the population stddev pg_stat_statements keeps:
 * Σx² = calls · (stddev² + mean²), which makes interval variance computable from two readings.
 */
export const statementsSqlFor = (columns: StatementColumns): string => {
  const t = columns.execTime;
  return `SELECT /* dbopt */
  s.userid::text AS userid,
  s.dbid::text AS dbid,
  s.queryid::text AS queryid,
  ${columns.toplevel ? 's.toplevel' : 'NULL::boolean'} AS toplevel,
  ${columns.statsSince ? 's.stats_since::text' : 'NULL::text'} AS stats_since,
  s.query,
  s.calls::float8 AS calls,
  s.total_${t}::float8 AS total_ms,
  (s.calls * (s.stddev_${t} ^ 2 + s.mean_${t} ^ 2))::float8 AS sum_squares_ms2,
  s.rows::float8 AS rows,
  s.shared_blks_hit::float8 AS shared_blks_hit,
  s.shared_blks_read::float8 AS shared_blks_read,
  s.temp_blks_written::float8 AS temp_blks_written
FROM pg_stat_statements AS s
WHERE s.dbid = (SELECT d.oid FROM pg_catalog.pg_database AS d WHERE d.datname = current_database())
AND s.queryid IS NOT NULL
AND s.query NOT LIKE '%/* dbopt */%'`;
};

/**
 * The key order of paged pg_stat_statements reads: pg_stat_statements' entry identity within
 * the current database (dbid is fixed by the WHERE clause), `toplevel` from 1.9 on.
 */
const keyColumnsFor = (columns: StatementColumns): string =>
  columns.toplevel ? 's.userid, s.queryid, s.toplevel' : 's.userid, s.queryid';

/** The keyset condition "after ($n, $n+1[, $n+2])"; NULL in the first parameter: from the start. */
const afterKeyFor = (columns: StatementColumns, first: number): string =>
  `($${first}::oid IS NULL OR (${keyColumnsFor(columns)}) > ($${first}::oid, $${first + 1}::bigint${columns.toplevel ? `, $${first + 2}::boolean` : ''}))`;

/**
 * One page of pg_stat_statements counters WITHOUT query texts (`showtext := false` does not
 * read the query-text file), in key order after the key ($1 userid, $2 queryid[, $3 toplevel];
 * NULLs for the first page), at most $n rows. For readers with a response size limit (the RDS
 * Data API returns at most 1 MiB): a row is ~250–400 bytes of JSON, so 1,000 rows stay well
 * under it. Own statements cannot be left out without their text; the ranking skips them.
 * https://www.postgresql.org/docs/15/pgstatstatements.html#PGSTATSTATEMENTS-FUNCS
 */
export const statementCountersPageSqlFor = (columns: StatementColumns): string => {
  const t = columns.execTime;
  const limit = columns.toplevel ? '$4' : '$3';
  return `SELECT /* dbopt */
  s.userid::text AS userid,
  s.dbid::text AS dbid,
  s.queryid::text AS queryid,
  ${columns.toplevel ? 's.toplevel' : 'NULL::boolean'} AS toplevel,
  ${columns.statsSince ? 's.stats_since::text' : 'NULL::text'} AS stats_since,
  s.calls::float8 AS calls,
  s.total_${t}::float8 AS total_ms,
  (s.calls * (s.stddev_${t} ^ 2 + s.mean_${t} ^ 2))::float8 AS sum_squares_ms2,
  s.rows::float8 AS rows,
  s.shared_blks_hit::float8 AS shared_blks_hit,
  s.shared_blks_read::float8 AS shared_blks_read,
  s.temp_blks_written::float8 AS temp_blks_written
FROM pg_stat_statements(showtext := false) AS s
WHERE s.dbid = (SELECT d.oid FROM pg_catalog.pg_database AS d WHERE d.datname = current_database())
AND s.queryid IS NOT NULL
AND ${afterKeyFor(columns, 1)}
ORDER BY ${keyColumnsFor(columns)}
LIMIT ${limit}`;
};

/**
 * Query texts of the entries with the queryids in $1 (bigint[]), cut to $2 characters
 * server-side (4 bytes per character at most: 16,000 stays under the Data API's 64 KB per
 * row), in key order after the key ($4 userid, $5 queryid[, $6 toplevel]). A page ends once
 * the JSON-escaped texts before a row add up to $3 bytes (the first row always comes), so a
 * page is at most $3 bytes plus one text; `end_bytes` of its last row below $3 means no
 * text was left out.
 */
export const statementTextsPageSqlFor = (columns: StatementColumns): string => `SELECT /* dbopt */
  t.userid,
  t.queryid,
  t.toplevel,
  t.query,
  t.end_bytes::float8 AS end_bytes
FROM (
  SELECT
    s.userid::text AS userid,
    s.queryid::text AS queryid,
    ${columns.toplevel ? 's.toplevel' : 'NULL::boolean'} AS toplevel,
    left(s.query, $2) AS query,
    coalesce(octet_length(to_json(left(s.query, $2))::text), 0) AS text_bytes,
    sum(coalesce(octet_length(to_json(left(s.query, $2))::text), 0)) OVER (ORDER BY ${keyColumnsFor(columns)} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS end_bytes,
    s.userid AS k0,
    s.queryid AS k1${columns.toplevel ? ',\n    s.toplevel AS k2' : ''}
  FROM pg_stat_statements(showtext := true) AS s
  WHERE s.dbid = (SELECT d.oid FROM pg_catalog.pg_database AS d WHERE d.datname = current_database())
  AND s.queryid = ANY ($1::bigint[])
  AND ${afterKeyFor(columns, 4)}
) AS t
WHERE t.end_bytes - t.text_bytes < $3
ORDER BY t.k0, t.k1${columns.toplevel ? ', t.k2' : ''}`;

/** Deallocations and the last full reset (pg_stat_statements 1.9+, PostgreSQL 14+). */
export const STATEMENTS_INFO_SQL = `SELECT /* dbopt */
  i.dealloc::float8 AS dealloc,
  i.stats_reset::text AS stats_reset
FROM pg_stat_statements_info AS i`;

/**
 * Calls and total time summed over the database's top-level statements (nested ones are
 * part of their caller's time): the interval mean query time of the metrics collector.
 * dbopt's own statements are left out, so the texts are read: with the repository in the
 * watched database, our snapshot writes and EXPLAINs would otherwise set the mean of a quiet
 * database.
 */
export const statementTotalsSqlFor = (columns: StatementColumns): string => `SELECT /* dbopt */
  coalesce(sum(s.calls), 0)::float8 AS calls,
  coalesce(sum(s.total_${columns.execTime}), 0)::float8 AS total_ms
FROM pg_stat_statements AS s
WHERE s.dbid = (SELECT d.oid FROM pg_catalog.pg_database AS d WHERE d.datname = current_database())
AND coalesce(s.query, '') NOT LIKE '%/* dbopt */%'${columns.toplevel ? '\nAND s.toplevel' : ''}`;

/** Relation sizes (planner estimates) of the tables a plan scans sequentially. */
export const RELATION_ROWS_SQL = `SELECT /* dbopt */
  n.nspname AS schema_name,
  c.relname AS table_name,
  greatest(c.reltuples, 0)::float8 AS estimated_rows,
  pg_relation_size(c.oid)::float8 AS size_bytes
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE (n.nspname || '.' || c.relname) = ANY ($1::text[])`;

/** Buffer cache hit ratios of table heaps and indexes since the statistics were reset. */
export const STATIO_SQL = `SELECT /* dbopt */
  coalesce(sum(t.heap_blks_hit), 0)::float8 AS heap_hit,
  coalesce(sum(t.heap_blks_read), 0)::float8 AS heap_read,
  coalesce(sum(t.idx_blks_hit), 0)::float8 AS idx_hit,
  coalesce(sum(t.idx_blks_read), 0)::float8 AS idx_read
FROM pg_catalog.pg_statio_user_tables AS t`;
