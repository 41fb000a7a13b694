import {
  type AstObject,
  applyEdits,
  asList,
  asObject,
  columnRefNames,
  type Edit,
  nodeOf,
  nodeType,
  type ParsedStatement,
  parseSelect,
  stringValues,
  structuralKey,
  walkNodes,
} from './ast.ts';
import type { RewriteCandidate, RewriteRule, SchemaInfo } from './types.ts';

/** Options of {@link detectRewrites}. */
export interface DetectOptions {
  /** Column types and indexes of the tables the statement reads (rules 4 and 5 use it). */
  readonly schema?: SchemaInfo;
  /** OFFSET at or above which keyset pagination is proposed. */
  readonly deepOffsetRows?: number;
  /** Fewest `c = v` arms of one OR that are worth turning into `IN (…)`. */
  readonly minOrListArms?: number;
  /** Values of `$1…$n` when known (an OFFSET given as a parameter). */
  readonly params?: readonly unknown[];
  /**
   * Treat `OFFSET $n` of unknown value as possibly deep (normalised pg_stat_statements text
   * of a statement known to be slow); the measurement then uses the generic plan.
   */
  readonly unknownOffsetIsCandidate?: boolean;
}

export const DEFAULT_DEEP_OFFSET_ROWS = 1_000;
export const DEFAULT_MIN_OR_LIST_ARMS = 3;

/**
 * Finds the plan-changing rewrites of one SELECT, on its parse tree, without a database:
 * each candidate carries the rewritten SQL (spliced from the original text and parsed again)
 * and why it should help. Whether it does is measured afterwards ({@link adviseRewrites}).
 *
 * Deliberately absent, because PostgreSQL 15's planner already does them: IN (subquery) ↔
 * EXISTS (both become semi-joins), inlining of plain CTEs, LEFT JOIN … IS NULL ↔ NOT EXISTS
 * (both become anti-joins).
 */
export const detectRewrites = (sql: string, options: DetectOptions = {}): RewriteCandidate[] => {
  const parsed = parseSelect(sql);
  if (!parsed) return [];
  const rules: ReadonlyArray<
    (p: ParsedStatement, o: DetectOptions) => RewriteCandidate | undefined
  > = [
    notInSubquery,
    orAcrossTables,
    deepOffset,
    nonSargablePredicate,
    mismatchedLiteral,
    countGreaterThanZero,
    orList,
  ];
  const candidates: RewriteCandidate[] = [];
  for (const rule of rules) {
    const candidate = rule(parsed, options);
    // A splice that does not parse is a bug in a rule, never a suggestion.
    if (candidate && reparses(candidate.rewrittenSql)) candidates.push(candidate);
  }
  return candidates;
};

const reparses = (sql: string): boolean => {
  try {
    return parseSelect(sql) !== undefined;
  } catch {
    return false;
  }
};

const candidate = (
  parsed: ParsedStatement,
  rule: RewriteRule,
  fields: Omit<RewriteCandidate, 'rule' | 'originalSql' | 'correctnessFix' | 'extraParams'> &
    Partial<Pick<RewriteCandidate, 'correctnessFix' | 'extraParams'>>,
): RewriteCandidate => ({
  rule,
  originalSql: parsed.sql,
  correctnessFix: false,
  ...fields,
});

// ── scope: which relation a column reference belongs to ──

interface Relation {
  /** Name as written (possibly schema-qualified, `s.t`). */
  readonly name: string;
  /** Alias, or the unqualified table name when there is none. */
  readonly refName: string;
}

/** Relations of a FROM list, through joins (not into subqueries). */
const relationsOf = (fromClause: unknown): Relation[] => {
  const out: Relation[] = [];
  const visit = (item: unknown) => {
    const range = nodeOf(item, 'RangeVar');
    if (range) {
      const relname = String(range.relname);
      const name = range.schemaname ? `${String(range.schemaname)}.${relname}` : relname;
      const alias = asObject(range.alias)?.aliasname;
      out.push({ name, refName: alias ? String(alias) : relname });
      return;
    }
    const join = nodeOf(item, 'JoinExpr');
    if (join) {
      visit(join.larg);
      visit(join.rarg);
    }
  };
  for (const item of asList(fromClause)) visit(item);
  return out;
};

/** Every relation named anywhere in the statement (for resolving qualified columns). */
const allRelations = (select: AstObject): Relation[] => {
  const out: Relation[] = [];
  walkNodes({ SelectStmt: select }, (type, body) => {
    if (type === 'SelectStmt') out.push(...relationsOf(body.fromClause));
    return true;
  });
  return out;
};

