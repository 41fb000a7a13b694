import type { ResultField } from '#shared/db';
import { ValidationError } from '#shared/errors';
import { comparatorFor, type TextCollator, type ValueComparator } from './compare.ts';
import {
  addDecimal,
  type Decimal,
  divideDecimalByCount,
  formatDecimal,
  parseDecimal,
} from './decimal.ts';

/** What one shard returned (the shape of `executeStatement`'s result that merging needs). */
export interface ShardResult {
  rows: Record<string, unknown>[];
  fields: ResultField[];
}

/** An output column by position (0-based), or by name when the select list has `*`. */
export type ColumnRefSpec = { readonly index: number } | { readonly name: string };

export interface SortKey {
  readonly column: ColumnRefSpec;
  readonly descending: boolean;
  readonly nullsFirst: boolean;
}

export interface AggregateColumn {
  readonly kind: 'aggregate';
  readonly fn: 'count' | 'sum' | 'min' | 'max' | 'avg';
  readonly shardIndex: number;
  readonly name: string;
}

/** An output column of an aggregate query, with where its inputs are in the shard result. */
export type OutputColumn =
  | { readonly kind: 'key'; readonly shardIndex: number }
  | AggregateColumn
  | {
      readonly kind: 'avg';
      readonly sumIndex: number;
      readonly countIndex: number;
      readonly name: string;
    };

const INT8 = 20;
const NUMERIC = 1700;
const FLOAT4 = 700;
const FLOAT8 = 701;

const mergeError = (reason: string): ValidationError =>
  new ValidationError('SCATTER_UNSUPPORTED', `Scatter-gather cannot merge this result: ${reason}`);

const fieldAt = (fields: readonly ResultField[], index: number): ResultField => {
  const field = fields[index];
  if (!field) throw new Error(`Shard result has no column ${index + 1}`);
  return field;
};

/** The one field index a column reference points at; names must be unique in the result. */
const resolveColumn = (fields: readonly ResultField[], column: ColumnRefSpec): number => {
  const index = 'index' in column ? column.index : fields.findIndex((f) => f.name === column.name);
  const field = fields[index];
  if (!field) {
    const shown = 'index' in column ? `position ${column.index + 1}` : column.name;
    throw mergeError(`ORDER BY ${shown} is not an output column`);
  }
  if (fields.filter((f) => f.name === field.name).length > 1) {
    throw mergeError(
      `output column name "${field.name}" is ambiguous; give each column a distinct alias`,
    );
  }
  return index;
};

type RowComparator = (a: Record<string, unknown>, b: Record<string, unknown>) => number;

const buildRowComparator = (
  fields: readonly ResultField[],
  sortKeys: readonly SortKey[],
  collator: TextCollator,
): RowComparator => {
  const keys = sortKeys.map((key) => {
    const field = fieldAt(fields, resolveColumn(fields, key.column));
    const compare = comparatorFor(field.dataTypeId, collator);
    if (!compare) {
      throw mergeError(
        `ORDER BY "${field.name}" has a type (oid ${field.dataTypeId}) the merge cannot order`,
      );
    }
    return { name: field.name, compare, key };
  });
  return (a, b) => {
    for (const { name, compare, key } of keys) {
      const x = a[name];
      const y = b[name];
      const xNull = x === null || x === undefined;
      const yNull = y === null || y === undefined;
      if (xNull || yNull) {
        if (xNull && yNull) continue;
        return xNull === key.nullsFirst ? -1 : 1;
      }
      const order = compare(x, y);
      if (order !== 0) return key.descending ? -order : order;
    }
    return 0;
  };
};

const cut = <T>(rows: readonly T[], offset: number, limit: number | undefined): T[] =>
  rows.slice(offset, limit === undefined ? undefined : offset + limit);

/**
 * k-way merge of rows each shard already returned in ORDER BY order (ties keep shard order),
 * or concatenation without ORDER BY; then OFFSET and LIMIT.
 */
export const mergeRows = (
  results: readonly ShardResult[],
  options: {
    sortKeys: readonly SortKey[];
    offset: number;
    limit: number | undefined;
    collator: TextCollator;
  },
): ShardResult => {
  const first = results[0];
  if (!first) return { rows: [], fields: [] };
  const { sortKeys, offset, limit } = options;
  if (sortKeys.length === 0) {
    return {
      rows: cut(
        results.flatMap((r) => r.rows),
        offset,
        limit,
      ),
      fields: first.fields,
    };
  }
  const compare = buildRowComparator(first.fields, sortKeys, options.collator);
  const wanted = limit === undefined ? Number.POSITIVE_INFINITY : offset + limit;
  const heads = results.map(() => 0);
  const merged: Record<string, unknown>[] = [];
  // Linear scan over the shard heads: shards are few (≤ tens), so a heap buys nothing here.
  while (merged.length < wanted) {
    let best = -1;
    let bestRow: Record<string, unknown> | undefined;
    for (let s = 0; s < results.length; s += 1) {
      const row = results[s]?.rows[heads[s] ?? 0];
      if (row && (!bestRow || compare(row, bestRow) < 0)) {
        best = s;
        bestRow = row;
      }
    }
    if (!bestRow) break;
    merged.push(bestRow);
    heads[best] = (heads[best] ?? 0) + 1;
  }
  return { rows: merged.slice(offset), fields: first.fields };
};

interface Accumulator {
  readonly first: Record<string, unknown>;
  readonly values: unknown[];
}

/** Combines two non-null partial sums of a column whose type is `dataTypeId`. */
const addPartials = (dataTypeId: number, a: unknown, b: unknown): unknown => {
  if (dataTypeId === INT8) return (BigInt(String(a)) + BigInt(String(b))).toString();
  if (dataTypeId === NUMERIC) {
    return formatDecimal(addDecimal(parseDecimal(String(a)), parseDecimal(String(b))));
  }
  // float4/float8 sums: float addition is not associative, so the last digits may differ
  // from a single-database sum.
  return (a as number) + (b as number);
};

