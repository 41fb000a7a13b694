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

/** A JSON-ish example value as an SQL literal (untyped, so it coerces to the parameter type). */
export const toSqlLiteral = (value: unknown): string => {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RangeError(`not a finite number: ${value}`);
    return `'${String(value)}'`;
  }
  if (typeof value === 'boolean') return value ? "'true'" : "'false'";
  if (typeof value === 'bigint') return `'${value.toString()}'`;
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return `'${text.replaceAll("'", "''")}'`;
};

/** Schema-qualified, quoted table name. */
export const qualifiedName = (schema: string, name: string): string =>
  `${quoteIdent(schema)}.${quoteIdent(name)}`;
