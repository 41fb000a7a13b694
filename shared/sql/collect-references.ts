import type {
  CommonTableExpr,
  CopyStmt,
  CreateTableAsStmt,
  DropStmt,
  FuncCall,
  IntoClause,
  Node,
  RangeVar,
  SelectStmt,
  SQLValueFunction,
  WithClause,
} from 'libpg-query';
import { classifyFunction, isTimeDependentLiteral } from './function-volatility.ts';
import { kindOfNodeType } from './statement-kind.ts';

/** Everything the walker learns from a parse tree; the analyzer turns it into SqlAnalysis. */
export interface References {
  readonly tablesRead: Set<string>;
  readonly tablesWritten: Set<string>;
  readonly functions: Set<string>;
  maxParamIndex: number;
  /** Deepest chain of nested parse nodes (statement = 1); bounds later recursive passes. */
  maxNodeDepth: number;
  hasLockingClause: boolean;
  readsTempTable: boolean;
  readsSystemCatalog: boolean;
  callsVolatileFunction: boolean;
  callsUnknownFunction: boolean;
}

/**
 * Walks every statement with one generic traversal of the parse tree's plain objects, so
 * node types nobody listed here (new PostgreSQL syntax) are still searched for tables,
 * functions and parameters. Only nodes whose meaning depends on position get a handler:
 * statements with WITH (CTE scope), write targets, locking clauses and function calls.
 *
 * The traversal uses an explicit work stack rather than recursion: it is what measures the
 * tree depth (`maxNodeDepth`), so it must survive the deepest tree the parser accepts
 * (well over a thousand nested subqueries). Visiting order does not matter because every
 * result is a set, a flag or a maximum.
 */
export const collectReferences = (statements: readonly (Node | undefined)[]): References => {
  const refs: References = {
    tablesRead: new Set(),
    tablesWritten: new Set(),
    functions: new Set(),
    maxParamIndex: 0,
    maxNodeDepth: 0,
    hasLockingClause: false,
    readsTempTable: false,
    readsSystemCatalog: false,
    callsVolatileFunction: false,
    callsUnknownFunction: false,
  };
  const pending: [value: object, scope: CteScope, depth: number][] = [];
  const walker: Walker = {
    refs,
    depth: 0,
    walk: (value, scope) => {
      if (typeof value === 'object' && value !== null) {
        pending.push([value, scope, walker.depth]);
      }
    },
  };
  for (const statement of statements) walker.walk(statement, NO_CTES);
  for (let item = pending.pop(); item !== undefined; item = pending.pop()) {
    walker.depth = item[2];
    visitValue(item[0], item[1], walker);
  }
  return refs;
};

/** Shared by the visitors: where results go, and how to schedule a subtree. */
interface Walker {
  readonly refs: References;
  /** Node depth of the value being visited; subtrees scheduled now inherit it. */
  depth: number;
  walk(value: unknown, scope: CteScope): void;
}

/** CTE names visible at a point in the tree. */
type CteScope = ReadonlySet<string>;
type Fields = Readonly<Record<string, unknown>>;

const NO_CTES: CteScope = new Set();

const NO_SKIPPED_FIELDS: ReadonlySet<string> = new Set();
const SELECT_HANDLED_FIELDS: ReadonlySet<string> = new Set([
  'withClause',
  'intoClause',
  'lockingClause',
  'larg',
  'rarg',
]);
const MODIFY_HANDLED_FIELDS: ReadonlySet<string> = new Set(['withClause', 'relation']);
const COPY_HANDLED_FIELDS: ReadonlySet<string> = new Set(['relation']);
const CREATE_TABLE_AS_HANDLED_FIELDS: ReadonlySet<string> = new Set(['into']);
const FUNC_CALL_HANDLED_FIELDS: ReadonlySet<string> = new Set(['funcname']);
const CALL_HANDLED_FIELDS: ReadonlySet<string> = new Set(['funccall']);

// Fields of a DDL statement that hold the relation the statement creates or changes
// (CreateStmt.relation, IndexStmt.relation, ViewStmt.view, CreatePolicyStmt.table,
// CreateSeqStmt.sequence, CompositeTypeStmt.typevar). Other RangeVars inside DDL (foreign
// key targets, INHERITS parents, LIKE sources) are references, hence reads.
const DDL_TARGET_FIELDS: ReadonlySet<string> = new Set([
  'relation',
  'view',
  'table',
  'sequence',
  'typevar',
]);

