/**
 * Candidate generation (pure): from each statement's per-table access shape, the catalog and
 * the example parameter values, the indexes worth evaluating — equality keys first, then a
 * range / LIKE-prefix / ORDER BY key; expression keys; partial indexes for rare literals;
 * GIN for containment and trigram search; join columns. Existing indexes filter out
 * duplicates and prefix-redundant candidates.
 */
import { createHash } from 'node:crypto';
import { type TableInfo, valueFraction } from './catalog.ts';
import {
  type KeyedPredicate,
  keyColumns,
  keySql,
  type ResolvedKey,
  type TableAccess,
} from './predicates.ts';
import { quoteIdent } from './sql-text.ts';
import type { CandidateSummary, IndexMethod } from './types.ts';

export interface CandidateKey {
  /** Key as SQL: `guest_id`, `lower(email)`, `full_name text_pattern_ops`, `check_in DESC`. */
  sql: string;
  /** Comparable form (no DESC): matches the key signatures of {@link ExistingIndex}. */
  signature: string;
  columns: string[];
  expression: boolean;
}

export interface Candidate {
  /** Canonical identity: table, method, keys, include, predicate. */
  id: string;
  table: string;
  method: IndexMethod;
  keys: CandidateKey[];
  include: string[];
  where: string | null;
  /** Columns the predicate reads (for HOT accounting). */
  whereColumns: string[];
  /** Statements whose shape suggested it. */
  origins: Set<string>;
  /** Why it was generated, in words, e.g. "equality on guest_id, then ORDER BY check_in". */
  reasons: Set<string>;
}

export interface StatementAccesses {
  id: string;
  accesses: TableAccess[];
  params: unknown[][];
}

export interface GenerateOptions {
  minTableRows: number;
  partialMaxFraction: number;
}

export interface GeneratedCandidates {
  candidates: Candidate[];
  rejected: { candidate: Candidate; reason: string }[];
  warnings: string[];
}

const PATTERN_OPCLASS: Readonly<Record<string, string>> = {
  text: 'text_pattern_ops',
  varchar: 'varchar_pattern_ops',
  bpchar: 'bpchar_pattern_ops',
};

/** Types too wide (or TOASTed) to copy into an index for index-only scans. */
const WIDE_TYPES: ReadonlySet<string> = new Set(['jsonb', 'json', 'bytea', 'xml', 'tsvector']);
const MAX_INCLUDE_COLUMNS = 3;
const SYSTEM_SCHEMAS: ReadonlySet<string> = new Set([
  'pg_catalog',
  'information_schema',
  'pg_toast',
]);
/** INCLUDE only columns whose values average at most this many bytes (pg_stats.avg_width). */
const MAX_INCLUDE_WIDTH_BYTES = 32;

const plainKey = (key: ResolvedKey, desc = false): CandidateKey => {
  const sql = keySql(key);
  return {
    sql: desc ? `${sql} DESC` : sql,
    signature: sql,
    columns: keyColumns(key),
    expression: key.kind === 'expression',
  };
};

const sameKey = (a: CandidateKey, b: CandidateKey): boolean => a.signature === b.signature;

/** The DDL body after `ON`: `public.t USING btree (a, b) INCLUDE (c) WHERE …`. */
export const candidateBody = (
  c: Pick<Candidate, 'table' | 'method' | 'keys' | 'include' | 'where'>,
): string => {
  const keys = c.keys.map((k) => (k.expression ? `(${k.sql})` : k.sql)).join(', ');
  const include = c.include.length > 0 ? ` INCLUDE (${c.include.map(quoteIdent).join(', ')})` : '';
  const where = c.where ? ` WHERE ${c.where}` : '';
  return `${c.table} USING ${c.method} (${keys})${include}${where}`;
};

/** A deterministic index name (≤ 63 bytes): table, key words, `_idx`. */
export const candidateName = (
  c: Pick<Candidate, 'table' | 'method' | 'keys' | 'include' | 'where'>,
): string => {
  const table = c.table.split('.').pop()?.replaceAll('"', '') ?? 't';
  const words = c.keys
    .flatMap((k) => k.sql.toLowerCase().split(/[^a-z0-9]+/))
    .filter((w) => w.length > 0 && w !== 'ops' && w !== 'desc');
  const parts = [table, ...words];
  if (c.where) parts.push('part');
  if (c.method !== 'btree') parts.push(c.method);
  let name = `${parts.join('_')}_idx`;
  if (name.length > 63 || c.include.length > 0) {
    const hash = createHash('sha1').update(candidateBody(c)).digest('hex').slice(0, 8);
    name = `${parts.join('_').slice(0, 50)}_${hash}_idx`;
  }
  return name;
};

