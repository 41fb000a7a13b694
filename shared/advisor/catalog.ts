/**
 * What the advisor needs to know about the tables a workload reads: size, columns and their
 * collations, existing indexes (keys with non-default opclass/collation), foreign keys and
 * pg_stats, plus which extensions are present. Read once per run.
 */
import type { Queryable } from '#shared/db';
import { quoteIdent } from './sql-text.ts';

export interface ColumnInfo {
  name: string;
  /** format_type(): `text`, `timestamp with time zone`, … */
  type: string;
  /** pg_type.typname: `jsonb`, `text`, `int8`, … */
  typeName: string;
  /** True when `LIKE 'x%'` can use a plain btree on this column (C / POSIX collation). */
  cCollation: boolean;
  collatable: boolean;
}

export interface ExistingIndex {
  name: string;
  method: string;
  valid: boolean;
  primary: boolean;
  /** Key signatures: pg_get_indexdef's key text plus a non-default opclass / collation. */
  keys: string[];
  predicate: string | null;
  sizeBytes: number;
}

export interface ColumnStats {
  nullFraction: number;
  /** pg_stats.n_distinct: negative values are a fraction of the row count. */
  distinct: number;
  mostCommonValues: string[];
  mostCommonFrequencies: number[];
  histogramBounds: string[];
  /** Average stored width of the column's values, bytes. */
  avgWidth: number;
}

export interface TableInfo {
  /** Schema-qualified, quoted: `public.bookings`. */
  key: string;
  oid: number;
  schema: string;
  name: string;
  rows: number;
  pages: number;
  /** False when the table has never been analysed (estimates are guesses). */
  analysed: boolean;
  /** A partitioned table (relkind 'p'): no CREATE INDEX CONCURRENTLY on it in PostgreSQL 15. */
  partitioned?: boolean;
  columns: Map<string, ColumnInfo>;
  indexes: ExistingIndex[];
  /** Column lists of foreign keys declared on this table. */
  foreignKeys: string[][];
  stats: Map<string, ColumnStats>;
}

export interface Catalog {
  tables: Map<string, TableInfo>;
  /** Requested name (as written, quoted) → table key. */
  byRequestedName: Map<string, string>;
  extensions: Set<string>;
  availableExtensions: Set<string>;
}

const TABLES_SQL = `
SELECT /* dbopt */ r.name AS requested, c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name,
       c.reltuples::float8 AS reltuples, c.relpages::int8 AS pages, c.relkind = 'p' AS partitioned,
       (pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8 AS actual_pages
FROM unnest($1::text[]) AS r(name)
JOIN pg_class c ON c.oid = to_regclass(r.name)
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm')`;

const DATABASE_SQL = `
SELECT /* dbopt */ d.datcollate AS collate, to_jsonb(d) ->> 'datlocprovider' AS provider
FROM pg_database d
WHERE d.datname = current_database()`;

const COLUMNS_SQL = `
SELECT /* dbopt */ a.attrelid::int8 AS table_oid, a.attname AS name,
       format_type(a.atttypid, a.atttypmod) AS type, t.typname AS type_name,
       a.attcollation <> 0 AS collatable, co.collname AS collation, co.collcollate AS collcollate
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_collation co ON co.oid = a.attcollation
WHERE a.attrelid = ANY($1::oid[])
  AND a.attnum > 0
  AND NOT a.attisdropped`;