const DROPPED_RELATION_TYPES: ReadonlySet<string> = new Set([
  'OBJECT_TABLE',
  'OBJECT_VIEW',
  'OBJECT_MATVIEW',
  'OBJECT_FOREIGN_TABLE',
]);

const SQL_VALUE_FUNCTION_NAMES: Readonly<Record<string, string>> = {
  SVFOP_CURRENT_DATE: 'current_date',
  SVFOP_CURRENT_TIME: 'current_time',
  SVFOP_CURRENT_TIME_N: 'current_time',
  SVFOP_CURRENT_TIMESTAMP: 'current_timestamp',
  SVFOP_CURRENT_TIMESTAMP_N: 'current_timestamp',
  SVFOP_LOCALTIME: 'localtime',
  SVFOP_LOCALTIME_N: 'localtime',
  SVFOP_LOCALTIMESTAMP: 'localtimestamp',
  SVFOP_LOCALTIMESTAMP_N: 'localtimestamp',
  SVFOP_CURRENT_ROLE: 'current_role',
  SVFOP_CURRENT_USER: 'current_user',
  SVFOP_USER: 'user',
  SVFOP_SESSION_USER: 'session_user',
  SVFOP_CURRENT_CATALOG: 'current_catalog',
  SVFOP_CURRENT_SCHEMA: 'current_schema',
};

// libpg-query's JSON wraps every `Node *` field as { TypeName: {…} } but writes fields with
// a concrete struct type (InsertStmt.relation, SelectStmt.larg, …) unwrapped. Node type
// names start with an upper-case letter; field names never do.
const isNodeTypeName = (key: string): boolean => {
  const code = key.charCodeAt(0);
  return code >= 65 && code <= 90;
};

const visitValue = (value: object, scope: CteScope, w: Walker): void => {
  if (Array.isArray(value)) {
    for (const item of value) w.walk(item, scope);
    return;
  }
  const fields = value as Fields;
  const keys = Object.keys(fields);
  const first = keys[0];
  if (keys.length === 1 && first !== undefined && isNodeTypeName(first)) {
    w.depth += 1;
    if (w.depth > w.refs.maxNodeDepth) w.refs.maxNodeDepth = w.depth;
    visitNode(first, fields[first] as Fields, scope, w);
    return;
  }
  // An unwrapped RangeVar in a field the handlers below do not claim: a reference.
  if (typeof fields.relname === 'string') {
    addTable(fields as RangeVar, 'read', scope, w.refs);
    return;
  }
  for (const key of keys) w.walk(fields[key], scope);
};

const walkFields = (
  fields: Fields,
  skipped: ReadonlySet<string>,
  scope: CteScope,
  w: Walker,
): void => {
  for (const key in fields) {
    if (!skipped.has(key)) w.walk(fields[key], scope);
  }
};