interface ResolvedColumn {
  readonly relation: string;
  readonly column: string;
}

const resolveColumn = (
  wrapper: unknown,
  relations: readonly Relation[],
  schema: SchemaInfo | undefined,
): ResolvedColumn | undefined => {
  const names = columnRefNames(wrapper);
  if (!names || names.length === 0) return undefined;
  const column = names.at(-1) ?? '';
  if (names.length >= 2) {
    const qualifier = names.at(-2);
    const relation = relations.find((r) => r.refName === qualifier);
    return relation ? { relation: relation.name, column } : undefined;
  }
  const owners = schema
    ? relations.filter((r) => schema.columnType(r.name, column) !== undefined)
    : relations;
  const owner = owners[0];
  return owners.length === 1 && owner ? { relation: owner.name, column } : undefined;
};

const isIntegerType = (type: string | undefined): boolean =>
  type === 'integer' || type === 'bigint' || type === 'smallint';

const isTimestampType = (type: string | undefined): boolean =>
  type === 'timestamp without time zone' || type === 'timestamp with time zone';

/** The operator of a plain `A op B` expression. */
const operatorOf = (expr: AstObject): string | undefined =>
  expr.kind === 'AEXPR_OP' ? stringValues(expr.name).join('.') : undefined;

const integerConst = (wrapper: unknown): number | undefined => {
  const constant = nodeOf(wrapper, 'A_Const');
  const ival = asObject(constant?.ival);
  if (!constant || !ival) return undefined;
  return typeof ival.ival === 'number' ? ival.ival : 0; // libpg-query omits 0
};

const isConstOrParam = (wrapper: unknown): boolean =>
  nodeType(wrapper) === 'A_Const' ||
  nodeType(wrapper) === 'ParamRef' ||
  (nodeType(wrapper) === 'TypeCast' && isConstOrParam(nodeOf(wrapper, 'TypeCast')?.arg));

const isPlainSelect = (select: AstObject): boolean =>
  (select.op ?? 'SETOP_NONE') === 'SETOP_NONE' && !select.valuesLists;

// ── rule 1: x NOT IN (SELECT …) → NOT EXISTS ──

const notInSubquery = (
  parsed: ParsedStatement,
  options: DetectOptions,
): RewriteCandidate | undefined => {
  const { select } = parsed;
  if (!isPlainSelect(select)) return undefined;
  const outer = relationsOf(select.fromClause);
  const edits: Edit[] = [];
  // NULLs can reach the comparison unless both sides are NOT NULL columns of the only table
  // of their FROM (an outer join could still produce NULLs).
  let nullsPossible = false;
  const notNullColumn = (wrapper: unknown, from: unknown, relations: readonly Relation[]) => {
    const items = asList(from);
    if (items.length !== 1 || nodeType(items[0]) !== 'RangeVar') return false;
    const resolved = resolveColumn(wrapper, relations, options.schema);
    return (
      resolved !== undefined &&
      options.schema?.isNotNull?.(resolved.relation, resolved.column) === true
    );
  };
  walkNodes(select.whereClause, (type, body, wrapper) => {
    if (type === 'SelectStmt') return false; // nested queries have their own scope
    if (type !== 'BoolExpr' || body.boolop !== 'NOT_EXPR') return true;
    const sublink = nodeOf(asList(body.args)[0], 'SubLink');
    if (sublink?.subLinkType !== 'ANY_SUBLINK') return true;
    if (sublink.operName && stringValues(sublink.operName).join('') !== '=') return true;
    const sub = nodeOf(sublink.subselect, 'SelectStmt');
    const target = nodeOf(asList(sub?.targetList)[0], 'ResTarget')?.val;
    if (!sub || !isPlainSelect(sub) || asList(sub.targetList).length !== 1) return true;
    if (sub.groupClause || sub.limitCount || sub.distinctClause || sub.havingClause) return true;
    if (sub.withClause) return true;
    const inner = relationsOf(sub.fromClause);
    const outerRef = qualifiedRef(parsed, sublink.testexpr, outer, inner);
    const innerRef = qualifiedRef(parsed, target, inner, outer);
    if (!outerRef || !innerRef) return true;
    if (
      !notNullColumn(sublink.testexpr, select.fromClause, outer) ||
      !notNullColumn(target, sub.fromClause, inner)
    ) {
      nullsPossible = true;
    }
    const sublinkSpan = parsed.span({ SubLink: sublink });
    const whereSpan = sub.whereClause ? parsed.span(sub.whereClause) : undefined;
    const fromSpan = parsed.span(asList(sub.fromClause).at(-1));
    const fromStart = parsed.span(asList(sub.fromClause)[0]).start;
    const subEnd = sublinkSpan.end - 1; // before the closing parenthesis
    const condition = `${innerRef} = ${outerRef}`;
    const body2 = whereSpan
      ? `${parsed.slice(fromStart, whereSpan.start)}(${parsed.slice(whereSpan.start, whereSpan.end)}) AND ${condition}${parsed.slice(whereSpan.end, subEnd)}`
      : `${parsed.slice(fromStart, fromSpan.end)} WHERE ${condition}${parsed.slice(fromSpan.end, subEnd)}`;
    const whole = parsed.span(wrapper);
    edits.push({ start: whole.start, end: whole.end, text: `NOT EXISTS (SELECT 1 FROM ${body2})` });
    return false;
  });
  if (edits.length === 0) return undefined;
  const plan =
    'PostgreSQL 15 cannot turn NOT IN (subquery) into an anti-join: it runs a hashed subplan, ' +
    'or a plain subplan re-scanned for every outer row when the subquery result does not fit ' +
    'in work_mem. NOT EXISTS becomes a hash or merge anti-join.';
  return candidate(parsed, 'not_in_subquery', {
    title: 'NOT IN (subquery) → NOT EXISTS',
    rewrittenSql: applyEdits(parsed.sql, edits),
    correctnessFix: nullsPossible,
    rationale: nullsPossible
      ? `${plan} It also changes the result where NULLs occur, usually as intended: when the ` +
        'subquery yields a NULL, NOT IN returns no rows at all, NOT EXISTS the rows without a ' +
        'match; and a row whose own value is NULL, which NOT IN drops (unless the subquery is ' +
        'empty), NOT EXISTS keeps — add `AND <column> IS NOT NULL` to drop it. Both return the ' +
        'same rows when neither column can be NULL.'
      : `${plan} Both columns are NOT NULL, so both return the same rows.`,
  });
};

