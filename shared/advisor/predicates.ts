/**
 * Access-path extraction from PostgreSQL's own parse tree (libpg-query JSON): for every query
 * block, which tables it reads and how each is filtered, joined and ordered. Pure: the parse
 * tree comes in, plain data comes out; {@link resolveAccess} then maps column references to
 * catalog tables.
 */
import { quoteIdent, quoteLiteral } from './sql-text.ts';

type AstNode = Record<string, unknown>;

/** A column reference as written: `b.guest_id` → { qualifier: 'b', column: 'guest_id' }. */
export interface ColumnName {
  qualifier: string | null;
  column: string;
}

/** What a predicate constrains: a column, or an expression over one table's columns. */
export type RawTarget =
  | { kind: 'column'; ref: ColumnName }
  | { kind: 'expression'; sql: string; refs: ColumnName[] };

/** A literal the application hard-codes (`status = 'hold'`), kept as SQL text and value. */
export interface Literal {
  sql: string;
  value: string | number | boolean;
}

export type PredicateOp = 'eq' | 'range' | 'like' | 'contains';

export interface RawPredicate {
  target: RawTarget;
  op: PredicateOp;
  /** `$n` numbers on the value side. */
  params: number[];
  literal?: Literal;
  /** For ranges: `col > v` bounds from below. */
  bound?: 'lower' | 'upper';
  /** ILIKE (case-insensitive pattern). */
  caseInsensitive?: boolean;
  /** The value side is exactly one `$n` (possibly cast): its example values are the operand. */
  bareParam?: boolean;
}

export interface TableName {
  schema: string | null;
  name: string;
  alias: string | null;
}

export interface QueryBlock {
  tables: TableName[];
  predicates: RawPredicate[];
  /** Column references on either side of an equality join condition. */
  joins: [ColumnName, ColumnName][];
  /** Qualifiers (or bare names) of columns filtered by something not indexable (`<>`, OR…). */
  otherFilters: ColumnName[];
  orderBy: { target: RawTarget; desc: boolean }[];
  hasLimit: boolean;
  /** Every column the block references (select list, conditions, GROUP BY, ORDER BY). */
  columns: ColumnName[];
  /** `*` somewhere: every column is needed, so no index-only scan. */
  star: boolean;
}

export interface StatementShape {
  kind: 'select' | 'insert' | 'update' | 'delete' | 'other';
  blocks: QueryBlock[];
  /** The table an INSERT/UPDATE/DELETE writes. */
  writeTarget: TableName | null;
  /** Columns an UPDATE sets. */
  setColumns: string[];
}

const entry = (node: unknown): [string, AstNode] | undefined => {
  if (node === null || typeof node !== 'object' || Array.isArray(node)) return undefined;
  const keys = Object.keys(node);
  if (keys.length !== 1) return undefined;
  const key = keys[0] as string;
  const body = (node as AstNode)[key];
  return body !== null && typeof body === 'object' ? [key, body as AstNode] : undefined;
};

const list = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);

const stringOf = (node: unknown): string | undefined => {
  const e = entry(node);
  return e?.[0] === 'String' ? (e[1].sval as string | undefined) : undefined;
};

const columnName = (body: AstNode): ColumnName | undefined => {
  const parts = list(body.fields).map(stringOf);
  if (parts.some((p) => p === undefined)) return undefined; // A_Star
  const names = parts as string[];
  if (names.length === 1) return { qualifier: null, column: names[0] as string };
  if (names.length >= 2) {
    return {
      qualifier: names[names.length - 2] as string,
      column: names[names.length - 1] as string,
    };
  }
  return undefined;
};

const constLiteral = (body: AstNode): Literal | undefined => {
  if ('sval' in body) {
    const v = String((body.sval as AstNode).sval ?? '');
    return { sql: quoteLiteral(v), value: v };
  }
  if ('ival' in body) {
    const v = Number((body.ival as AstNode).ival ?? 0);
    return { sql: String(v), value: v };
  }
  if ('fval' in body) {
    const v = String((body.fval as AstNode).fval ?? '0');
    return { sql: v, value: Number(v) };
  }
  if ('boolval' in body) {
    const v = Boolean((body.boolval as AstNode).boolval);
    return { sql: v ? 'true' : 'false', value: v };
  }
  return undefined;
};

