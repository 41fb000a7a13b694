import { hasSqlDetails, parseSync } from 'libpg-query';
import { SqlSyntaxError, ValidationError } from '#shared/errors';
import {
  type AstObject,
  asList,
  asObject,
  integerConst,
  nodeOf,
  nodeType,
  stringValues,
  structuralKey,
  walkNodes,
} from '#shared/sql';
import { compareCodePoints, type TextCollator } from './compare.ts';
import {
  type AggregateColumn,
  type ColumnRefSpec,
  mergeAggregates,
  mergeRows,
  type OutputColumn,
  type ShardResult,
  type SortKey,
} from './merge.ts';
import { type SqlToken, scanTokens, sliceSql, spliceSql, type TextEdit } from './sql-text.ts';

export type { ShardResult } from './merge.ts';

/** How the shards' results are combined. */
export type ScatterShape = 'concatenate' | 'merge-sort' | 'aggregate' | 'group-aggregate';

/** A decided scatter-gather: the SQL every shard runs and how to merge what they return. */
export interface ScatterPlan {
  readonly shape: ScatterShape;
  /** The statement sent to every shard (LIMIT pushed down, avg split, ORDER BY removed…). */
  readonly shardSql: string;
  /** Combines the shards' results into the result one database holding all rows would give. */
  merge(results: readonly ShardResult[]): ShardResult;
}

export interface ScatterPlanOptions {
  /** Text ordering for ORDER BY / min / max; defaults to code point order (C, C.UTF-8). */
  collator?: TextCollator;
}

const unsupported = (reason: string): ValidationError =>
  new ValidationError('SCATTER_UNSUPPORTED', `Scatter-gather cannot merge this query: ${reason}`);

const MERGEABLE = new Set(['count', 'sum', 'min', 'max', 'avg']);
// Built-in aggregates (pg_aggregate) whose per-shard results cannot be combined here.
const OTHER_AGGREGATES = new Set([
  'any_value',
  'array_agg',
  'bit_and',
  'bit_or',
  'bit_xor',
  'bool_and',
  'bool_or',
  'corr',
  'covar_pop',
  'covar_samp',
  'cume_dist',
  'dense_rank',
  'every',
  'json_agg',
  'json_object_agg',
  'jsonb_agg',
  'jsonb_object_agg',
  'mode',
  'percent_rank',
  'percentile_cont',
  'percentile_disc',
  'range_agg',
  'range_intersect_agg',
  'rank',
  'regr_avgx',
  'regr_avgy',
  'regr_count',
  'regr_intercept',
  'regr_r2',
  'regr_slope',
  'regr_sxx',
  'regr_sxy',
  'regr_syy',
  'stddev',
  'stddev_pop',
  'stddev_samp',
  'string_agg',
  'var_pop',
  'var_samp',
  'variance',
  'xmlagg',
]);

const functionName = (call: AstObject): string => stringValues(call.funcname).join('.');
const baseName = (call: AstObject): string => stringValues(call.funcname).at(-1) ?? '';

const isAggregateCall = (call: AstObject): boolean => {
  const name = baseName(call);
  return (
    MERGEABLE.has(name) ||
    OTHER_AGGREGATES.has(name) ||
    Boolean(call.agg_star || call.agg_distinct || call.agg_order || call.agg_filter) ||
    Boolean(call.agg_within_group)
  );
};

/** Rejects an aggregate call that cannot be merged; returns its merge function otherwise. */
const mergeableAggregate = (call: AstObject): AggregateColumn['fn'] => {
  const names = stringValues(call.funcname);
  const name = names.at(-1) ?? '';
  const shown = functionName(call);
  if (!MERGEABLE.has(name)) {
    throw unsupported(
      `the aggregate ${shown}() cannot be combined from per-shard results; only count, sum, min, max and avg can`,
    );
  }
  if (names.length > 1 && names[0] !== 'pg_catalog') {
    throw unsupported(`${shown}() is not a built-in aggregate`);
  }
  if (call.agg_distinct) {
    throw unsupported(
      `${name}(DISTINCT …) needs every distinct value from every shard; shards can hold the same value`,
    );
  }
  if (call.agg_within_group)
    throw unsupported(`${name}() WITHIN GROUP is an ordered-set aggregate`);
  if (!(name === 'count' && call.agg_star) && asList(call.args).length !== 1) {
    throw unsupported(`${name}() must take exactly one argument`);
  }
  return name as AggregateColumn['fn'];
};