/**
 * The text of a column reference usable inside the subquery: qualified with its relation so
 * that it cannot be captured by a same-named column of the other scope.
 */
const qualifiedRef = (
  parsed: ParsedStatement,
  wrapper: unknown,
  own: readonly Relation[],
  other: readonly Relation[],
): string | undefined => {
  const names = columnRefNames(wrapper);
  if (!names) return undefined;
  if (names.length >= 2) {
    const qualifier = names.at(-2);
    // A qualifier both scopes define is ambiguous once the reference moves inside.
    if (other.some((r) => r.refName === qualifier)) return undefined;
    return own.some((r) => r.refName === qualifier) ? parsed.text(wrapper) : undefined;
  }
  const relation = own[0];
  if (own.length !== 1 || !relation) return undefined;
  if (other.some((r) => r.refName === relation.refName)) return undefined;
  return `${relation.refName}.${parsed.text(wrapper)}`;
};

// ── rule 2: OR across joined tables → UNION ALL ──

const orAcrossTables = (parsed: ParsedStatement): RewriteCandidate | undefined => {
  const { select } = parsed;
  if (!isPlainSelect(select) || select.withClause || select.sortClause) return undefined;
  if (select.groupClause || select.distinctClause || select.limitCount || select.havingClause) {
    return undefined;
  }
  if (hasAggregateOrWindow(select.targetList)) return undefined;
  const relations = relationsOf(select.fromClause);
  if (relations.length < 2 || !select.whereClause) return undefined;
  // The OR is the whole WHERE, or one conjunct of a top-level AND.
  const where = nodeOf(select.whereClause, 'BoolExpr');
  const conjuncts = where?.boolop === 'AND_EXPR' ? asList(where.args) : [select.whereClause];
  const or = conjuncts.find((c) => nodeOf(c, 'BoolExpr')?.boolop === 'OR_EXPR');
  const arms = asList(nodeOf(or, 'BoolExpr')?.args);
  if (!or || arms.length < 2) return undefined;
  const owners = arms.map((arm) => soleQualifier(arm));
  if (owners.some((o) => o === undefined)) return undefined;
  if (new Set(owners).size < 2) return undefined;
  if (!owners.every((o) => relations.some((r) => r.refName === o))) return undefined;
  const orSpan = parsed.span(or);
  const branches = arms.map((arm, i) => {
    const excluded = arms.slice(0, i).map((prev) => ` AND (${parsed.text(prev)}) IS NOT TRUE`);
    return applyEdits(parsed.sql, [
      { ...orSpan, text: `(${parsed.text(arm)})${excluded.join('')}` },
    ]);
  });
  return candidate(parsed, 'or_across_tables', {
    title: 'OR across joined tables → UNION ALL',
    rewrittenSql: branches.join('\nUNION ALL\n'),
    rationale:
      'An OR whose arms test columns of different joined tables can only be checked after the ' +
      'join, so neither table can use an index for it. One branch per arm lets each branch ' +
      'start from its own index; `IS NOT TRUE` of the earlier arms keeps rows that match ' +
      'several arms from appearing twice, so the result is the same as the original.',
  });
};