const INDEXES_SQL = `
SELECT /* dbopt */ i.indrelid::int8 AS table_oid, c.relname AS name, am.amname AS method,
       i.indisvalid AS valid, i.indisprimary AS primary,
       pg_get_expr(i.indpred, i.indrelid, true) AS predicate,
       ARRAY(
         SELECT pg_get_indexdef(i.indexrelid, k, true)
                || CASE WHEN co.oid IS NOT NULL AND co.collname <> 'default'
                             AND co.oid IS DISTINCT FROM a.attcollation
                        THEN ' COLLATE ' || quote_ident(co.collname) ELSE '' END
                || CASE WHEN oc.opcdefault THEN '' ELSE ' ' || oc.opcname END
         FROM generate_series(1, i.indnkeyatts) AS k
         JOIN pg_opclass oc ON oc.oid = i.indclass[k - 1]
         LEFT JOIN pg_collation co ON co.oid = i.indcollation[k - 1]
         LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[k - 1]
         ORDER BY k
       ) AS keys,
       pg_relation_size(i.indexrelid)::int8 AS size_bytes
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_am am ON am.oid = c.relam
WHERE i.indrelid = ANY($1::oid[])`;

const FOREIGN_KEYS_SQL = `
SELECT /* dbopt */ k.conrelid::int8 AS table_oid,
       ARRAY(
         SELECT a.attname
         FROM unnest(k.conkey) WITH ORDINALITY AS u(attnum, ord)
         JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum
         ORDER BY u.ord
       )::text[] AS columns
FROM pg_constraint k
WHERE k.contype = 'f'
  AND k.conrelid = ANY($1::oid[])`;

const STATS_SQL = `
SELECT /* dbopt */ s.schemaname AS schema, s.tablename AS table, s.attname AS column,
       s.null_frac::float8 AS null_frac, s.n_distinct::float8 AS n_distinct, s.avg_width::int AS avg_width,
       s.most_common_vals::text::text[] AS mcv, s.most_common_freqs::float8[] AS mcf,
       s.histogram_bounds::text::text[] AS histogram
FROM pg_stats s
JOIN unnest($1::text[], $2::text[]) AS r(schema, name)
  ON r.schema = s.schemaname AND r.name = s.tablename
WHERE NOT s.inherited`;

const EXTENSIONS_SQL = `
SELECT /* dbopt */ e.extname AS name, true AS installed
FROM pg_extension e
UNION ALL
SELECT a.name, false
FROM pg_available_extensions a
WHERE a.name IN ('hypopg', 'pg_trgm')`;

/** The name a statement used, as the text to_regclass() resolves (already case-folded by the parser). */
export const requestedName = (schema: string | null, name: string): string =>
  schema === null ? quoteIdent(name) : `${quoteIdent(schema)}.${quoteIdent(name)}`;

const C_LOCALES: ReadonlySet<string> = new Set(['C', 'POSIX']);

/**
 * Loads everything about `names` (as {@link requestedName} renders them) in six catalog
 * queries. Unknown names (views, CTEs, typos) are simply absent from the result.
 */