/** Everything found on the value side of a comparison. */
interface ValueSide {
  params: number[];
  columns: ColumnName[];
  literal?: Literal;
  opaque: boolean;
}

const scanValue = (node: unknown): ValueSide => {
  const out: ValueSide = { params: [], columns: [], opaque: false };
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) {
      for (const item of n) walk(item);
      return;
    }
    const e = entry(n);
    if (!e) {
      if (n !== null && typeof n === 'object') for (const v of Object.values(n)) walk(v);
      return;
    }
    const [type, body] = e;
    if (type === 'ParamRef') out.params.push(Number(body.number));
    else if (type === 'ColumnRef') {
      const c = columnName(body);
      if (c) out.columns.push(c);
    } else if (type === 'SubLink' || type === 'SelectStmt') out.opaque = true;
    else for (const v of Object.values(body)) walk(v);
  };
  walk(node);
  const e = entry(node);
  if (e?.[0] === 'A_Const') {
    const lit = constLiteral(e[1]);
    if (lit) out.literal = lit;
  } else if (e?.[0] === 'TypeCast') {
    const inner = entry(e[1].arg);
    const typeName = list((e[1].typeName as AstNode | undefined)?.names)
      .map(stringOf)
      .filter((s): s is string => s !== undefined && s !== 'pg_catalog');
    if (inner?.[0] === 'A_Const' && typeName.length > 0) {
      const lit = constLiteral(inner[1]);
      if (lit) out.literal = { sql: `${lit.sql}::${typeName.join('.')}`, value: lit.value };
    }
  }
  return out;
};

/** Renders a function-call expression over columns (e.g. `lower(email)`), or undefined. */
const renderExpression = (node: unknown, refs: ColumnName[]): string | undefined => {
  const e = entry(node);
  if (!e) return undefined;
  const [type, body] = e;
  if (type === 'ColumnRef') {
    const c = columnName(body);
    if (!c) return undefined;
    refs.push(c);
    return quoteIdent(c.column);
  }
  if (type === 'A_Const') return constLiteral(body)?.sql;
  if (type === 'FuncCall') {
    if (body.agg_star || body.over || body.agg_distinct) return undefined;
    const name = list(body.funcname)
      .map(stringOf)
      .filter((s): s is string => s !== undefined && s !== 'pg_catalog');
    const args: string[] = [];
    for (const arg of list(body.args)) {
      const rendered = renderExpression(arg, refs);
      if (rendered === undefined) return undefined;
      args.push(rendered);
    }
    return `${name.map(quoteIdent).join('.')}(${args.join(', ')})`;
  }
  return undefined;
};

const targetOf = (node: unknown): RawTarget | undefined => {
  const e = entry(node);
  if (!e) return undefined;
  if (e[0] === 'ColumnRef') {
    const ref = columnName(e[1]);
    return ref ? { kind: 'column', ref } : undefined;
  }
  if (e[0] === 'FuncCall') {
    const refs: ColumnName[] = [];
    const sql = renderExpression(node, refs);
    if (sql === undefined || refs.length === 0) return undefined;
    const q = refs[0]?.qualifier ?? null;
    if (refs.some((r) => r.qualifier !== q)) return undefined;
    return { kind: 'expression', sql, refs };
  }
  return undefined;
};

const FLIP: Readonly<Record<string, string>> = { '<': '>', '>': '<', '<=': '>=', '>=': '<=' };

const refsOf = (target: RawTarget): ColumnName[] =>
  target.kind === 'column' ? [target.ref] : target.refs;

const newBlock = (): QueryBlock => ({
  tables: [],
  predicates: [],
  joins: [],
  otherFilters: [],
  orderBy: [],
  hasLimit: false,
  columns: [],
  star: true,
});