const hasAggregateOrWindow = (targetList: unknown): boolean => {
  let found = false;
  walkNodes(targetList, (type, body) => {
    if (type === 'SelectStmt') return false;
    if (type === 'FuncCall' && (body.over || body.agg_star || AGGREGATES.has(funcName(body)))) {
      found = true;
    }
    return !found;
  });
  return found;
};

const AGGREGATES = new Set([
  'count',
  'sum',
  'avg',
  'min',
  'max',
  'array_agg',
  'string_agg',
  'bool_and',
  'bool_or',
  'every',
  'json_agg',
  'jsonb_agg',
  'json_object_agg',
  'jsonb_object_agg',
]);

const funcName = (func: AstObject): string => stringValues(func.funcname).at(-1) ?? '';

/** The one table qualifier all column references of an expression use, if there is one. */
const soleQualifier = (expr: unknown): string | undefined => {
  const qualifiers = new Set<string>();
  let unqualified = false;
  walkNodes(expr, (type, _body, wrapper) => {
    if (type === 'SubLink') {
      unqualified = true; // a subquery may reference anything: leave it alone
      return false;
    }
    if (type !== 'ColumnRef') return true;
    const names = columnRefNames(wrapper);
    if (!names || names.length < 2) unqualified = true;
    else qualifiers.add(names.at(-2) ?? '');
    return false;
  });
  return !unqualified && qualifiers.size === 1 ? [...qualifiers][0] : undefined;
};

// ── rule 3: deep OFFSET → keyset pagination ──