export const loadCatalog = async (q: Queryable, names: readonly string[]): Promise<Catalog> => {
  const catalog: Catalog = {
    tables: new Map(),
    byRequestedName: new Map(),
    extensions: new Set(),
    availableExtensions: new Set(),
  };
  const ext = await q.query<{ name: string; installed: boolean }>(EXTENSIONS_SQL);
  for (const r of ext.rows) {
    if (r.installed) catalog.extensions.add(r.name);
    else catalog.availableExtensions.add(r.name);
  }
  if (names.length === 0) return catalog;
  const tables = await q.query<{
    requested: string;
    oid: string;
    schema: string;
    name: string;
    reltuples: number;
    pages: string;
    partitioned: boolean;
    actual_pages: string;
  }>(TABLES_SQL, [[...new Set(names)]]);
  const byOid = new Map<number, TableInfo>();
  for (const r of tables.rows) {
    const key = `${quoteIdent(r.schema)}.${quoteIdent(r.name)}`;
    catalog.byRequestedName.set(r.requested, key);
    if (catalog.tables.has(key)) continue;
    const analysed = r.reltuples >= 0;
    const pages = Number(r.actual_pages);
    // Never analysed: guess ~60 rows per 8 kB page so a big table is still treated as big.
    const rows = analysed ? r.reltuples : pages * 60;
    const info: TableInfo = {
      key,
      oid: Number(r.oid),
      schema: r.schema,
      name: r.name,
      rows,
      pages,
      analysed,
      partitioned: r.partitioned,
      columns: new Map(),
      indexes: [],
      foreignKeys: [],
      stats: new Map(),
    };
    catalog.tables.set(key, info);
    byOid.set(info.oid, info);
  }
  if (byOid.size === 0) return catalog;
  const oids = [...byOid.keys()];
  const db = await q.query<{ collate: string; provider: string | null }>(DATABASE_SQL);
  const dbIsC = C_LOCALES.has(db.rows[0]?.collate ?? '') && (db.rows[0]?.provider ?? 'c') !== 'i';
  const columns = await q.query<{
    table_oid: string;
    name: string;
    type: string;
    type_name: string;
    collatable: boolean;
    collation: string | null;
    collcollate: string | null;
  }>(COLUMNS_SQL, [oids]);
  for (const r of columns.rows) {
    const cCollation =
      r.collation === 'C' ||
      r.collation === 'POSIX' ||
      (r.collation === 'default' && dbIsC) ||
      (r.collation !== 'default' && C_LOCALES.has(r.collcollate ?? ''));
    byOid.get(Number(r.table_oid))?.columns.set(r.name, {
      name: r.name,
      type: r.type,
      typeName: r.type_name,
      cCollation,
      collatable: r.collatable,
    });
  }
  const indexes = await q.query<{
    table_oid: string;
    name: string;
    method: string;
    valid: boolean;
    primary: boolean;
    predicate: string | null;
    keys: string[];
    size_bytes: string;
  }>(INDEXES_SQL, [oids]);
  for (const r of indexes.rows) {
    byOid.get(Number(r.table_oid))?.indexes.push({
      name: r.name,
      method: r.method,
      valid: r.valid,
      primary: r.primary,
      keys: r.keys,
      predicate: r.predicate,
      sizeBytes: Number(r.size_bytes),
    });
  }
  const fks = await q.query<{ table_oid: string; columns: string[] }>(FOREIGN_KEYS_SQL, [oids]);
  for (const r of fks.rows) byOid.get(Number(r.table_oid))?.foreignKeys.push(r.columns);
  const infos = [...byOid.values()];
  const stats = await q.query<{
    schema: string;
    table: string;
    column: string;
    null_frac: number;
    n_distinct: number;
    avg_width: number;
    mcv: string[] | null;
    mcf: number[] | null;
    histogram: string[] | null;
  }>(STATS_SQL, [infos.map((t) => t.schema), infos.map((t) => t.name)]);
  for (const r of stats.rows) {
    const info = catalog.tables.get(`${quoteIdent(r.schema)}.${quoteIdent(r.table)}`);
    info?.stats.set(r.column, {
      nullFraction: r.null_frac,
      distinct: r.n_distinct,
      mostCommonValues: r.mcv ?? [],
      mostCommonFrequencies: r.mcf ?? [],
      histogramBounds: r.histogram ?? [],
      avgWidth: r.avg_width,
    });
  }
  return catalog;
};

/**
 * Fraction of the table's rows whose `column` equals `value`, from pg_stats (MCV list, else
 * the even share of the remaining distinct values); undefined without statistics.
 */
export const valueFraction = (
  table: TableInfo,
  column: string,
  value: string | number | boolean,
): number | undefined => {
  const s = table.stats.get(column);
  if (!s) return undefined;
  const text = typeof value === 'boolean' ? (value ? 't' : 'f') : String(value);
  const at = s.mostCommonValues.indexOf(text);
  if (at >= 0) return s.mostCommonFrequencies[at];
  const distinct = s.distinct < 0 ? -s.distinct * Math.max(table.rows, 1) : s.distinct;
  const mcvTotal = s.mostCommonFrequencies.reduce((a, b) => a + b, 0);
  const rest = Math.max(distinct - s.mostCommonValues.length, 1);
  return Math.max(0, 1 - s.nullFraction - mcvTotal) / rest;
};
