import {
  type AstObject,
  asList,
  asObject,
  nodeOf,
  nodeType,
  parseStatements,
  scanSqlTokens,
  stringValues,
  structuralKey,
  walkNodes,
} from '#shared/sql';

/**
 * Parse-tree access and text splicing for the rewrite rules. libpg-query has no deparser in
 * this build, so a rewrite is built from the statement's own text: every node's byte span is
 * recovered from the lexer tokens (a node's `location` is where it starts; its end is the end
 * of the last token under it, widened until its parentheses balance), and the rewritten SQL
 * is the original with some spans replaced. The user's formatting survives, and the result is
 * parsed again before anyone sees it.
 */
export {
  type AstObject,
  asList,
  asObject,
  nodeOf,
  nodeType,
  stringValues,
  structuralKey,
  walkNodes,
};

/** `a.b` of a ColumnRef: its field names, or undefined for `*` and other shapes. */
export const columnRefNames = (wrapper: unknown): string[] | undefined => {
  const ref = nodeOf(wrapper, 'ColumnRef');
  if (!ref) return undefined;
  const fields = asList(ref.fields);
  if (fields.some((f) => nodeType(f) !== 'String')) return undefined;
  return stringValues(fields);
};

/** A `SELECT` parsed from text: its tree plus the text, tokens and spans to splice it. */
export interface ParsedStatement {
  readonly sql: string;
  readonly select: AstObject;
  /** Byte span [start, end) of a node in the statement text. */
  span(wrapper: unknown): Span;
  /** The statement text of a node. */
  text(wrapper: unknown): string;
  /** The text between two byte offsets. */
  slice(start: number, end: number): string;
  /** Highest `$n` used in the statement (0 when none). */
  readonly maxParam: number;
  /** Lexer tokens with byte offsets. */
  readonly tokens: readonly Token[];
}

export interface Span {
  readonly start: number;
  readonly end: number;
}

/** A replacement of the bytes [start, end) of a statement by `text`. */
export interface Edit extends Span {
  readonly text: string;
}

export interface Token {
  readonly start: number;
  readonly end: number;
  readonly text: string;
}

/**
 * Parses one plain SELECT (no data-modifying statement, exactly one statement). Returns
 * undefined for anything else: the rules only ever rewrite queries.
 */
export const parseSelect = (sql: string): ParsedStatement | undefined => {
  const stmts = parseStatements(sql);
  if (stmts.length !== 1) return undefined;
  const select = nodeOf(stmts[0]?.stmt, 'SelectStmt');
  if (!select) return undefined;
  const tokens: Token[] = scanSqlTokens(sql).tokens.map((t) => ({
    start: t.start,
    end: t.end,
    text: t.text,
  }));
  // A trailing `;` would end the statement in the middle of a spliced UNION; drop it.
  const bytes = Buffer.from(sql, 'utf8');
  if (tokens.at(-1)?.text === ';') {
    const semicolon = tokens.pop();
    return parsedFrom(bytes.subarray(0, semicolon?.start).toString('utf8'), select, tokens);
  }
  return parsedFrom(sql, select, tokens);
};

const parsedFrom = (sql: string, select: AstObject, tokens: Token[]): ParsedStatement => {
  const bytes = Buffer.from(sql, 'utf8');
  let maxParam = 0;
  walkNodes(select, (type, body) => {
    if (type === 'ParamRef') maxParam = Math.max(maxParam, Number(body.number ?? 0));
    return true;
  });
  const slice = (start: number, end: number) => bytes.subarray(start, end).toString('utf8');
  const span = (wrapper: unknown): Span => spanOf(wrapper, tokens);
  return {
    sql,
    select,
    tokens,
    span,
    slice,
    text: (wrapper) => {
      const s = span(wrapper);
      return slice(s.start, s.end);
    },
    maxParam,
  };
};

/** Index of the token that starts at or contains byte `offset`. */
const tokenAt = (tokens: readonly Token[], offset: number): number => {
  let lo = 0;
  let hi = tokens.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((tokens[mid]?.start ?? 0) <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
};

const spanOf = (wrapper: unknown, tokens: readonly Token[]): Span => {
  let min = Number.POSITIVE_INFINITY;
  let max = -1;
  // Every location under the node, including those of plain fields (a TypeName is not a
  // wrapped node but carries the location of the type's name).
  const collect = (value: unknown): void => {
    if (Array.isArray(value)) {
      for (const item of value) collect(item);
      return;
    }
    const object = asObject(value);
    if (!object) return;
    for (const [key, child] of Object.entries(object)) {
      if ((key === 'location' || key === 'rexpr_list_end') && typeof child === 'number') {
        if (child >= 0) {
          min = Math.min(min, child);
          max = Math.max(max, child);
        }
      } else {
        collect(child);
      }
    }
  };
  collect(wrapper);
  if (max < 0) throw new Error('node without a location: cannot splice its text');
  let first = tokenAt(tokens, min);
  let last = tokenAt(tokens, max);
  // Widen until the parentheses inside the span balance: `count(*)` ends at `)`, a scalar
  // subquery starts at its `(`.
  let depth = 0;
  for (let i = first; i <= last; i++) depth += parenDelta(tokens[i]);
  while (depth > 0 && last < tokens.length - 1) {
    last++;
    depth += parenDelta(tokens[last]);
  }
  while (depth < 0 && first > 0) {
    first--;
    depth += parenDelta(tokens[first]);
  }
  // `a.b.c` carries only the location of `a`.
  while (tokens[last + 1]?.text === '.' && tokens[last + 2]) last += 2;
  // A call whose arguments carry no location (`count(*)`, `now()`) ends at its `)`.
  if (isWord(tokens[last]) && tokens[last + 1]?.text === '(') {
    depth = 0;
    do {
      last++;
      depth += parenDelta(tokens[last]);
    } while (depth > 0 && last < tokens.length - 1);
  }
  return { start: tokens[first]?.start ?? 0, end: tokens[last]?.end ?? 0 };
};

const isWord = (token: Token | undefined): boolean => {
  const first = token?.text.charCodeAt(0) ?? 0;
  // a-z, A-Z, _ or a quoted identifier
  return (
    (first >= 97 && first <= 122) || (first >= 65 && first <= 90) || first === 95 || first === 34
  );
};

const parenDelta = (token: Token | undefined): number =>
  token?.text === '(' ? 1 : token?.text === ')' ? -1 : 0;

/** Applies non-overlapping edits to `sql` (byte offsets). */
export const applyEdits = (sql: string, edits: readonly Edit[]): string => {
  const bytes = Buffer.from(sql, 'utf8');
  const sorted = [...edits].sort((a, b) => a.start - b.start);
  const parts: string[] = [];
  let at = 0;
  for (const edit of sorted) {
    if (edit.start < at) throw new Error('overlapping rewrite edits');
    parts.push(bytes.subarray(at, edit.start).toString('utf8'), edit.text);
    at = edit.end;
  }
  parts.push(bytes.subarray(at).toString('utf8'));
  return parts.join('');
};

/** Quotes an identifier only when it needs it. */
export const quoteIdent = (name: string): string =>
  SIMPLE_IDENTIFIER.test(name) ? name : `"${name.replaceAll('"', '""')}"`;

const SIMPLE_IDENTIFIER = /^[a-z_][a-z0-9_$]*$/;