const deepOffset = (
  parsed: ParsedStatement,
  options: DetectOptions,
): RewriteCandidate | undefined => {
  const { select, tokens } = parsed;
  const threshold = options.deepOffsetRows ?? DEFAULT_DEEP_OFFSET_ROWS;
  if (!isPlainSelect(select) || !select.limitOffset || !select.limitCount) return undefined;
  if (select.groupClause || select.distinctClause || hasAggregateOrWindow(select.targetList)) {
    return undefined;
  }
  const known = offsetValue(select.limitOffset, options.params);
  // pg_stat_statements replaces every constant with $n, OFFSET included: with the option on,
  // an OFFSET parameter of unknown value is a candidate, and the generic plan (which assumes
  // it skips 10 % of the rows) is what gets measured.
  const unknownParam = known === undefined && nodeType(select.limitOffset) === 'ParamRef';
  if (unknownParam ? !options.unknownOffsetIsCandidate : known === undefined || known < threshold) {
    return undefined;
  }
  const offset = unknownParam ? parsed.text(select.limitOffset) : String(known);
  const sorts = asList(select.sortClause).map((s) => nodeOf(s, 'SortBy'));
  if (sorts.length === 0) return undefined;
  const directions = new Set(sorts.map((s) => s?.sortby_dir ?? 'SORTBY_DEFAULT'));
  if (directions.size !== 1 || sorts.some((s) => s?.sortby_nulls !== 'SORTBY_NULLS_DEFAULT')) {
    return undefined;
  }
  if (sorts.some((s) => !columnRefNames(s?.node))) return undefined;
  const descending = directions.has('SORTBY_DESC');
  // Keys the caller cannot read back from the page (not selected, and no `*`).
  const selected = asList(select.targetList).map((t) => nodeOf(t, 'ResTarget')?.val);
  const selectsAll = selected.some(
    (v) => nodeType(asList(nodeOf(v, 'ColumnRef')?.fields).at(-1)) === 'A_Star',
  );
  const selectedNames = new Set(selected.map((v) => columnRefNames(v)?.at(-1)));
  const missing = selectsAll
    ? []
    : sorts
        .map((s) => columnRefNames(s?.node)?.at(-1) ?? '')
        .filter((name) => !selectedNames.has(name));
  const keys = sorts.map((s) => parsed.text(s?.node));
  // New parameters for the last row's keys. A removed `OFFSET $k` frees $k: reuse it, so the
  // rewrite has no gap in its parameter numbers (PREPARE cannot type a missing $k).
  const freed =
    unknownParam || nodeType(select.limitOffset) === 'ParamRef'
      ? Number(nodeOf(select.limitOffset, 'ParamRef')?.number)
      : undefined;
  const reusable = freed !== undefined && countParamUses(select, freed) === 1 ? [freed] : [];
  const numbers = keys.map((_, i) => reusable[i] ?? parsed.maxParam + i + 1 - reusable.length);
  const placeholders = numbers.map((n) => `$${n}`);
  const comparison =
    keys.length === 1
      ? `${keys[0]} ${descending ? '<' : '>'} ${placeholders[0]}`
      : `(${keys.join(', ')}) ${descending ? '<' : '>'} (${placeholders.join(', ')})`;
  // OFFSET n: from the keyword to the end of its value.
  const offsetSpan = parsed.span(select.limitOffset);
  const offsetKeyword = tokens.findLastIndex((t) => t.end <= offsetSpan.start);
  if (tokens[offsetKeyword]?.text.toUpperCase() !== 'OFFSET') return undefined;
  const removeOffset: Edit = {
    start: tokens[offsetKeyword]?.start ?? 0,
    end: offsetSpan.end,
    text: '',
  };
  const firstSort = parsed.span(asList(select.sortClause)[0]);
  const orderKeyword = tokens.findLastIndex((t) => t.end <= firstSort.start) - 1; // ORDER BY
  const orderStart = tokens[orderKeyword]?.start ?? 0;
  if (tokens[orderKeyword]?.text.toUpperCase() !== 'ORDER') return undefined;
  const addPredicate: Edit = select.whereClause
    ? {
        ...parsed.span(select.whereClause),
        text: `(${parsed.text(select.whereClause)}) AND ${comparison}`,
      }
    : { start: orderStart, end: orderStart, text: `WHERE ${comparison}\n` };
  // Values of the new parameters for measuring: the keys of the first row of the ordering.
  const targets = asList(select.targetList);
  const targetsSpan = {
    start: parsed.span(targets[0]).start,
    end: parsed.span(targets.at(-1)).end,
  };
  // With literal LIMIT/OFFSET: the first row's keys (cheap). With parameters: the keys of the
  // row at the offset itself (every parameter stays referenced; runs the original once).
  const keysOnly = { ...targetsSpan, text: keys.join(', ') };
  const parametrised =
    nodeType(select.limitOffset) === 'ParamRef' || nodeType(select.limitCount) === 'ParamRef';
  const probe = parametrised
    ? `SELECT * FROM (${applyEdits(parsed.sql, [keysOnly])}) AS dbopt_probe LIMIT 1`
    : applyEdits(parsed.sql, [
        keysOnly,
        removeOffset,
        { ...parsed.span(select.limitCount), text: '1' },
      ]);
  return candidate(parsed, 'deep_offset', {
    title: `OFFSET ${offset} pagination → keyset (row comparison)`,
    rewrittenSql: applyEdits(parsed.sql, [addPredicate, removeOffset]),
    extraParams: { numbers, probeSql: probe },
    rationale:
      `OFFSET ${offset} makes the server produce and discard ${offset} rows for every page, so ` +
      'page N costs N pages of work' +
      (unknownParam
        ? ` (the OFFSET is a parameter whose values were not recorded: this matters when deep pages, OFFSET ≥ ${threshold}, are requested)`
        : '') +
      '. Remember the last row of the previous page and continue ' +
      `after it with ${keys.length === 1 ? 'a comparison' : 'a row comparison'} on the ORDER BY ` +
      `keys (${placeholders.join(', ')} = the last row's ${keys.join(', ')}): an index on ` +
      `(${keys.join(', ')}) then reads only the rows of the page. The keys must be NOT NULL ` +
      'and unique together (append the primary key as the last key if they are not).' +
      (missing.length > 0
        ? ` Add ${missing.join(', ')} to the select list to know the last row's keys.`
        : ''),
  });
};

const countParamUses = (select: AstObject, n: number): number => {
  let uses = 0;
  walkNodes({ SelectStmt: select }, (type, body) => {
    if (type === 'ParamRef' && Number(body.number) === n) uses++;
    return true;
  });
  return uses;
};

