import type { Queryable } from '#shared/db';

/** Why an index is worth dropping. */
export type HygieneKind = 'invalid' | 'duplicate' | 'redundant_prefix' | 'unused';

/** One index to drop, with the statement that drops it without blocking writes. */
export interface HygieneFinding {
  readonly kind: HygieneKind;
  readonly schema: string;
  readonly table: string;
  readonly index: string;
  /** pg_get_indexdef: the CREATE INDEX that would bring it back. */
  readonly definition: string;
  readonly sizeBytes: number;
  /** idx_scan since the statistics were last reset. */
  readonly scans: number;
  /** `DROP INDEX CONCURRENTLY "schema"."name";` */
  readonly dropStatement: string;
  readonly reason: string;
}

/** An index that looked unused but was not reported, and why. */
export interface HygieneSkip {
  readonly index: string;
  readonly reason: string;
}

export interface HygieneReport {
  readonly findings: HygieneFinding[];
  readonly skipped: HygieneSkip[];
  /** pg_stat_database.stats_reset: index scans are counted since then (null: never reset). */
  readonly statsResetAt: Date | null;
}

export interface HygieneOptions {
  /**
   * An index is called unused only when its scan counters cover at least this many days
   * (since stats_reset) and, where knowable, the index is at least this old.
   */
  readonly minIndexAgeDays: number;
}

const SQL_INDEXES = `
SELECT /* dbopt */ i.indexrelid::bigint AS index_oid,
  i.indrelid::bigint AS table_oid,
  ns.nspname AS schema_name,
  ic.relname AS index_name,
  tc.relname AS table_name,
  am.amname AS access_method,
  i.indisunique AS is_unique,
  i.indisvalid AS is_valid,
  i.indnkeyatts AS key_count,
  i.indnatts AS column_count,
  i.indkey::int2[] AS columns,
  i.indclass::oid[]::text[] AS opclasses,
  i.indcollation::oid[]::text[] AS collations,
  pg_get_expr(i.indexprs, i.indrelid) AS expressions,
  pg_get_expr(i.indpred, i.indrelid) AS predicate,
  pg_get_indexdef(i.indexrelid) AS definition,
  pg_relation_size(i.indexrelid) AS size_bytes,
  coalesce(s.idx_scan, 0) AS scans,
  EXISTS (
    SELECT 1
    FROM pg_constraint c
    WHERE c.conindid = i.indexrelid
      AND c.contype IN ('p', 'u', 'x')
  ) AS backs_constraint,
  EXISTS (
    SELECT 1
    FROM pg_stat_progress_create_index p
    WHERE p.index_relid = i.indexrelid
  ) AS building,
  CASE WHEN current_setting('track_commit_timestamp') = 'on'
    THEN pg_xact_commit_timestamp(ic.xmin)
  END AS created_at
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class tc ON tc.oid = i.indrelid
JOIN pg_namespace ns ON ns.oid = ic.relnamespace
JOIN pg_am am ON am.oid = ic.relam
LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = i.indexrelid
WHERE ns.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'dbopt')
  AND ns.nspname NOT LIKE 'pg\\_temp\\_%'
  AND ic.relkind = 'i'
  AND NOT ic.relispartition
ORDER BY ns.nspname, tc.relname, ic.relname`;

const SQL_FOREIGN_KEYS = `
SELECT /* dbopt */ c.conrelid::bigint AS table_oid,
  c.conkey::int2[] AS columns
FROM pg_constraint c
WHERE c.contype = 'f'`;

const SQL_STATS_RESET = `
SELECT /* dbopt */ d.stats_reset,
  now() AS now
FROM pg_stat_database d
WHERE d.datname = current_database()`;

interface IndexRow extends Record<string, unknown> {
  index_oid: string;
  table_oid: string;
  schema_name: string;
  index_name: string;
  table_name: string;
  access_method: string;
  is_unique: boolean;
  is_valid: boolean;
  key_count: number;
  column_count: number;
  columns: number[];
  opclasses: string[];
  collations: string[];
  expressions: string | null;
  predicate: string | null;
  definition: string;
  size_bytes: string;
  scans: string;
  backs_constraint: boolean;
  building: boolean;
  created_at: Date | null;
}

const DAY_MS = 86_400_000;