/** `CREATE INDEX CONCURRENTLY name ON … ;` on one line. */
export const candidateDdl = (
  c: Pick<Candidate, 'table' | 'method' | 'keys' | 'include' | 'where'>,
): string => `CREATE INDEX CONCURRENTLY ${quoteIdent(candidateName(c))} ON ${candidateBody(c)};`;

export const summarizeCandidate = (c: Candidate): CandidateSummary => ({
  table: c.table,
  method: c.method,
  keys: c.keys.map((k) => k.sql),
  include: c.include,
  where: c.where,
  ddl: candidateDdl(c),
});

/** Whether every example value of the pattern parameter (or the literal) starts with a fixed prefix. */
const likeIsPrefix = (p: KeyedPredicate, params: unknown[][]): boolean | undefined => {
  const patterns: string[] = [];
  if (p.literal && typeof p.literal.value === 'string') patterns.push(p.literal.value);
  // Only a bare `$n` is the pattern itself ('%' || $1 || '%' is not a prefix whatever $1 is).
  const n = p.params.length === 1 && p.bareParam ? (p.params[0] as number) : undefined;
  if (p.params.length > 0 && n === undefined) return undefined;
  if (n !== undefined) {
    for (const set of params) {
      const v = set[n - 1];
      if (typeof v === 'string') patterns.push(v);
    }
  }
  if (patterns.length === 0) return undefined;
  return patterns.every((v) => v.length > 0 && v[0] !== '%' && v[0] !== '_');
};

/** 1 / distinct values: smaller is more selective; expressions and unknowns count as selective. */
const keySelectivity = (table: TableInfo, key: ResolvedKey): number => {
  if (key.kind !== 'column') return 0;
  const s = table.stats.get(key.column);
  if (!s) return 0.001;
  const distinct = s.distinct < 0 ? -s.distinct * Math.max(table.rows, 1) : s.distinct;
  return 1 / Math.max(distinct, 1);
};

const partialPredicate = (p: KeyedPredicate): string | null => {
  if (p.key.kind !== 'column' || !p.literal) return null;
  const col = quoteIdent(p.key.column);
  if (p.literal.value === true && p.literal.sql === 'true') return col;
  return `${col} = ${p.literal.sql}`;
};