const offsetValue = (
  wrapper: unknown,
  params: readonly unknown[] | undefined,
): number | undefined => {
  const literal = integerConst(wrapper);
  if (literal !== undefined) return literal;
  const param = nodeOf(wrapper, 'ParamRef');
  const value = param ? params?.[Number(param.number) - 1] : undefined;
  const n = Number(value);
  return value !== undefined && value !== null && Number.isInteger(n) ? n : undefined;
};

// ── rule 4: casts or functions on indexed columns → sargable ranges ──

const TRUNC_UNITS = new Set(['minute', 'hour', 'day', 'week', 'month', 'quarter', 'year']);
/** Interval input has no `quarter` unit. */
const TRUNC_STEPS: Readonly<Record<string, string>> = { quarter: '3 months' };

const nonSargablePredicate = (
  parsed: ParsedStatement,
  options: DetectOptions,
): RewriteCandidate | undefined => {
  const relations = allRelations(parsed.select);
  const { schema } = options;
  const edits: Edit[] = [];
  const notes: string[] = [];
  walkNodes(parsed.select, (type, body, wrapper) => {
    if (type !== 'A_Expr' || operatorOf(body) !== '=') return true;
    for (const [side, other] of [
      [body.lexpr, body.rexpr],
      [body.rexpr, body.lexpr],
    ] as const) {
      if (!isConstOrParam(other)) continue;
      const range = sargableRange(parsed, side, other, relations, schema);
      if (!range) continue;
      edits.push({ ...parsed.span(wrapper), text: range.text });
      notes.push(range.note);
      return false;
    }
    return true;
  });
  if (edits.length === 0) return undefined;
  return candidate(parsed, 'non_sargable_predicate', {
    title: 'Function or cast on an indexed column → range predicate',
    rewrittenSql: applyEdits(parsed.sql, edits),
    rationale:
      'A btree index on a column cannot serve a predicate on a function or cast of that column, ' +
      `so the planner scans and filters every row. ${notes.join(' ')} (The alternative is an ` +
      'expression index on exactly the expression used.)',
  });
};

const sargableRange = (
  parsed: ParsedStatement,
  expr: unknown,
  value: unknown,
  relations: readonly Relation[],
  schema: SchemaInfo | undefined,
): { text: string; note: string } | undefined => {
  const indexedTimestamp = (col: unknown): boolean => {
    const resolved = resolveColumn(col, relations, schema);
    if (!resolved) return false;
    if (!schema) return true; // unknown types: the measurement decides
    return (
      isTimestampType(schema.columnType(resolved.relation, resolved.column)) &&
      schema.isIndexed(resolved.relation, resolved.column)
    );
  };
  const v = parsed.text(value);
  const cast = nodeOf(expr, 'TypeCast');
  if (cast && columnRefNames(cast.arg)) {
    const typeName = stringValues(asObject(cast.typeName)?.names).at(-1);
    if (typeName !== 'date' || !indexedTimestamp(cast.arg)) return undefined;
    const col = parsed.text(cast.arg);
    return {
      text: `(${col} >= CAST(${v} AS date) AND ${col} < CAST(${v} AS date) + interval '1 day')`,
      note: `\`${parsed.text(expr)} = …\` is the same as a one-day range on ${col}.`,
    };
  }
  const func = nodeOf(expr, 'FuncCall');
  if (!func) return undefined;
  const name = funcName(func);
  const args = asList(func.args);
  const unit = String(
    nodeOf(args[0], 'A_Const')?.sval ? asObject(nodeOf(args[0], 'A_Const')?.sval)?.sval : '',
  );
  const col = args[1];
  if (args.length !== 2 || !columnRefNames(col) || !indexedTimestamp(col)) return undefined;
  const c = parsed.text(col);
  if (name === 'date_trunc' && TRUNC_UNITS.has(unit)) {
    // Typed like the column: an untyped literal ('2024-03-01') is otherwise read as an
    // interval in `v + interval …`, and date_trunc(unit, 'text') is ambiguous.
    const resolved = resolveColumn(col, relations, schema);
    const columnType = resolved
      ? schema?.columnType(resolved.relation, resolved.column)
      : undefined;
    const typed = columnType ? `CAST(${v} AS ${columnType})` : v;
    return {
      // The last conjunct keeps the original's meaning for a value that is not at the start
      // of a unit (the original matches nothing then); it is a one-time filter on a constant.
      text: `(${c} >= ${typed} AND ${c} < ${typed} + interval '${TRUNC_STEPS[unit] ?? `1 ${unit}`}' AND date_trunc('${unit}', ${typed}) = ${typed})`,
      note: `\`date_trunc('${unit}', ${c}) = v\` is the same as the range [v, v + 1 ${unit}).`,
    };
  }
  const year = integerConst(value);
  if ((name === 'extract' || name === 'date_part') && unit === 'year' && year !== undefined) {
    return {
      text: `(${c} >= '${year}-01-01' AND ${c} < '${year + 1}-01-01')`,
      note: `\`extract(year from ${c}) = ${year}\` is the same as one year's range.`,
    };
  }
  return undefined;
};