/**
 * Finds indexes worth dropping: invalid ones (a failed CREATE INDEX CONCURRENTLY), exact
 * duplicates, btrees whose keys are a leading prefix of another btree's, and indexes never
 * scanned. Never reported: indexes that enforce a PRIMARY KEY / UNIQUE / EXCLUDE constraint
 * or uniqueness, indexes still being built, and the only index serving a foreign key's
 * referencing columns (dropping it makes every DELETE on the referenced table scan this one).
 *
 * Scan counts are per server: an index used only on a read replica looks unused here.
 * Partitioned indexes are left out: the parent counts no scans (its partitions do), neither
 * it nor an attached partition index can be dropped CONCURRENTLY / on its own.
 *
 * @see https://www.postgresql.org/docs/15/monitoring-stats.html#MONITORING-PG-STAT-ALL-INDEXES-VIEW
 */
export const findIndexHygiene = async (
  q: Queryable,
  options: HygieneOptions,
): Promise<HygieneReport> => {
  // One after the other: `q` may be a single session.
  const { rows: indexes } = await q.query<IndexRow>(SQL_INDEXES);
  const { rows: foreignKeys } = await q.query<{ table_oid: string; columns: number[] }>(
    SQL_FOREIGN_KEYS,
  );
  const { rows: stats } = await q.query<{ stats_reset: Date | null; now: Date }>(SQL_STATS_RESET);
  const statsResetAt = stats[0]?.stats_reset ?? null;
  const now = stats[0]?.now ?? new Date();
  const findings = new Map<string, HygieneFinding>();
  const report = (row: IndexRow, kind: HygieneKind, reason: string) => {
    if (findings.has(row.index_oid)) return;
    findings.set(row.index_oid, toFinding(row, kind, reason));
  };

  for (const row of indexes) {
    if (!row.is_valid && !row.building) {
      report(
        row,
        'invalid',
        'invalid (indisvalid = false): a CREATE INDEX CONCURRENTLY or REINDEX failed part-way; ' +
          'the index is maintained on every write but never used by queries',
      );
    }
  }
  const usable = indexes.filter((r) => r.is_valid && !r.building);
  // The index a duplicate or prefix finding points to ("Y serves the same") must stay.
  const relied = new Set<string>();
  for (const [a, b] of duplicatePairs(usable)) {
    relied.add(b.index_oid);
    report(
      a,
      'duplicate',
      `duplicate of ${quoted(b)} (same table, keys, operator classes and predicate)`,
    );
  }
  for (const row of usable) {
    const wider = usable.find((other) => isPrefixRedundant(row, other));
    if (wider) {
      relied.add(wider.index_oid);
      report(
        row,
        'redundant_prefix',
        `its keys are a leading prefix of ${quoted(wider)}, which serves the same lookups`,
      );
    }
  }

  const skipped: HygieneSkip[] = [];
  const windowDays = statsResetAt ? (now.getTime() - statsResetAt.getTime()) / DAY_MS : undefined;
  for (const row of usable) {
    if (Number(row.scans) > 0 || row.is_unique || row.backs_constraint) continue;
    if (findings.has(row.index_oid)) continue;
    if (relied.has(row.index_oid)) {
      skipped.push({
        index: quoted(row),
        reason: 'it serves the lookups of an index reported as duplicate or redundant',
      });
      continue;
    }
    if (servesForeignKeyAlone(row, usable, foreignKeys)) {
      skipped.push({ index: quoted(row), reason: 'the only index on a foreign key’s columns' });
      continue;
    }
    if (windowDays !== undefined && windowDays < options.minIndexAgeDays) {
      skipped.push({
        index: quoted(row),
        reason: `statistics were reset ${windowDays.toFixed(1)} days ago (< ${options.minIndexAgeDays})`,
      });
      continue;
    }
    const ageDays = row.created_at
      ? (now.getTime() - row.created_at.getTime()) / DAY_MS
      : undefined;
    if (ageDays !== undefined && ageDays < options.minIndexAgeDays) {
      skipped.push({
        index: quoted(row),
        reason: `created ${ageDays.toFixed(1)} days ago (< ${options.minIndexAgeDays})`,
      });
      continue;
    }
    const since = statsResetAt
      ? `since the statistics reset on ${statsResetAt.toISOString()}`
      : 'since statistics began (never reset)';
    report(
      row,
      'unused',
      `never scanned ${since}; it still costs space and time on every write ` +
        '(check read replicas before dropping: their scans are not counted here)',
    );
  }
  return { findings: [...findings.values()], skipped, statsResetAt };
};