/** Column references of a block's own clauses (not of nested sub-selects), and whether `*` appears. */
const referencedColumns = (nodes: unknown[]): { columns: ColumnName[]; star: boolean } => {
  const columns: ColumnName[] = [];
  let star = false;
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) {
      for (const item of n) walk(item);
      return;
    }
    if (n === null || typeof n !== 'object') return;
    const e = entry(n);
    if (e?.[0] === 'SelectStmt') return;
    if (e?.[0] === 'ColumnRef') {
      const c = columnName(e[1]);
      if (c) columns.push(c);
      else star = true;
      return;
    }
    if (e?.[0] === 'RangeVar') return;
    for (const v of Object.values(n)) walk(v);
  };
  walk(nodes);
  return { columns, star };
};

/** Adds one comparison `lhs op rhs` to the block. */
const addComparison = (
  block: QueryBlock,
  op: string,
  lhs: unknown,
  rhs: unknown,
  kind: string,
): void => {
  const left = entry(lhs);
  const right = entry(rhs);
  if (op === '=' && left?.[0] === 'ColumnRef' && right?.[0] === 'ColumnRef') {
    const a = columnName(left[1]);
    const b = columnName(right[1]);
    if (a && b) block.joins.push([a, b]);
    return;
  }
  const lhsTarget = targetOf(lhs);
  const rhsTarget = targetOf(rhs);
  const lhsValue = scanValue(lhs);
  const rhsValue = scanValue(rhs);
  const isValue = (v: ValueSide) => v.columns.length === 0 && !v.opaque;
  let target: RawTarget;
  let value: ValueSide;
  let valueNode: unknown;
  let operator = op;
  if (lhsTarget && isValue(rhsValue)) {
    target = lhsTarget;
    value = rhsValue;
    valueNode = rhs;
  } else if (rhsTarget && isValue(lhsValue)) {
    target = rhsTarget;
    value = lhsValue;
    valueNode = lhs;
    operator = FLIP[op] ?? op;
  } else {
    block.otherFilters.push(...lhsValue.columns, ...rhsValue.columns);
    return;
  }
  const bare = entry(valueNode);
  const bareParam =
    bare?.[0] === 'ParamRef' ||
    (bare?.[0] === 'TypeCast' && entry(bare[1].arg)?.[0] === 'ParamRef');
  const base = {
    target,
    params: value.params,
    ...(bareParam ? { bareParam: true } : {}),
    ...(value.literal ? { literal: value.literal } : {}),
  };
  if ((kind === 'AEXPR_OP_ANY' && operator === '=') || (kind === 'AEXPR_OP' && operator === '=')) {
    block.predicates.push({ ...base, op: 'eq' });
  } else if (kind === 'AEXPR_OP' && (operator === '<' || operator === '<=')) {
    block.predicates.push({ ...base, op: 'range', bound: 'upper' });
  } else if (kind === 'AEXPR_OP' && (operator === '>' || operator === '>=')) {
    block.predicates.push({ ...base, op: 'range', bound: 'lower' });
  } else if (operator === '~~' || operator === '~~*') {
    block.predicates.push({ ...base, op: 'like', caseInsensitive: operator === '~~*' });
  } else if (kind === 'AEXPR_OP' && operator === '@>') {
    block.predicates.push({ ...base, op: 'contains' });
  } else {
    block.otherFilters.push(...refsOf(target));
  }
};