const visitNode = (nodeType: string, fields: Fields, scope: CteScope, w: Walker): void => {
  const refs = w.refs;
  switch (nodeType) {
    case 'RangeVar':
      addTable(fields as RangeVar, 'read', scope, refs);
      return;
    case 'SelectStmt':
      visitSelect(fields as SelectStmt, scope, w);
      return;
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
      visitModify(fields as { relation?: RangeVar; withClause?: WithClause }, scope, w);
      return;
    case 'FuncCall':
      recordFunctionCall(fields as FuncCall, refs);
      walkFields(fields, FUNC_CALL_HANDLED_FIELDS, scope, w);
      return;
    case 'CallStmt':
      // CallStmt.funccall is an unwrapped FuncCall; re-wrap it so it is recognised.
      if (fields.funccall !== undefined) w.walk({ FuncCall: fields.funccall }, scope);
      walkFields(fields, CALL_HANDLED_FIELDS, scope, w);
      return;
    case 'SQLValueFunction':
      recordSqlValueFunction(fields as SQLValueFunction, refs);
      return;
    case 'ParamRef':
      refs.maxParamIndex = Math.max(refs.maxParamIndex, Number(fields.number ?? 0));
      return;
    case 'A_Const':
      if (isTimeDependentLiteral(stringConstantOf(fields))) refs.callsVolatileFunction = true;
      return;
    case 'LockingClause':
      // lockedRels name FROM items (often aliases), not tables: nothing to collect.
      refs.hasLockingClause = true;
      return;
    case 'RangeTableSample':
      // Without REPEATABLE (seed) every execution samples different rows.
      if (fields.repeatable === undefined) refs.callsVolatileFunction = true;
      walkFields(fields, NO_SKIPPED_FIELDS, scope, w);
      return;
    case 'CopyStmt':
      visitCopy(fields as CopyStmt, scope, w);
      return;
    case 'CreateTableAsStmt':
      addInto((fields as CreateTableAsStmt).into, refs);
      walkFields(fields, CREATE_TABLE_AS_HANDLED_FIELDS, scope, w);
      return;
    case 'DropStmt':
      visitDrop(fields as DropStmt, refs);
      return;
    case 'TruncateStmt':
      for (const relation of (fields.relations ?? []) as Node[]) {
        if ('RangeVar' in relation) addTable(relation.RangeVar, 'write', NO_CTES, refs);
      }
      return;
    default:
      if (kindOfNodeType(nodeType) === 'ddl') visitDdl(fields, scope, w);
      else walkFields(fields, NO_SKIPPED_FIELDS, scope, w);
  }
};

/**
 * Brings a WITH list into scope. Without RECURSIVE a CTE sees only the CTEs before it (a
 * reference to itself or a later one is a table); with RECURSIVE all of them see each other.
 * https://www.postgresql.org/docs/current/queries-with.html
 */
const enterWith = (withClause: WithClause | undefined, scope: CteScope, w: Walker): CteScope => {
  const ctes = (withClause?.ctes ?? []).flatMap((node) =>
    'CommonTableExpr' in node ? [node.CommonTableExpr] : [],
  );
  if (ctes.length === 0) return scope;
  if (withClause?.recursive === true) {
    const inner = withNames(scope, ctes);
    for (const cte of ctes) w.walk(cte.ctequery, inner);
    return inner;
  }
  let visible = scope;
  for (const cte of ctes) {
    w.walk(cte.ctequery, visible);
    visible = withNames(visible, [cte]);
  }
  return visible;
};

const withNames = (scope: CteScope, ctes: readonly CommonTableExpr[]): CteScope => {
  const names = new Set(scope);
  for (const cte of ctes) if (cte.ctename !== undefined) names.add(cte.ctename);
  return names;
};

const visitSelect = (select: SelectStmt, outer: CteScope, w: Walker): void => {
  const scope = enterWith(select.withClause, outer, w);
  addInto(select.intoClause, w.refs);
  if ((select.lockingClause?.length ?? 0) > 0) w.refs.hasLockingClause = true;
  // Set-operation branches are unwrapped SelectStmts that can carry their own WITH; wrap
  // them so a long UNION chain is visited from the work stack, not by recursion.
  if (select.larg !== undefined) w.walk({ SelectStmt: select.larg }, scope);
  if (select.rarg !== undefined) w.walk({ SelectStmt: select.rarg }, scope);
  walkFields(select as Fields, SELECT_HANDLED_FIELDS, scope, w);
};

/** INSERT, UPDATE, DELETE and MERGE: the target is written, everything else is read. */
const visitModify = (
  statement: { relation?: RangeVar; withClause?: WithClause },
  outer: CteScope,
  w: Walker,
): void => {
  const scope = enterWith(statement.withClause, outer, w);
  // A CTE never hides the target table of a data-modifying statement (PostgreSQL's
  // setTargetTable() ignores CTEs), so the target resolves with no CTE scope.
  if (statement.relation !== undefined) addTable(statement.relation, 'write', NO_CTES, w.refs);
  walkFields(statement as Fields, MODIFY_HANDLED_FIELDS, scope, w);
};

const visitCopy = (copy: CopyStmt, scope: CteScope, w: Walker): void => {
  if (copy.relation !== undefined) {
    addTable(copy.relation, copy.is_from === true ? 'write' : 'read', NO_CTES, w.refs);
  }
  walkFields(copy as Fields, COPY_HANDLED_FIELDS, scope, w);
};