const quoted = (row: IndexRow): string => `"${row.schema_name}"."${row.index_name}"`;

const quoteIdent = (name: string): string => `"${name.replaceAll('"', '""')}"`;

const toFinding = (row: IndexRow, kind: HygieneKind, reason: string): HygieneFinding => ({
  kind,
  schema: row.schema_name,
  table: row.table_name,
  index: row.index_name,
  definition: row.definition,
  sizeBytes: Number(row.size_bytes),
  scans: Number(row.scans),
  dropStatement: `DROP INDEX CONCURRENTLY ${quoteIdent(row.schema_name)}.${quoteIdent(row.index_name)};`,
  reason,
});

/** Everything that makes two indexes answer the same lookups, as one comparable string. */
const shapeKey = (row: IndexRow): string =>
  JSON.stringify([
    row.table_oid,
    row.access_method,
    row.key_count,
    row.columns,
    row.opclasses,
    row.collations,
    row.expressions,
    row.predicate,
  ]);

/**
 * [drop, keep] pairs among identical indexes. The kept one is, in order: the one enforcing a
 * constraint or uniqueness, the most scanned, the oldest (lowest OID). Indexes that enforce
 * something are never dropped.
 */
const duplicatePairs = (rows: readonly IndexRow[]): Array<[IndexRow, IndexRow]> => {
  const groups = new Map<string, IndexRow[]>();
  for (const row of rows) {
    const key = shapeKey(row);
    groups.set(key, [...(groups.get(key) ?? []), row]);
  }
  const pairs: Array<[IndexRow, IndexRow]> = [];
  for (const group of groups.values()) {
    if (group.length < 2) continue;
    const ranked = [...group].sort(
      (a, b) =>
        Number(b.backs_constraint || b.is_unique) - Number(a.backs_constraint || a.is_unique) ||
        Number(b.scans) - Number(a.scans) ||
        Number(a.index_oid) - Number(b.index_oid),
    );
    const [keep, ...rest] = ranked;
    if (!keep) continue;
    for (const row of rest) {
      if (!row.backs_constraint && !row.is_unique) pairs.push([row, keep]);
    }
  }
  return pairs;
};

/**
 * A plain-column btree with no INCLUDE columns whose keys (with their operator classes and
 * collations) are a leading prefix of a longer btree's on the same table, under the same
 * predicate. Unique indexes are never redundant: they enforce something.
 */
const isPrefixRedundant = (a: IndexRow, b: IndexRow): boolean => {
  if (a.index_oid === b.index_oid || a.table_oid !== b.table_oid) return false;
  if (a.access_method !== 'btree' || b.access_method !== 'btree') return false;
  if (a.is_unique || a.backs_constraint || a.expressions || b.expressions) return false;
  if (a.column_count !== a.key_count || b.key_count <= a.key_count) return false;
  if ((a.predicate ?? '') !== (b.predicate ?? '')) return false;
  for (let i = 0; i < a.key_count; i++) {
    if (a.columns[i] === 0 || a.columns[i] !== b.columns[i]) return false;
    if (a.opclasses[i] !== b.opclasses[i] || a.collations[i] !== b.collations[i]) return false;
  }
  return true;
};

/** Whether `row` leads with a foreign key's columns and no other usable index does. */
const servesForeignKeyAlone = (
  row: IndexRow,
  usable: readonly IndexRow[],
  foreignKeys: ReadonlyArray<{ table_oid: string; columns: number[] }>,
): boolean => {
  const covers = (index: IndexRow, fk: { columns: number[] }) => {
    const leading = new Set(index.columns.slice(0, fk.columns.length));
    return !index.predicate && fk.columns.every((c) => leading.has(c));
  };
  return foreignKeys.some(
    (fk) =>
      fk.table_oid === row.table_oid &&
      covers(row, fk) &&
      !usable.some(
        (o) => o.index_oid !== row.index_oid && o.table_oid === row.table_oid && covers(o, fk),
      ),
  );
};
