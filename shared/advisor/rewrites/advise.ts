import type { Database, Queryable } from '#shared/db';
import { withReadOnlyTransaction } from '#shared/db';
import { parseSelect, walkNodes } from './ast.ts';
import { explainStatement, planIndexNames } from './explain.ts';
import { type DetectOptions, detectRewrites } from './rules.ts';
import type { RewriteCandidate, RewriteSuggestion, SchemaInfo } from './types.ts';

/** One statement to examine: its text, and its parameter values when known. */
export interface RewriteInput {
  readonly sql: string;
  readonly params?: readonly unknown[];
}

export interface AdviseRewritesOptions
  extends Pick<DetectOptions, 'deepOffsetRows' | 'minOrListArms' | 'unknownOffsetIsCandidate'> {
  /** statement_timeout of the read-only transaction, in ms. */
  readonly timeoutMs?: number;
  /** A rewrite must cut the estimated cost by at least this fraction (0.05 = 5 %). */
  readonly minCostReduction?: number;
}

/** A statement or rewrite that could not be examined, as data (the others go on). */
export interface RewriteError {
  readonly sql: string;
  readonly rule?: string;
  readonly error: Error;
}

export interface RewriteAdvice {
  readonly suggestions: RewriteSuggestion[];
  readonly errors: RewriteError[];
}

const DEFAULT_MIN_COST_REDUCTION = 0.05;

/**
 * Finds rewrites of each statement ({@link detectRewrites}) and keeps those whose rewritten
 * plan is measurably cheaper: both texts are EXPLAINed (FORMAT JSON, never ANALYZE) in one
 * read-only transaction, with the statement's real parameter values when given. A NOT IN
 * rewrite is kept even when it costs the same, because it also fixes a NULL-related wrong
 * result (it says so in `correctnessFix`).
 */
export const adviseRewrites = async (
  db: Database,
  inputs: readonly RewriteInput[],
  options: AdviseRewritesOptions = {},
): Promise<RewriteAdvice> => {
  const suggestions: RewriteSuggestion[] = [];
  const errors: RewriteError[] = [];
  const minReduction = options.minCostReduction ?? DEFAULT_MIN_COST_REDUCTION;
  await withReadOnlyTransaction(db, { timeoutMs: options.timeoutMs ?? 10_000 }, async (tx) => {
    const schema = await loadSchemaInfo(
      tx,
      inputs.flatMap((i) => referencedRelations(i.sql)),
    );
    for (const input of inputs) {
      let candidates: RewriteCandidate[];
      try {
        candidates = detectRewrites(input.sql, { ...options, schema, params: input.params });
      } catch (err) {
        errors.push({ sql: input.sql, error: asError(err) });
        continue;
      }
      for (const c of candidates) {
        try {
          const measured = await measureRewrite(tx, c, input.params);
          if (
            measured.correctnessFix ||
            measured.costAfter < measured.costBefore * (1 - minReduction)
          ) {
            suggestions.push(measured);
          }
        } catch (err) {
          errors.push({ sql: input.sql, rule: c.rule, error: asError(err) });
        }
      }
    }
  });
  return { suggestions, errors };
};

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

/** EXPLAINs the original and the rewrite on `tx` (inside a savepoint each). */
export const measureRewrite = async (
  tx: Queryable,
  c: RewriteCandidate,
  params: readonly unknown[] | undefined,
): Promise<RewriteSuggestion> => {
  const paramCount = parseSelect(c.originalSql)?.maxParam ?? 0;
  const known = paramCount === 0 || (params !== undefined && params.length >= paramCount);
  const values = known ? [...(params ?? []).slice(0, paramCount)] : undefined;
  const before = await inSavepoint(tx, () =>
    explainStatement(tx, c.originalSql, paramCount, values),
  );
  let afterValues = values;
  if (c.extraParams && values) {
    const probe = await inSavepoint(tx, () =>
      tx.query(`${withMarker(c.extraParams?.probeSql ?? '')}`, values),
    );
    const row = probe.rows[0];
    if (!row) throw new Error('the query returns no rows: nothing to paginate');
    const keys = Object.values(row);
    const next: unknown[] = [...values];
    c.extraParams.numbers.forEach((n, i) => {
      next[n - 1] = keys[i];
    });
    afterValues = next;
  }
  const afterCount = Math.max(paramCount, ...(c.extraParams?.numbers ?? []));
  const after = await inSavepoint(tx, () =>
    explainStatement(tx, c.rewrittenSql, afterCount, afterValues),
  );
  return {
    ...c,
    costBefore: before.totalCost,
    costAfter: after.totalCost,
    costRatio: before.totalCost > 0 ? after.totalCost / before.totalCost : 1,
    planMode: before.mode,
    indexesUsed: [...planIndexNames(after.plan)].sort(),
  };
};

