/** Small SQL text helpers for the DDL and EXPLAIN text the advisor writes. */

// Reserved words that must be quoted as identifiers (the common ones; quoting is always safe).
const RESERVED: ReadonlySet<string> = new Set(
  (
    'all analyse analyze and any array as asc asymmetric authorization binary both case cast check collate ' +
    'collation column concurrently constraint create cross current_catalog current_date current_role ' +
    'current_schema current_time current_timestamp current_user default deferrable desc distinct do else ' +
    'end except false fetch for foreign freeze from full grant group having ilike in initially inner ' +
    'intersect into is isnull join lateral leading left like limit localtime localtimestamp natural not ' +
    'notnull null offset on only or order outer overlaps placing primary references returning right select ' +
    'session_user similar some symmetric system_user table tablesample then to trailing true union unique ' +
    'user using variadic verbose when where window with'
  ).split(' '),
);

/** Quotes an identifier the way quote_ident() does (only when needed). */
export const quoteIdent = (name: string): string =>
  /^[a-z_][a-z0-9_$]*$/.test(name) && !RESERVED.has(name)
    ? name
    : `"${name.replaceAll('"', '""')}"`;

/** Backslash or a control character (newlines included), escaped inside `E'…'`. */
const needsEscape = (code: number): boolean => code === 0x5c || code < 0x20 || code === 0x7f;

const escapeChar = (ch: string): string => {
  if (ch === '\\') return '\\\\';
  if (ch === "'") return "''";
  if (ch === '\n') return '\\n';
  if (ch === '\r') return '\\r';
  if (ch === '\t') return '\\t';
  const code = ch.charCodeAt(0);
  return needsEscape(code) ? `\\x${code.toString(16).padStart(2, '0')}` : ch;
};

/**
 * A string as an SQL string literal that means the same under any setting: plain `'…'` when
 * it has no backslash or control character, else `E'…'` with backslashes and control
 * characters escaped. A plain literal with a backslash is read differently when
 * `standard_conforming_strings` is off (a value ending in `\` would end the literal early and
 * the rest would run as SQL), and a newline would split one-line DDL.
 * https://www.postgresql.org/docs/15/sql-syntax-lexical.html#SQL-SYNTAX-STRINGS-ESCAPE
 */
export const quoteLiteral = (text: string): string => {
  for (let i = 0; i < text.length; i += 1) {
    if (needsEscape(text.charCodeAt(i))) return `E'${Array.from(text, escapeChar).join('')}'`;
  }
  return `'${text.replaceAll("'", "''")}'`;
};

/** A JSON-ish example value as an SQL literal (untyped, so it coerces to the parameter type). */
export const toSqlLiteral = (value: unknown): string => {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RangeError(`not a finite number: ${value}`);
    return `'${String(value)}'`;
  }
  if (typeof value === 'boolean') return value ? "'true'" : "'false'";
  if (typeof value === 'bigint') return `'${value.toString()}'`;
  return quoteLiteral(typeof value === 'string' ? value : JSON.stringify(value));
};

/** Schema-qualified, quoted table name. */
export const qualifiedName = (schema: string, name: string): string =>
  `${quoteIdent(schema)}.${quoteIdent(name)}`;