interface Target {
  readonly index: number;
  readonly body: AstObject;
  readonly val: unknown;
  readonly alias: string | undefined;
  readonly isStar: boolean;
  /** The aggregate call when the whole target is one (e.g. `sum(x) AS total`). */
  readonly aggregate: AstObject | undefined;
}

/** The output column name PostgreSQL gives a target (FigureColname), when it is evident. */
const outputName = (target: Target): string | undefined => {
  if (target.alias !== undefined) return target.alias;
  const column = nodeOf(target.val, 'ColumnRef');
  if (column) return nodeOf(asList(column.fields).at(-1), 'String')?.sval as string | undefined;
  const call = nodeOf(target.val, 'FuncCall');
  return call ? baseName(call) : undefined;
};

/** Throws for a construct that makes one shard's answer differ from its share of the whole. */
const rejectUnmergeableConstructs = (select: AstObject): void => {
  if (select.op !== 'SETOP_NONE') {
    throw unsupported(
      'set operations (UNION / INTERSECT / EXCEPT) are not merged; query each part',
    );
  }
  if (select.valuesLists) throw unsupported('a VALUES list is not a query over sharded rows');
  if (select.intoClause) throw unsupported('SELECT INTO writes a table; only reads are scattered');
  if (select.lockingClause) {
    throw unsupported('FOR UPDATE / FOR SHARE row locks cannot be taken across shards');
  }
  if (asList(select.fromClause).length === 0) {
    throw unsupported('a SELECT without FROM would return one copy of its row from every shard');
  }
  const distinct = asList(select.distinctClause);
  if (distinct.length > 0) {
    const first = asObject(distinct[0]);
    const on = first !== undefined && Object.keys(first).length > 0;
    throw unsupported(
      `${on ? 'DISTINCT ON' : 'DISTINCT'} would keep duplicates that live on different shards`,
    );
  }
  if (select.havingClause) {
    throw unsupported('HAVING filters per-shard groups; filter the merged groups instead');
  }
  if (select.windowClause) throw unsupported('window functions (WINDOW / OVER) are not merged');
  if (select.limitOption === 'LIMIT_OPTION_WITH_TIES') {
    throw unsupported('FETCH … WITH TIES is not merged; use LIMIT');
  }
  for (const item of asList(select.groupClause)) {
    if (nodeType(item) === 'GroupingSet') {
      throw unsupported('GROUPING SETS / ROLLUP / CUBE are not merged');
    }
  }
  const checkNested = (where: 'CTE' | 'subquery') => (type: string, body: AstObject) => {
    if (type === 'SelectStmt') {
      const computes =
        body.op !== 'SETOP_NONE' ||
        asList(body.groupClause).length > 0 ||
        body.havingClause ||
        asList(body.distinctClause).length > 0 ||
        body.limitCount ||
        body.limitOffset ||
        body.windowClause;
      if (computes) {
        throw unsupported(
          `a ${where} that groups, deduplicates, limits or combines results would be computed per shard, not over all rows`,
        );
      }
    }
    if (type === 'FuncCall' && (body.over || isAggregateCall(body))) {
      const what = body.over ? 'window function' : 'aggregate';
      throw unsupported(
        `a ${where} with the ${what} ${functionName(body)}() would be computed per shard, not over all rows`,
      );
    }
    if (type === 'GroupingFunc') throw unsupported('GROUPING() is not merged');
    return true;
  };
  walkNodes(select.withClause, checkNested('CTE'));
  for (const [key, part] of Object.entries(select)) {
    if (key === 'withClause') continue;
    walkNodes(part, (type, body) => {
      if (type === 'SelectStmt') {
        checkNested('subquery')(type, body);
        walkNodes(body, checkNested('subquery'));
        return false;
      }
      if (type === 'FuncCall' && body.over) {
        throw unsupported(`window functions (${functionName(body)}() OVER …) are not merged`);
      }
      if (type === 'GroupingFunc') throw unsupported('GROUPING() is not merged');
      return true;
    });
  }
};

