/**
 * What the first (normally the only) statement does. `ddl` follows PostgreSQL's own
 * `log_statement = 'ddl'` classification, so `SELECT … INTO new_table` (which creates a
 * table) is `ddl`; `utility` covers SET, SHOW, VACUUM, COPY, TRUNCATE, LOCK, PREPARE, CALL
 * and similar commands; `other` is an empty text or a statement type this code does not know.
 */
export type StatementKind =
  | 'select'
  | 'insert'
  | 'update'
  | 'delete'
  | 'merge'
  | 'ddl'
  | 'utility'
  | 'transaction'
  | 'explain'
  | 'other';

/**
 * Why a statement's result must not be served from a cache, in the order checked:
 * - `not-single-statement`: zero or several statements.
 * - `not-read-only`: anything other than a plain SELECT/VALUES, or a writable CTE.
 * - `locking-clause`: FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE takes row locks.
 * - `temp-table`: reads a `pg_temp`-qualified table, which belongs to one session.
 * - `system-catalog`: reads `pg_catalog`, `information_schema` or an unqualified `pg_*`
 *   relation, whose contents change without any write through the API (pg_stat_activity).
 * - `volatile-function`: reads the clock, randomness, a sequence, locks or session state
 *   (now(), CURRENT_TIMESTAMP, current_user, random(), nextval(), age(ts), 'now'::date,
 *   TABLESAMPLE without REPEATABLE…).
 * - `unknown-function`: calls a function outside the built-in allow-list (user functions
 *   may read other tables or be volatile).
 * - `no-tables`: reads no table (`SELECT 1`). Such statements cost the database nothing,
 *   are typically health checks that must reach the database, and no table version could
 *   ever invalidate them.
 */
export type UncacheableReason =
  | 'not-single-statement'
  | 'not-read-only'
  | 'locking-clause'
  | 'temp-table'
  | 'system-catalog'
  | 'volatile-function'
  | 'unknown-function'
  | 'no-tables';

/**
 * Facts about one SQL text, derived from PostgreSQL's own parser. Deeply frozen: analyzers
 * share cached instances between callers.
 *
 * Names: tables and functions are written `schema.name` when the SQL qualified them and
 * `name` when it did not (no `public.` is invented, as the parser cannot see search_path).
 * Each part is the identifier after PostgreSQL's case folding, unquoted: `Users` for
 * `"Users"`, `users` for `Users`, so parts match `pg_stat_user_tables.schemaname/relname`.
 * A part is double-quoted (with `"` doubled) only when it contains `.` or `"`, which keeps
 * `"a.b"` distinct from `a.b`.
 *
 * Read vs written: a table is in `tablesWritten` when it is the target of INSERT (incl.
 * ON CONFLICT DO UPDATE), UPDATE, DELETE, MERGE, SELECT INTO, COPY … FROM, TRUNCATE or a
 * DDL statement (CREATE/ALTER/DROP TABLE, CREATE INDEX ON, CREATE VIEW …). It is in
 * `tablesRead` when it appears anywhere else: FROM/JOIN/LATERAL, subqueries, set
 * operations, UPDATE … FROM, DELETE … USING, INSERT … SELECT and MERGE sources. A DML target
 * is not also listed as read (although UPDATE/DELETE read its rows); a table referenced in
 * both roles (`INSERT INTO t SELECT … FROM t`) is in both lists. CTE names are excluded
 * within their WITH scope; DML targets always name real tables, as in PostgreSQL.
 * EXPLAIN reports the tables of the statement it explains.
 */
export interface SqlAnalysis {
  /** Statements in the text; 0 for empty or comment-only text. */
  readonly statementCount: number;
  /** Kind of the first statement; `other` when there is none. */
  readonly kind: StatementKind;
  /**
   * True only when every statement is a SELECT/VALUES (set operations included) with no
   * writable CTE, no INTO and no locking clause. Function side effects are not considered.
   */
  readonly readOnly: boolean;
  /** A FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE clause appears anywhere. */
  readonly hasLockingClause: boolean;
  /** Sorted, de-duplicated; see the type's TSDoc for naming and the read/write rules. */
  readonly tablesRead: readonly string[];
  /** Sorted, de-duplicated; see the type's TSDoc for naming and the read/write rules. */
  readonly tablesWritten: readonly string[];
  /**
   * Functions called, sorted and de-duplicated, named as written (`lower`,
   * `app.my_func`). Calls the grammar rewrites (EXTRACT, AT TIME ZONE, SUBSTRING … FROM)
   * appear under their function name without the implicit `pg_catalog.`; SQL value
   * functions appear by keyword (`current_timestamp`, `current_user`).
   */
  readonly functions: readonly string[];
  /** Whether the result may be cached, keyed by this text, its parameters and table versions. */
  readonly cacheable: boolean;
  /** Set exactly when `cacheable` is false. */
  readonly uncacheableReason?: UncacheableReason;
  /**
   * libpg-query fingerprint: groups statements that differ only in constants, parameter
   * numbers and whitespace (the pg_stat_statements notion of "the same query"). It is NOT
   * a cache key: `id = 1` and `id = 2` share it. Empty string when there is no statement.
   */
  readonly fingerprint: string;
  /** The text with constants replaced by `$n` placeholders; empty when there is no statement. */
  readonly normalized: string;
  /** Highest `$n` referenced (0 if none); `$3` alone means the caller must send 3 values. */
  readonly maxParamIndex: number;
}

/** Counters for one analyzer's parse cache. */
export interface SqlAnalyzerStats {
  readonly entries: number;
  readonly maxEntries: number;
  readonly hits: number;
  readonly misses: number;
}

/** Parses and classifies SQL text, caching results per exact text. */
export interface SqlAnalyzer {
  /**
   * Analyses any text, even several statements (see `assertSingleStatement`).
   * @throws SqlSyntaxError `SQL_SYNTAX_ERROR`, `details.position` 1-based like PostgreSQL.
   */
  analyze(sql: string): SqlAnalysis;
  /** Cache size and hit counts, for metrics and tests. */
  stats(): SqlAnalyzerStats;
}

export interface SqlAnalyzerOptions {
  /** Maximum number of distinct SQL texts kept (LRU). */
  readonly cacheEntries: number;
}