/** Generates every candidate for the workload, deduplicated, with the rejected ones and why. */
export const generateCandidates = (
  statements: readonly StatementAccesses[],
  tables: ReadonlyMap<string, TableInfo>,
  extensions: ReadonlySet<string>,
  options: GenerateOptions,
): GeneratedCandidates => {
  const byId = new Map<string, Candidate>();
  const warnings = new Set<string>();

  let made: Candidate[] = [];
  const add = (
    statementId: string,
    table: TableInfo,
    method: IndexMethod,
    keys: CandidateKey[],
    reason: string,
    where: { sql: string; columns: string[] } | null = null,
    include: string[] = [],
  ): void => {
    if (keys.length === 0) return;
    const unique: CandidateKey[] = [];
    for (const k of keys) if (!unique.some((u) => sameKey(u, k))) unique.push(k);
    const shape = { table: table.key, method, keys: unique, include, where: where?.sql ?? null };
    const id = candidateBody(shape);
    let c = byId.get(id);
    if (!c) {
      c = {
        ...shape,
        id,
        whereColumns: where?.columns ?? [],
        origins: new Set(),
        reasons: new Set(),
      };
      byId.set(id, c);
    }
    c.origins.add(statementId);
    c.reasons.add(reason);
    made.push(c);
  };

  for (const st of statements) {
    for (const access of st.accesses) {
      const table = tables.get(access.table);
      if (!table) continue;
      made = [];
      const eqPreds = access.predicates.filter((p) => p.op === 'eq');
      const literalFraction = (p: KeyedPredicate) =>
        p.literal && p.key.kind === 'column'
          ? valueFraction(table, p.key.column, p.literal.value)
          : undefined;
      // Equality keys, most selective first; hard-coded literals matching half the table or more
      // (e.g. a boolean flag) never lead anything.
      const eqKeys = eqPreds
        .filter((p) => (literalFraction(p) ?? 0) <= 0.5)
        .sort((a, b) => keySelectivity(table, a.key) - keySelectivity(table, b.key))
        .map((p) => plainKey(p.key));
      const eqUnique: CandidateKey[] = [];
      for (const k of eqKeys) if (!eqUnique.some((u) => sameKey(u, k))) eqUnique.push(k);
      const eqNames = eqUnique.map((k) => k.sql).join(', ');

      for (const k of eqUnique) add(st.id, table, 'btree', [k], `equality on ${k.sql}`);
      if (eqUnique.length > 1) add(st.id, table, 'btree', eqUnique, `equality on ${eqNames}`);

      const rangeKeys = access.predicates
        .filter((p) => p.op === 'range')
        .map((p) => plainKey(p.key));
      for (const r of rangeKeys) {
        if (eqUnique.some((k) => sameKey(k, r))) continue;
        add(st.id, table, 'btree', [r], `range on ${r.sql}`);
        if (eqUnique.length > 0) {
          add(
            st.id,
            table,
            'btree',
            [...eqUnique, r],
            `equality on ${eqNames}, then range on ${r.sql}`,
          );
        }
      }

      for (const p of access.predicates.filter((q) => q.op === 'like')) {
        const column = p.key.kind === 'column' ? table.columns.get(p.key.column) : undefined;
        const prefix = likeIsPrefix(p, st.params);
        if (!p.caseInsensitive && prefix !== false && column) {
          const opclass = column.cCollation ? undefined : PATTERN_OPCLASS[column.typeName];
          if (column.cCollation || opclass) {
            const sql = opclass ? `${quoteIdent(column.name)} ${opclass}` : quoteIdent(column.name);
            const k: CandidateKey = {
              sql,
              signature: sql,
              columns: [column.name],
              expression: false,
            };
            const why = opclass
              ? `LIKE prefix on ${column.name} under a non-C collation (needs ${opclass})`
              : `LIKE prefix on ${column.name}`;
            add(st.id, table, 'btree', [k], why);
            if (eqUnique.length > 0)
              add(st.id, table, 'btree', [...eqUnique, k], `equality on ${eqNames}, then ${why}`);
          }
        }
        if ((p.caseInsensitive || prefix !== true) && column && PATTERN_OPCLASS[column.typeName]) {
          if (extensions.has('pg_trgm')) {
            const sql = `${quoteIdent(column.name)} gin_trgm_ops`;
            add(
              st.id,
              table,
              'gin',
              [{ sql, signature: sql, columns: [column.name], expression: false }],
              `${p.caseInsensitive ? 'ILIKE' : 'LIKE'} substring search on ${column.name} (trigram GIN)`,
            );
          } else {
            warnings.add(
              `${st.id}: ${p.caseInsensitive ? 'ILIKE' : 'LIKE'} substring search on ${table.key}.${column.name} needs a trigram index; run CREATE EXTENSION pg_trgm to let the advisor propose one`,
            );
          }
        }
      }

      for (const p of access.predicates.filter((q) => q.op === 'contains')) {
        const column = p.key.kind === 'column' ? table.columns.get(p.key.column) : undefined;
        if (column && (column.typeName === 'jsonb' || column.typeName.startsWith('_'))) {
          add(st.id, table, 'gin', [plainKey(p.key)], `containment (@>) on ${column.name}`);
        }
      }

      if (access.orderBy.length > 0) {
        const allSame = access.orderBy.every((o) => o.desc === access.orderBy[0]?.desc);
        const orderKeys = access.orderBy.map((o) => plainKey(o.key, !allSame && o.desc));
        const orderNames = orderKeys.map((k) => k.sql).join(', ');
        const rest = orderKeys.filter((o) => !eqUnique.some((k) => sameKey(k, o)));
        if (eqUnique.length > 0 && rest.length > 0) {
          add(
            st.id,
            table,
            'btree',
            [...eqUnique, ...rest],
            `equality on ${eqNames}, then ORDER BY ${orderNames}`,
          );
        }
        // An index on the ORDER BY column alone only when nothing filters this table: with a
        // filter, a LIMIT plan walking that index can read most of the table.
        const filtered = access.predicates.length > 0 || access.otherFilterColumns.length > 0;
        if (!filtered) add(st.id, table, 'btree', orderKeys, `ORDER BY ${orderNames}`);
      }

      for (const column of new Set(access.joinColumns)) {
        const fk = table.foreignKeys.some((cols) => cols[0] === column);
        add(
          st.id,
          table,
          'btree',
          [plainKey({ kind: 'column', column })],
          fk ? `join on foreign key column ${column}` : `join on ${column}`,
        );
      }

      for (const p of eqPreds) {
        const fraction = literalFraction(p);
        const where = partialPredicate(p);
        if (where === null || fraction === undefined || fraction > options.partialMaxFraction)
          continue;
        const restEq = eqUnique.filter((k) => k.signature !== keySql(p.key));
        const next =
          access.orderBy.length > 0
            ? access.orderBy.map((o) => plainKey(o.key))
            : rangeKeys.slice(0, 1);
        const keys = [...restEq, ...next];
        const finalKeys = keys.length > 0 ? keys : [plainKey(p.key)];
        add(
          st.id,
          table,
          'btree',
          finalKeys,
          `partial index for the rare literal ${where} (${(fraction * 100).toFixed(1)}% of rows)`,
          { sql: where, columns: keyColumns(p.key) },
        );
      }

      // INCLUDE variants for index-only scans: the btree candidates holding every equality key,
      // plus the few narrow columns the statement still reads from this table.
      const referenced = access.referencedColumns;
      if (referenced) {
        for (const c of [...made]) {
          if (c.method !== 'btree' || c.include.length > 0 || c.where !== null) continue;
          if (!eqUnique.every((k) => c.keys.some((ck) => sameKey(ck, k)))) continue;
          const keyCols = new Set(c.keys.flatMap((k) => (k.expression ? [] : k.columns)));
          const extra = referenced.filter((col) => !keyCols.has(col));
          const narrow = extra.every(
            (col) =>
              !WIDE_TYPES.has(table.columns.get(col)?.typeName ?? 'jsonb') &&
              (table.stats.get(col)?.avgWidth ?? Number.POSITIVE_INFINITY) <=
                MAX_INCLUDE_WIDTH_BYTES,
          );
          if (extra.length === 0 || extra.length > MAX_INCLUDE_COLUMNS || !narrow) continue;
          add(
            st.id,
            table,
            'btree',
            c.keys,
            `${[...c.reasons][0] ?? 'keys'}, INCLUDE ${extra.join(', ')} for an index-only scan`,
            null,
            extra,
          );
        }
      }
    }
  }

  const candidates: Candidate[] = [];
  const rejected: { candidate: Candidate; reason: string }[] = [];
  for (const c of byId.values()) {
    const table = tables.get(c.table) as TableInfo;
    if (SYSTEM_SCHEMAS.has(table.schema)) {
      rejected.push({ candidate: c, reason: 'system catalogs are not indexed by users' });
      continue;
    }
    if (table.rows < options.minTableRows) {
      rejected.push({
        candidate: c,
        reason: `table has ~${Math.round(table.rows)} rows, below ADVISOR_MIN_TABLE_ROWS (${options.minTableRows}): a sequential scan is already cheap`,
      });
      continue;
    }
    if (table.partitioned) {
      rejected.push({
        candidate: c,
        reason: `${table.key} is partitioned: PostgreSQL 15 cannot CREATE INDEX CONCURRENTLY on it (a plain CREATE INDEX blocks writes to every partition). Create the index ON ONLY ${table.key}, build it CONCURRENTLY on each partition and ALTER INDEX … ATTACH PARTITION each one`,
      });
      continue;
    }
    const existing = table.indexes.find(
      (ix) =>
        ix.valid &&
        ix.method === c.method &&
        (ix.predicate ?? null) === c.where &&
        ix.keys.length >= c.keys.length &&
        c.keys.every((k, n) => ix.keys[n] === k.signature),
    );
    if (existing) {
      rejected.push({
        candidate: c,
        reason: `already served by existing index ${existing.name} (${existing.keys.join(', ')})`,
      });
      continue;
    }
    candidates.push(c);
  }
  return { candidates, rejected, warnings: [...warnings] };
};