// ── rule 5: literals of a mismatched type ──

const mismatchedLiteral = (
  parsed: ParsedStatement,
  options: DetectOptions,
): RewriteCandidate | undefined => {
  const { schema } = options;
  if (!schema) return undefined;
  const relations = allRelations(parsed.select);
  const edits: Edit[] = [];
  const columns: string[] = [];
  const fix = (col: unknown, literal: unknown): void => {
    const resolved = resolveColumn(col, relations, schema);
    if (!resolved) return;
    if (!isIntegerType(schema.columnType(resolved.relation, resolved.column))) return;
    const n = nonIntegerTypedNumber(literal);
    if (n === undefined) return;
    // 1.5 can never equal an integer: that is a bug in the query, not a rewrite.
    if (!Number.isSafeInteger(n)) return;
    edits.push({ ...parsed.span(literal), text: String(n) });
    columns.push(parsed.text(col));
  };
  walkNodes(parsed.select, (type, body) => {
    if (type !== 'A_Expr') return true;
    const op = operatorOf(body);
    if (op && ['=', '<', '<=', '>', '>=', '<>', '!='].includes(op)) {
      if (columnRefNames(body.lexpr)) fix(body.lexpr, body.rexpr);
      else if (columnRefNames(body.rexpr)) fix(body.rexpr, body.lexpr);
    } else if (body.kind === 'AEXPR_IN' && columnRefNames(body.lexpr)) {
      for (const item of asList(nodeOf(body.rexpr, 'List')?.items)) fix(body.lexpr, item);
    }
    return true;
  });
  if (edits.length === 0) return undefined;
  const unique = [...new Set(columns)];
  return candidate(parsed, 'mismatched_literal', {
    title: 'Numeric literal compared with an integer column → integer literal',
    rewrittenSql: applyEdits(parsed.sql, edits),
    rationale:
      `Comparing the integer column${unique.length > 1 ? 's' : ''} ${unique.join(', ')} with a ` +
      'numeric literal (e.g. 1.0) makes PostgreSQL cast the column to numeric for every row, ' +
      "so the column's btree index cannot be used. The same value written as an integer " +
      'compares natively and can use the index.',
  });
};

const NON_INTEGER_NUMERIC_TYPES = new Set([
  'numeric',
  'decimal',
  'float4',
  'float8',
  'real',
  'float',
]);

/**
 * The value of a number that PostgreSQL types as non-integer: a decimal literal (`1.0`,
 * `1e3`) or any number cast to numeric / float (`42::numeric`, `CAST(42 AS float8)`).
 */
const nonIntegerTypedNumber = (wrapper: unknown): number | undefined => {
  const fval = asObject(nodeOf(wrapper, 'A_Const')?.fval)?.fval;
  if (typeof fval === 'string') return Number(fval);
  const cast = nodeOf(wrapper, 'TypeCast');
  const typeName = stringValues(asObject(cast?.typeName)?.names).at(-1) ?? '';
  if (!cast || !NON_INTEGER_NUMERIC_TYPES.has(typeName)) return undefined;
  const inner = integerConst(cast.arg);
  if (inner !== undefined) return inner;
  const innerFval = asObject(nodeOf(cast.arg, 'A_Const')?.fval)?.fval;
  return typeof innerFval === 'string' ? Number(innerFval) : undefined;
};

// ── rule 6: (SELECT count(*) …) > 0 → EXISTS ──