/** Finds aggregates nested in a target expression (outside subqueries). */
const nestedAggregate = (val: unknown): AstObject | undefined => {
  let found: AstObject | undefined;
  walkNodes(val, (type, body) => {
    if (type === 'SelectStmt') return false;
    if (type === 'FuncCall' && isAggregateCall(body)) found ??= body;
    return true;
  });
  return found;
};

const readTargets = (select: AstObject): Target[] =>
  asList(select.targetList).map((wrapper, index) => {
    const body = nodeOf(wrapper, 'ResTarget') ?? {};
    const call = nodeOf(body.val, 'FuncCall');
    const column = nodeOf(body.val, 'ColumnRef');
    return {
      index,
      body,
      val: body.val,
      alias: typeof body.name === 'string' ? body.name : undefined,
      isStar: column !== undefined && asList(column.fields).some((f) => nodeType(f) === 'A_Star'),
      aggregate: call && isAggregateCall(call) ? call : undefined,
    };
  });

const readCount = (wrapper: unknown, clause: string): number | undefined => {
  if (wrapper === undefined) return undefined;
  const constant = nodeOf(wrapper, 'A_Const');
  if (constant?.isnull) return undefined; // LIMIT ALL / LIMIT NULL
  const value = integerConst(wrapper);
  if (value === undefined || value < 0) {
    throw unsupported(
      `${clause} must be a non-negative integer literal (not a parameter or expression)`,
    );
  }
  return value;
};

const readSortKeys = (select: AstObject, targets: readonly Target[]): SortKey[] => {
  const hasStar = targets.some((t) => t.isStar);
  return asList(select.sortClause).map((wrapper) => {
    const sortBy = nodeOf(wrapper, 'SortBy') ?? {};
    if (sortBy.sortby_dir === 'SORTBY_USING') throw unsupported('ORDER BY … USING is not merged');
    const descending = sortBy.sortby_dir === 'SORTBY_DESC';
    const nullsFirst =
      sortBy.sortby_nulls === 'SORTBY_NULLS_FIRST'
        ? true
        : sortBy.sortby_nulls === 'SORTBY_NULLS_LAST'
          ? false
          : descending; // PostgreSQL: NULLS LAST for ASC, NULLS FIRST for DESC
    return { column: resolveSortColumn(sortBy.node, targets, hasStar), descending, nullsFirst };
  });
};

const resolveSortColumn = (
  expression: unknown,
  targets: readonly Target[],
  hasStar: boolean,
): ColumnRefSpec => {
  const position = integerConst(expression);
  if (position !== undefined) {
    if (position < 1 || (!hasStar && position > targets.length)) {
      throw unsupported(`ORDER BY ${position} is not a position in the select list`);
    }
    return { index: position - 1 };
  }
  const column = nodeOf(expression, 'ColumnRef');
  const fields = column ? stringValues(column.fields) : [];
  // ORDER BY name prefers an output column of that name, as PostgreSQL does (SQL-92 rule).
  if (fields.length === 1 && fields[0]) {
    const byName = targets.find((t) => outputName(t) === fields[0]);
    if (byName && !hasStar) return { index: byName.index };
    if (hasStar) return { name: fields[0] };
  }
  const key = structuralKey(expression);
  const same = targets.find((t) => structuralKey(t.val) === key);
  if (same && !hasStar) return { index: same.index };
  throw unsupported(
    'ORDER BY must name an output column (by name, alias or position) or repeat a select-list expression',
  );
};

const parseOne = (sql: string): { select: AstObject; start: number; end: number } => {
  let stmts: readonly unknown[];
  try {
    stmts = asList(parseSync(sql).stmts);
  } catch (err) {
    if (!hasSqlDetails(err)) throw err;
    const position = (err.sqlDetails?.cursorPosition ?? 0) + 1;
    throw new SqlSyntaxError('SQL_SYNTAX_ERROR', `${err.message} (position ${position})`, {
      cause: err,
      details: { position },
    });
  }
  if (stmts.length !== 1) {
    throw unsupported(`send exactly one statement (got ${stmts.length})`);
  }
  const raw = asObject(stmts[0]) ?? {};
  const select = nodeOf(raw.stmt, 'SelectStmt');
  if (!select) {
    throw unsupported(
      `only SELECT is scattered (got ${nodeType(raw.stmt) || 'an empty statement'})`,
    );
  }
  const start = typeof raw.stmt_location === 'number' ? raw.stmt_location : 0;
  const length = typeof raw.stmt_len === 'number' ? raw.stmt_len : 0;
  const end = length > 0 ? start + length : Buffer.byteLength(sql, 'utf8');
  return { select, start, end };
};