const SUMMABLE: ReadonlySet<number> = new Set([INT8, NUMERIC, FLOAT4, FLOAT8]);

interface ColumnMerger {
  readonly field: ResultField;
  start(row: Record<string, unknown>): unknown;
  add(state: unknown, row: Record<string, unknown>): unknown;
  finish(state: unknown): unknown;
}

const isNull = (v: unknown): boolean => v === null || v === undefined;

const buildColumnMergers = (
  fields: readonly ResultField[],
  columns: readonly OutputColumn[],
  collator: TextCollator,
): ColumnMerger[] =>
  columns.map((column): ColumnMerger => {
    if (column.kind === 'key') {
      const field = fieldAt(fields, column.shardIndex);
      return {
        field,
        start: (row) => row[field.name],
        add: (state) => state,
        finish: (state) => state,
      };
    }
    if (column.kind === 'avg') {
      const sumField = fieldAt(fields, column.sumIndex);
      const countField = fieldAt(fields, column.countIndex);
      const exact = sumField.dataTypeId === INT8 || sumField.dataTypeId === NUMERIC;
      if (!exact && sumField.dataTypeId !== FLOAT4 && sumField.dataTypeId !== FLOAT8) {
        throw mergeError(`avg() over type oid ${sumField.dataTypeId} is not merged`);
      }
      const read = (row: Record<string, unknown>): [unknown, bigint] => [
        row[sumField.name],
        BigInt(String(row[countField.name] ?? 0)),
      ];
      return {
        field: { name: column.name, dataTypeId: exact ? NUMERIC : FLOAT8 },
        start: read,
        add: (state, row) => {
          const [sum, count] = state as [unknown, bigint];
          const [s, c] = read(row);
          if (isNull(s)) return [sum, count + c];
          return [isNull(sum) ? s : addPartials(sumField.dataTypeId, sum, s), count + c];
        },
        finish: (state) => {
          const [sum, count] = state as [unknown, bigint];
          if (count === 0n || isNull(sum)) return null;
          if (!exact) return (sum as number) / Number(count);
          const total: Decimal = parseDecimal(String(sum));
          return formatDecimal(divideDecimalByCount(total, count));
        },
      };
    }
    const field = fieldAt(fields, column.shardIndex);
    const out: ResultField = { name: column.name, dataTypeId: field.dataTypeId };
    if (column.fn === 'count' || column.fn === 'sum') {
      if (!SUMMABLE.has(field.dataTypeId)) {
        throw mergeError(`${column.fn}() of type oid ${field.dataTypeId} is not merged`);
      }
      return {
        field: out,
        start: (row) => row[field.name] ?? null,
        add: (state, row) => {
          const v = row[field.name];
          if (isNull(v)) return state;
          return isNull(state) ? v : addPartials(field.dataTypeId, state, v);
        },
        finish: (state) => state,
      };
    }
    const compare: ValueComparator | undefined = comparatorFor(field.dataTypeId, collator);
    if (!compare) throw mergeError(`${column.fn}() of type oid ${field.dataTypeId} is not merged`);
    const sign = column.fn === 'min' ? 1 : -1;
    return {
      field: out,
      start: (row) => row[field.name] ?? null,
      add: (state, row) => {
        const v = row[field.name];
        if (isNull(v)) return state;
        return isNull(state) || sign * compare(v, state) < 0 ? v : state;
      },
      finish: (state) => state,
    };
  });

/**
 * Merges aggregate results: without GROUP BY every shard returned one row and they fold into
 * one; with GROUP BY rows fold by the values of their non-aggregate columns (which include
 * every group key). Then ORDER BY, OFFSET and LIMIT apply to the merged rows.
 */
export const mergeAggregates = (
  results: readonly ShardResult[],
  options: {
    columns: readonly OutputColumn[];
    grouped: boolean;
    sortKeys: readonly SortKey[];
    offset: number;
    limit: number | undefined;
    collator: TextCollator;
  },
): ShardResult => {
  const firstResult = results[0];
  if (!firstResult) return { rows: [], fields: [] };
  const shardFields = firstResult.fields;
  const names = shardFields.map((f) => f.name);
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate !== undefined) {
    throw mergeError(
      `output column name "${duplicate}" is repeated; give each column a distinct alias`,
    );
  }
  const mergers = buildColumnMergers(shardFields, options.columns, options.collator);
  const keyNames = options.columns.flatMap((c) =>
    c.kind === 'key' ? [fieldAt(shardFields, c.shardIndex).name] : [],
  );
  const groups = new Map<string, Accumulator>();
  for (const result of results) {
    for (const row of result.rows) {
      const key = options.grouped ? JSON.stringify(keyNames.map((n) => row[n] ?? null)) : '';
      const acc = groups.get(key);
      if (!acc) {
        groups.set(key, { first: row, values: mergers.map((m) => m.start(row)) });
        continue;
      }
      mergers.forEach((m, i) => {
        acc.values[i] = m.add(acc.values[i], row);
      });
    }
  }
  const fields = mergers.map((m) => m.field);
  const rows = [...groups.values()].map((acc) => {
    const row: Record<string, unknown> = {};
    mergers.forEach((m, i) => {
      row[m.field.name] = m.finish(acc.values[i]);
    });
    return row;
  });
  if (options.sortKeys.length > 0) {
    rows.sort(buildRowComparator(fields, options.sortKeys, options.collator));
  }
  return { rows: cut(rows, options.offset, options.limit), fields };
};