/** `SELECT …` → `SELECT /* dbopt *\/ …`: marks our own statement for the collectors. */
const withMarker = (sql: string): string => {
  const trimmed = sql.trimStart();
  const space = trimmed.search(/\s/);
  return space < 0 ? trimmed : `${trimmed.slice(0, space)} /* dbopt */${trimmed.slice(space)}`;
};

const inSavepoint = async <T>(tx: Queryable, work: () => Promise<T>): Promise<T> => {
  await tx.query('SAVEPOINT dbopt_rewrite');
  try {
    const result = await work();
    await tx.query('RELEASE SAVEPOINT dbopt_rewrite');
    return result;
  } catch (err) {
    await tx.query('ROLLBACK TO SAVEPOINT dbopt_rewrite');
    throw err;
  }
};

/** Names of the relations a statement reads (as written, possibly schema-qualified). */
export const referencedRelations = (sql: string): string[] => {
  let parsed: ReturnType<typeof parseSelect>;
  try {
    parsed = parseSelect(sql);
  } catch {
    return []; // unparsable text is reported by detectRewrites for that statement
  }
  const names = new Set<string>();
  walkNodes(parsed?.select, (type, body) => {
    if (type === 'RangeVar') names.add(String(body.relname));
    return true;
  });
  return [...names];
};

const SQL_COLUMNS = `
SELECT /* dbopt */ n.nspname, c.relname, a.attname,
  format_type(a.atttypid, a.atttypmod) AS type,
  pg_table_is_visible(c.oid) AS visible,
  a.attnotnull AS not_null,
  EXISTS (
    SELECT 1
    FROM pg_index i
    WHERE i.indrelid = c.oid
      AND i.indisvalid
      AND i.indkey[0] = a.attnum
  ) AS indexed
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid
WHERE c.relname = ANY($1::text[])
  AND c.relkind IN ('r', 'p', 'm', 'f')
  AND a.attnum > 0
  AND NOT a.attisdropped`;

interface ColumnRow extends Record<string, unknown> {
  nspname: string;
  relname: string;
  attname: string;
  type: string;
  visible: boolean;
  not_null: boolean;
  indexed: boolean;
}

/** Column types and leading index columns of the named relations, from the catalog. */
export const loadSchemaInfo = async (
  q: Queryable,
  relations: readonly string[],
): Promise<SchemaInfo> => {
  const columns = new Map<string, ColumnInfo>();
  if (relations.length > 0) {
    const { rows } = await q.query<ColumnRow>(SQL_COLUMNS, [[...new Set(relations)]]);
    for (const row of rows) {
      const info = { type: row.type, indexed: row.indexed, notNull: row.not_null };
      columns.set(`${row.nspname}.${row.relname}.${row.attname}`, info);
      if (row.visible) columns.set(`${row.relname}.${row.attname}`, info);
    }
  }
  return schemaInfoFrom(columns);
};

/** What the rules know of one column. */
export interface ColumnInfo {
  readonly type: string;
  readonly indexed: boolean;
  /** Declared NOT NULL (absent: unknown). */
  readonly notNull?: boolean;
}

/** A {@link SchemaInfo} over a map `relation.column` → type, indexed and NOT NULL flags. */
export const schemaInfoFrom = (columns: ReadonlyMap<string, ColumnInfo>): SchemaInfo => ({
  columnType: (relation, column) => columns.get(`${relation}.${column}`)?.type,
  isIndexed: (relation, column) => columns.get(`${relation}.${column}`)?.indexed === true,
  isNotNull: (relation, column) => columns.get(`${relation}.${column}`)?.notNull === true,
});