/** First depth-0 token in [start, end) that is one of the keywords. */
const findKeyword = (
  tokens: readonly SqlToken[],
  start: number,
  end: number,
  words: ReadonlySet<string>,
): SqlToken | undefined =>
  tokens.find(
    (t) => t.start >= start && t.end <= end && t.depth === 0 && t.isKeyword && words.has(t.word),
  );

const LIMIT_WORDS: ReadonlySet<string> = new Set(['LIMIT', 'OFFSET', 'FETCH']);
const ORDER_AND_LIMIT_WORDS: ReadonlySet<string> = new Set(['ORDER', ...LIMIT_WORDS]);

/**
 * Decides how a SELECT is answered from N shards that each hold a disjoint part of the rows,
 * from PostgreSQL's own parse tree. Await `initSqlParser()` (shared/sql) once before use.
 *
 * - no aggregates, ORDER BY or LIMIT → concatenate;
 * - ORDER BY [LIMIT k OFFSET o] → shards run `… ORDER BY … LIMIT o+k`, results are k-way merged;
 * - count/sum/min/max/avg without GROUP BY → one row combined from the shards' rows
 *   (avg runs as sum and count);
 * - GROUP BY (keys in the select list) → groups merged by key, then ORDER BY / OFFSET / LIMIT.
 *
 * @throws ValidationError `SCATTER_UNSUPPORTED` naming the construct that cannot be merged.
 * @throws SqlSyntaxError `SQL_SYNTAX_ERROR` when the text does not parse.
 * @example
 * const plan = planScatter('SELECT id FROM t ORDER BY id DESC LIMIT 10 OFFSET 5');
 * plan.shardSql; // 'SELECT id FROM t ORDER BY id DESC LIMIT 15'
 */
export const planScatter = (sql: string, options: ScatterPlanOptions = {}): ScatterPlan => {
  const collator = options.collator ?? compareCodePoints;
  const { select, start, end } = parseOne(sql);
  rejectUnmergeableConstructs(select);
  const targets = readTargets(select);
  for (const target of targets) {
    if (target.aggregate) {
      mergeableAggregate(target.aggregate);
      const inner = nestedAggregate(asList(target.aggregate.args));
      if (inner) throw unsupported(`aggregate ${functionName(inner)}() nested in an aggregate`);
      continue;
    }
    const inner = nestedAggregate(target.val);
    if (inner) {
      throw unsupported(
        `the aggregate ${functionName(inner)}() inside an expression; select each aggregate as its own column and combine them after the merge`,
      );
    }
  }
  const sortKeys = readSortKeys(select, targets);
  const limit = readCount(select.limitCount, 'LIMIT');
  const offset = readCount(select.limitOffset, 'OFFSET') ?? 0;
  const tokens = scanTokens(sql);
  const grouped = asList(select.groupClause).length > 0;
  const aggregated = targets.some((t) => t.aggregate);

  if (!grouped && !aggregated) {
    // Rows are only re-ordered and cut: push LIMIT o+k down, drop OFFSET (applied after merge).
    const limitToken = findKeyword(tokens, start, end, LIMIT_WORDS);
    // A newline, not a space: the text before may end in a `--` comment.
    const pushed = limit === undefined ? '' : `\nLIMIT ${offset + limit}`;
    const shardSql = limitToken
      ? `${sliceSql(sql, start, limitToken.start).trimEnd()}${pushed}`
      : sliceSql(sql, start, end);
    return Object.freeze({
      shape: sortKeys.length > 0 ? 'merge-sort' : 'concatenate',
      shardSql,
      merge: (results: readonly ShardResult[]) =>
        mergeRows(results, { sortKeys, offset, limit, collator }),
    });
  }

  if (targets.some((t) => t.isStar)) {
    throw unsupported('SELECT * with aggregates or GROUP BY; list the group keys explicitly');
  }
  if (grouped) checkGroupKeysSelected(select, targets);
  const { shardSql, columns } = rewriteAggregates(sql, start, end, tokens, targets);
  return Object.freeze({
    shape: grouped ? 'group-aggregate' : 'aggregate',
    shardSql,
    merge: (results: readonly ShardResult[]) =>
      mergeAggregates(results, { columns, grouped, sortKeys, offset, limit, collator }),
  });
};