const countGreaterThanZero = (parsed: ParsedStatement): RewriteCandidate | undefined => {
  const edits: Edit[] = [];
  walkNodes(parsed.select, (type, body, wrapper) => {
    if (type !== 'A_Expr') return true;
    const op = operatorOf(body);
    if (!op) return true;
    for (const [side, other, flipped] of [
      [body.lexpr, body.rexpr, false],
      [body.rexpr, body.lexpr, true],
    ] as const) {
      const sublink = nodeOf(side, 'SubLink');
      const bound = integerConst(other);
      if (sublink?.subLinkType !== 'EXPR_SUBLINK' || bound === undefined) continue;
      const exists = existenceTest(flipped ? mirror(op) : op, bound);
      const sub = nodeOf(sublink.subselect, 'SelectStmt');
      if (exists === undefined || !sub || !isCountStar(sub)) continue;
      const subSpan = parsed.span(side);
      const target = parsed.span(asList(sub.targetList)[0]);
      const inner = `${parsed.slice(subSpan.start + 1, target.start)}1${parsed.slice(target.end, subSpan.end - 1)}`;
      edits.push({
        ...parsed.span(wrapper),
        text: `${exists ? '' : 'NOT '}EXISTS (${inner})`,
      });
      return false;
    }
    return true;
  });
  if (edits.length === 0) return undefined;
  return candidate(parsed, 'count_gt_zero', {
    title: '(SELECT count(*) …) > 0 → EXISTS (…)',
    rewrittenSql: applyEdits(parsed.sql, edits),
    rationale:
      'count(*) must read every matching row to produce a number that is only compared with ' +
      'zero; EXISTS stops at the first match, and a correlated EXISTS can become a semi-join.',
  });
};

const mirror = (op: string): string => ({ '>': '<', '<': '>', '>=': '<=', '<=': '>=' })[op] ?? op;

/** true: `count op bound` means "at least one row"; false: "no row"; undefined: neither. */
const existenceTest = (op: string, bound: number): boolean | undefined => {
  if ((op === '>' && bound === 0) || (op === '>=' && bound === 1)) return true;
  if ((op === '<>' || op === '!=') && bound === 0) return true;
  if ((op === '=' && bound === 0) || (op === '<' && bound === 1) || (op === '<=' && bound === 0)) {
    return false;
  }
  return undefined;
};

const isCountStar = (sub: AstObject): boolean => {
  if (!isPlainSelect(sub) || asList(sub.targetList).length !== 1) return false;
  if (sub.groupClause || sub.havingClause || sub.limitCount || sub.limitOffset) return false;
  if (sub.distinctClause || sub.windowClause) return false;
  const func = nodeOf(nodeOf(asList(sub.targetList)[0], 'ResTarget')?.val, 'FuncCall');
  if (!func || funcName(func) !== 'count' || func.over || func.agg_filter || func.agg_distinct) {
    return false;
  }
  // count(*) or count(<non-null constant>): a count of a column skips NULLs.
  const args = asList(func.args);
  const constant = nodeOf(args[0], 'A_Const');
  return (
    func.agg_star === true || (args.length === 1 && constant !== undefined && !constant.isnull)
  );
};

// ── rule 7: long OR lists on one column → IN (…) ──

const orList = (parsed: ParsedStatement, options: DetectOptions): RewriteCandidate | undefined => {
  const minArms = options.minOrListArms ?? DEFAULT_MIN_OR_LIST_ARMS;
  const edits: Edit[] = [];
  walkNodes(parsed.select, (type, body, wrapper) => {
    if (type !== 'BoolExpr' || body.boolop !== 'OR_EXPR') return true;
    const arms = asList(body.args).map((arm) => {
      const expr = nodeOf(arm, 'A_Expr');
      if (!expr || operatorOf(expr) !== '=') return undefined;
      if (columnRefNames(expr.lexpr) && isConstOrParam(expr.rexpr)) {
        return { column: expr.lexpr, value: expr.rexpr };
      }
      if (columnRefNames(expr.rexpr) && isConstOrParam(expr.lexpr)) {
        return { column: expr.rexpr, value: expr.lexpr };
      }
      return undefined;
    });
    const first = arms[0];
    if (arms.length < minArms || !first || arms.some((a) => !a)) return true;
    const key = structuralKey(first.column);
    if (!arms.every((a) => a && structuralKey(a.column) === key)) return true;
    const values = arms.map((a) => parsed.text(a?.value));
    edits.push({
      ...parsed.span(wrapper),
      text: `${parsed.text(first.column)} IN (${values.join(', ')})`,
    });
    return false;
  });
  if (edits.length === 0) return undefined;
  return candidate(parsed, 'or_list', {
    title: 'OR list on one column → IN (…) / = ANY($1)',
    rewrittenSql: applyEdits(parsed.sql, edits),
    rationale:
      'PostgreSQL 15 plans `c = 1 OR c = 2 OR …` as one index scan per arm combined by a ' +
      'BitmapOr (or a filter evaluating every arm); `c IN (…)` — `c = ANY(…)` — is a single ' +
      'index condition. From application code, bind one array: `c = ANY($1)`.',
  });
};