const visitDrop = (drop: DropStmt, refs: References): void => {
  if (drop.removeType === undefined || !DROPPED_RELATION_TYPES.has(drop.removeType)) return;
  for (const object of drop.objects ?? []) {
    if (!('List' in object)) continue;
    const parts = (object.List.items ?? []).flatMap((item) =>
      'String' in item && item.String.sval !== undefined ? [item.String.sval] : [],
    );
    if (parts.length > 0) refs.tablesWritten.add(formatName(parts));
  }
};

const visitDdl = (fields: Fields, scope: CteScope, w: Walker): void => {
  for (const key in fields) {
    const value = fields[key];
    if (DDL_TARGET_FIELDS.has(key) && isUnwrappedRangeVar(value)) {
      addTable(value, 'write', NO_CTES, w.refs);
    } else {
      w.walk(value, scope);
    }
  }
};

const isUnwrappedRangeVar = (value: unknown): value is RangeVar =>
  typeof value === 'object' && value !== null && typeof (value as Fields).relname === 'string';

const addInto = (into: IntoClause | undefined, refs: References): void => {
  if (into?.rel !== undefined) addTable(into.rel, 'write', NO_CTES, refs);
};

const addTable = (
  rangeVar: RangeVar,
  role: 'read' | 'write',
  scope: CteScope,
  refs: References,
): void => {
  const { catalogname, schemaname, relname } = rangeVar;
  if (relname === undefined) return;
  const qualified = schemaname !== undefined || catalogname !== undefined;
  // Only an unqualified name can refer to a CTE.
  if (role === 'read' && !qualified && scope.has(relname)) return;
  const parts = [catalogname, schemaname, relname].filter((p): p is string => p !== undefined);
  if (role === 'write') {
    refs.tablesWritten.add(formatName(parts));
    return;
  }
  refs.tablesRead.add(formatName(parts));
  if (schemaname === 'pg_temp' || schemaname?.startsWith('pg_temp_') === true) {
    refs.readsTempTable = true;
  } else if (isSystemRelation(schemaname, relname)) {
    refs.readsSystemCatalog = true;
  }
};

// pg_catalog is searched before search_path, so an unqualified pg_* name is a catalog.
const isSystemRelation = (schemaname: string | undefined, relname: string): boolean =>
  schemaname === undefined
    ? relname.startsWith('pg_')
    : schemaname === 'information_schema' || schemaname.startsWith('pg_');

const recordFunctionCall = (call: FuncCall, refs: References): void => {
  const parts = (call.funcname ?? []).flatMap((node) =>
    'String' in node && node.String.sval !== undefined ? [node.String.sval] : [],
  );
  if (parts.length === 0) return;
  // EXTRACT, AT TIME ZONE, SUBSTRING … FROM and friends become pg_catalog.* calls that the
  // user never wrote; list them under the plain name.
  const written =
    call.funcformat === 'COERCE_SQL_SYNTAX' && parts.length === 2 && parts[0] === 'pg_catalog'
      ? parts.slice(1)
      : parts;
  refs.functions.add(formatName(written));
  const volatility = classifyFunction(parts, call.args?.length ?? 0);
  if (volatility === 'volatile') refs.callsVolatileFunction = true;
  else if (volatility === 'unknown') refs.callsUnknownFunction = true;
};

const recordSqlValueFunction = (fn: SQLValueFunction, refs: References): void => {
  // Every SQL value function reads the clock or the session (CURRENT_DATE, CURRENT_USER…).
  refs.callsVolatileFunction = true;
  const name = fn.op === undefined ? undefined : SQL_VALUE_FUNCTION_NAMES[fn.op];
  if (name !== undefined) refs.functions.add(name);
};

const stringConstantOf = (aConst: Fields): string => {
  const sval = aConst.sval as { sval?: string } | undefined;
  return sval?.sval ?? '';
};

/** Joins name parts with `.`, quoting only parts that would otherwise be ambiguous. */
const formatName = (parts: readonly string[]): string =>
  parts
    .map((part) =>
      part.includes('.') || part.includes('"') ? `"${part.replaceAll('"', '""')}"` : part,
    )
    .join('.');