/** Every GROUP BY key must be an output column, so the merged rows can be keyed by it. */
const checkGroupKeysSelected = (select: AstObject, targets: readonly Target[]): void => {
  for (const item of asList(select.groupClause)) {
    const position = integerConst(item);
    if (position !== undefined) {
      const target = targets[position - 1];
      if (!target || target.aggregate) {
        throw unsupported(`GROUP BY ${position} must be the position of a non-aggregate column`);
      }
      continue;
    }
    const key = structuralKey(item);
    if (targets.some((t) => !t.aggregate && structuralKey(t.val) === key)) continue;
    const fields = stringValues(nodeOf(item, 'ColumnRef')?.fields);
    if (fields.length === 1 && targets.some((t) => !t.aggregate && t.alias === fields[0])) continue;
    throw unsupported(
      'every GROUP BY key must also appear, written the same way, in the select list (the merge keys groups by it)',
    );
  }
};

const aggregateAlias = (index: number, part = ''): string => `"__scatter_${index}${part}"`;

/**
 * Gives each aggregate target a unique alias (rows are objects keyed by column name) and turns
 * `avg(x)` into `sum(x)` in place plus `count(x)` appended after the last target, so GROUP BY
 * and ORDER BY positions keep pointing at the same columns. ORDER BY / LIMIT / OFFSET are cut:
 * they apply to the merged groups.
 */
const rewriteAggregates = (
  sql: string,
  start: number,
  end: number,
  tokens: readonly SqlToken[],
  targets: readonly Target[],
): { shardSql: string; columns: OutputColumn[] } => {
  const listEnd = tokens.find(
    (t, i) =>
      t.start >= start &&
      t.depth === 0 &&
      t.isKeyword &&
      (t.word === 'INTO' || (t.word === 'FROM' && tokens[i - 1]?.word !== 'DISTINCT')),
  );
  if (!listEnd) throw unsupported('the select list has no FROM');
  const edits: TextEdit[] = [];
  const appended: string[] = [];
  const columns: OutputColumn[] = [];
  let extraIndex = targets.length;
  for (const target of targets) {
    const call = target.aggregate;
    if (!call) {
      columns.push({ kind: 'key', shardIndex: target.index });
      continue;
    }
    const fn = mergeableAggregate(call);
    const name = target.alias ?? baseName(call);
    const targetStart = Number(target.body.location);
    const spanEnd =
      tokens.find(
        (t) => t.start > targetStart && t.depth === 0 && (t.word === ',' || t === listEnd),
      )?.start ?? listEnd.start;
    const lastParen = tokens.findLast(
      (t) => t.start >= targetStart && t.end <= spanEnd && t.depth === 0 && t.word === ')',
    );
    const callEnd = lastParen?.end ?? spanEnd;
    if (fn !== 'avg') {
      edits.push({
        start: targetStart,
        end: spanEnd,
        text: `${sliceSql(sql, targetStart, callEnd)} AS ${aggregateAlias(target.index)} `,
      });
      columns.push({ kind: 'aggregate', fn, shardIndex: target.index, name });
      continue;
    }
    const nameStart = Number(call.location);
    const open = tokens.find((t) => t.start >= nameStart && t.word === '(');
    const withName = (fnName: string) =>
      `${sliceSql(sql, targetStart, nameStart)}${fnName}${sliceSql(sql, open?.start ?? nameStart, callEnd)}`;
    edits.push({
      start: targetStart,
      end: spanEnd,
      text: `${withName('sum')} AS ${aggregateAlias(target.index)} `,
    });
    appended.push(`, ${withName('count')} AS ${aggregateAlias(target.index, '_count')}`);
    columns.push({
      kind: 'avg',
      sumIndex: target.index,
      countIndex: extraIndex,
      name,
    });
    extraIndex += 1;
  }
  if (appended.length > 0) {
    edits.push({ start: listEnd.start, end: listEnd.start, text: `${appended.join('')} ` });
  }
  const tail = findKeyword(tokens, start, end, ORDER_AND_LIMIT_WORDS);
  const shardSql = spliceSql(sql, start, tail?.start ?? end, edits).trimEnd();
  return { shardSql, columns };
};