const addCondition = (block: QueryBlock, node: unknown, nested: unknown[]): void => {
  const e = entry(node);
  if (!e) return;
  const [type, body] = e;
  if (type === 'BoolExpr') {
    if (body.boolop === 'AND_EXPR') {
      for (const arg of list(body.args)) addCondition(block, arg, nested);
      return;
    }
    // OR / NOT: not one index key; remember the columns so ordering-only plans are distrusted.
    collectNested(node, nested);
    for (const ref of collectColumns(node)) block.otherFilters.push(ref);
    return;
  }
  if (type === 'A_Expr') {
    const kind = String(body.kind);
    const op = stringOf(list(body.name)[0]) ?? '';
    collectNested(node, nested);
    if (kind === 'AEXPR_BETWEEN') {
      const target = targetOf(body.lexpr);
      const bounds = list((entry(body.rexpr)?.[1] as AstNode | undefined)?.items);
      if (target && bounds.length === 2) {
        addComparison(block, '>=', body.lexpr, bounds[0], 'AEXPR_OP');
        addComparison(block, '<=', body.lexpr, bounds[1], 'AEXPR_OP');
      }
      return;
    }
    if (kind === 'AEXPR_IN') {
      const items = list((entry(body.rexpr)?.[1] as AstNode | undefined)?.items);
      const target = targetOf(body.lexpr);
      if (target && op === '=') {
        const params = items.flatMap((item) => scanValue(item).params);
        const columns = items.flatMap((item) => scanValue(item).columns);
        if (columns.length === 0) block.predicates.push({ target, op: 'eq', params });
      } else if (target) block.otherFilters.push(...refsOf(target));
      return;
    }
    if (['AEXPR_OP', 'AEXPR_LIKE', 'AEXPR_ILIKE', 'AEXPR_OP_ANY'].includes(kind)) {
      addComparison(block, op, body.lexpr, body.rexpr, kind);
      return;
    }
    for (const ref of collectColumns(node)) block.otherFilters.push(ref);
    return;
  }
  if (type === 'ColumnRef') {
    // A bare boolean column: `WHERE is_listed`.
    const ref = columnName(body);
    if (ref) {
      block.predicates.push({
        target: { kind: 'column', ref },
        op: 'eq',
        params: [],
        literal: { sql: 'true', value: true },
      });
    }
    return;
  }
  collectNested(node, nested);
  for (const ref of collectColumns(node)) block.otherFilters.push(ref);
};

const collectColumns = (node: unknown): ColumnName[] => scanValue(node).columns;

/** Finds sub-selects nested anywhere in an expression (EXISTS, IN (SELECT …), scalar subqueries). */
const collectNested = (node: unknown, nested: unknown[]): void => {
  if (Array.isArray(node)) {
    for (const item of node) collectNested(item, nested);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const e = entry(node);
  if (e?.[0] === 'SelectStmt') {
    nested.push(node);
    return;
  }
  for (const v of Object.values(node)) collectNested(v, nested);
};

const addFrom = (
  block: QueryBlock,
  node: unknown,
  nested: unknown[],
  cteNames: ReadonlySet<string>,
): void => {
  const e = entry(node);
  if (!e) return;
  const [type, body] = e;
  if (type === 'RangeVar') {
    const name = String(body.relname);
    const schema = (body.schemaname as string | undefined) ?? null;
    if (schema === null && cteNames.has(name)) return;
    const alias = ((body.alias as AstNode | undefined)?.aliasname as string | undefined) ?? null;
    block.tables.push({ schema, name, alias });
  } else if (type === 'JoinExpr') {
    addFrom(block, body.larg, nested, cteNames);
    addFrom(block, body.rarg, nested, cteNames);
    if (body.quals) addCondition(block, body.quals, nested);
  } else if (type === 'RangeSubselect') {
    collectNested(body.subquery, nested);
  }
};

const sortTarget = (node: unknown): { target: RawTarget; desc: boolean } | undefined => {
  const e = entry(node);
  if (e?.[0] !== 'SortBy') return undefined;
  const target = targetOf(e[1].node);
  return target ? { target, desc: e[1].sortby_dir === 'SORTBY_DESC' } : undefined;
};

const visitSelect = (body: AstNode, blocks: QueryBlock[], outerCtes: ReadonlySet<string>): void => {
  const cteNames = new Set(outerCtes);
  const nested: unknown[] = [];
  for (const cte of list((body.withClause as AstNode | undefined)?.ctes)) {
    const c = entry(cte);
    if (c?.[0] === 'CommonTableExpr') {
      cteNames.add(String(c[1].ctename));
      collectNested(c[1].ctequery, nested);
    }
  }
  if (body.op && body.op !== 'SETOP_NONE') {
    for (const side of [body.larg, body.rarg]) {
      if (side) visitSelect(side as AstNode, blocks, cteNames);
    }
    return;
  }
  const block = newBlock();
  for (const from of list(body.fromClause)) addFrom(block, from, nested, cteNames);
  if (body.whereClause) addCondition(block, body.whereClause, nested);
  for (const item of list(body.sortClause)) {
    const sort = sortTarget(item);
    if (!sort) {
      block.orderBy = [];
      break;
    }
    block.orderBy.push(sort);
  }
  block.hasLimit = body.limitCount !== undefined && body.limitCount !== null;
  const refs = referencedColumns([
    body.targetList,
    body.whereClause,
    body.groupClause,
    body.havingClause,
    body.sortClause,
    body.fromClause,
  ]);
  block.columns = refs.columns;
  block.star = refs.star;
  collectNested(body.targetList, nested);
  collectNested(body.havingClause, nested);
  if (block.tables.length > 0) blocks.push(block);
  for (const n of nested) {
    const inner = entry(n);
    if (inner) visitSelect(inner[1], blocks, cteNames);
  }
};

const tableName = (node: unknown): TableName | null => {
  const e = entry(node);
  if (e?.[0] !== 'RangeVar') return null;
  return {
    schema: (e[1].schemaname as string | undefined) ?? null,
    name: String(e[1].relname),
    alias: ((e[1].alias as AstNode | undefined)?.aliasname as string | undefined) ?? null,
  };
};

/**
 * Extracts the access shape of one parsed statement (the `stmt` of a libpg-query RawStmt).
 *
 * @example
 * const [raw] = parseStatements('SELECT id FROM t WHERE lower(email) = lower($1)');
 * extractShape(raw.stmt).blocks[0].predicates[0].target; // { kind: 'expression', sql: 'lower(email)', … }
 */
export const extractShape = (stmt: unknown): StatementShape => {
  const e = entry(stmt);
  const shape: StatementShape = { kind: 'other', blocks: [], writeTarget: null, setColumns: [] };
  if (!e) return shape;
  const [type, body] = e;
  if (type === 'SelectStmt') {
    shape.kind = 'select';
    visitSelect(body, shape.blocks, new Set());
  } else if (type === 'InsertStmt') {
    shape.kind = 'insert';
    shape.writeTarget = tableName({ RangeVar: body.relation });
    const select = entry(body.selectStmt);
    if (select?.[0] === 'SelectStmt') visitSelect(select[1], shape.blocks, new Set());
  } else if (type === 'UpdateStmt' || type === 'DeleteStmt') {
    shape.kind = type === 'UpdateStmt' ? 'update' : 'delete';
    const target = tableName({ RangeVar: body.relation });
    shape.writeTarget = target;
    const block = newBlock();
    const nested: unknown[] = [];
    if (target) block.tables.push(target);
    for (const from of list(body.fromClause ?? body.usingClause)) {
      addFrom(block, from, nested, new Set());
    }
    if (body.whereClause) addCondition(block, body.whereClause, nested);
    shape.blocks.push(block);
    if (type === 'UpdateStmt') {
      for (const t of list(body.targetList)) {
        const res = entry(t);
        if (res?.[0] === 'ResTarget' && typeof res[1].name === 'string')
          shape.setColumns.push(res[1].name);
      }
      collectNested(body.targetList, nested);
    }
    for (const n of nested) {
      const inner = entry(n);
      if (inner) visitSelect(inner[1], shape.blocks, new Set());
    }
  }
  return shape;
};

// ── resolution against the catalog ──

/** A key as the catalog understands it: a column of the table, or an expression over its columns. */
export type ResolvedKey =
  | { kind: 'column'; column: string }
  | { kind: 'expression'; sql: string; columns: string[] };

export interface KeyedPredicate {
  key: ResolvedKey;
  op: PredicateOp;
  params: number[];
  literal?: Literal;
  bound?: 'lower' | 'upper';
  caseInsensitive?: boolean;
  bareParam?: boolean;
}

/** How one query block accesses one table. */
export interface TableAccess {
  /** The catalog key returned by the lookup. */
  table: string;
  predicates: KeyedPredicate[];
  /** Columns of this table equated with another table's columns. */
  joinColumns: string[];
  /** Columns filtered by conditions no single index key serves. */
  otherFilterColumns: string[];
  /** ORDER BY keys when they all belong to this table, else empty. */
  orderBy: { key: ResolvedKey; desc: boolean }[];
  hasLimit: boolean;
  /** Every column of this table the block references, or null when it needs all (`*`, writes). */
  referencedColumns: string[] | null;
}

/** Finds a table in the catalog: its key and its column names. */
export type TableLookup = (
  name: TableName,
) => { key: string; columns: ReadonlySet<string> } | undefined;

/**
 * Maps a statement's column references to catalog tables (qualified by alias or table name;
 * unqualified ones to the only table of the block that has the column). Tables the lookup
 * does not know (views, CTEs, functions) are skipped.
 */
export const resolveAccess = (shape: StatementShape, lookup: TableLookup): TableAccess[] => {
  const out: TableAccess[] = [];
  for (const block of shape.blocks) {
    const instances = block.tables.map((t) => ({ t, found: lookup(t) }));
    const accesses = instances.map(({ found }) =>
      found
        ? ({
            table: found.key,
            predicates: [],
            joinColumns: [],
            otherFilterColumns: [],
            orderBy: [],
            hasLimit: block.hasLimit,
            referencedColumns: block.star ? null : [],
          } as TableAccess)
        : undefined,
    );
    const instanceOf = (ref: ColumnName): number => {
      if (ref.qualifier !== null) {
        const byAlias = instances.findIndex((i) => i.t.alias === ref.qualifier);
        if (byAlias >= 0) return byAlias;
        return instances.findIndex((i) => i.t.alias === null && i.t.name === ref.qualifier);
      }
      const matches = instances
        .map((i, n) => (i.found?.columns.has(ref.column) ? n : -1))
        .filter((n) => n >= 0);
      return matches.length === 1 ? (matches[0] as number) : -1;
    };
    const resolveTarget = (target: RawTarget): { at: number; key: ResolvedKey } | undefined => {
      const refs = refsOf(target);
      const at = instanceOf(refs[0] as ColumnName);
      if (at < 0 || refs.some((r) => instanceOf(r) !== at)) return undefined;
      const columns = instances[at]?.found?.columns;
      if (!columns || refs.some((r) => !columns.has(r.column))) return undefined;
      if (target.kind === 'column')
        return { at, key: { kind: 'column', column: target.ref.column } };
      return {
        at,
        key: {
          kind: 'expression',
          sql: target.sql,
          columns: [...new Set(refs.map((r) => r.column))],
        },
      };
    };
    for (const p of block.predicates) {
      const r = resolveTarget(p.target);
      const access = r ? accesses[r.at] : undefined;
      if (!r || !access) continue;
      const { target: _target, ...rest } = p;
      access.predicates.push({ ...rest, key: r.key });
    }
    for (const ref of block.otherFilters) {
      const at = instanceOf(ref);
      accesses[at]?.otherFilterColumns.push(ref.column);
    }
    for (const ref of block.columns) {
      const at = instanceOf(ref);
      const access = accesses[at];
      if (access?.referencedColumns && !access.referencedColumns.includes(ref.column)) {
        access.referencedColumns.push(ref.column);
      }
    }
    for (const [a, b] of block.joins) {
      const ia = instanceOf(a);
      const ib = instanceOf(b);
      if (ia < 0 || ib < 0 || ia === ib) continue;
      accesses[ia]?.joinColumns.push(a.column);
      accesses[ib]?.joinColumns.push(b.column);
    }
    if (block.orderBy.length > 0) {
      const sorted = block.orderBy.map((o) => ({ r: resolveTarget(o.target), desc: o.desc }));
      const at = sorted[0]?.r?.at;
      if (at !== undefined && sorted.every((s) => s.r?.at === at)) {
        const access = accesses[at];
        if (access)
          access.orderBy = sorted.map((s) => ({
            key: (s.r as { key: ResolvedKey }).key,
            desc: s.desc,
          }));
      }
    }
    for (const a of accesses) if (a) out.push(a);
  }
  return out;
};

/** The SQL of a key (column name quoted when needed, or the expression). */
export const keySql = (key: ResolvedKey): string =>
  key.kind === 'column' ? quoteIdent(key.column) : key.sql;

/** Columns a key reads. */
export const keyColumns = (key: ResolvedKey): string[] =>
  key.kind === 'column' ? [key.column] : key.columns;
