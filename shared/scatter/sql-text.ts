import { scanSync } from 'libpg-query';

/** One lexer token (PostgreSQL's own scanner) with its parenthesis/bracket nesting depth. */
export interface SqlToken {
  /** Byte offsets into the UTF-8 text, like the parse tree's `location`s. */
  readonly start: number;
  readonly end: number;
  /** Upper-cased keyword text, or the token text as written for everything else. */
  readonly word: string;
  readonly isKeyword: boolean;
  readonly depth: number;
}

/** Tokenises with PostgreSQL's scanner; `depth` counts enclosing `(` and `[`. */
export const scanTokens = (sql: string): readonly SqlToken[] => {
  let depth = 0;
  return scanSync(sql).tokens.map((t) => {
    if (t.text === ')' || t.text === ']') depth -= 1;
    const isKeyword = t.keywordKind !== 0;
    const token = {
      start: t.start,
      end: t.end,
      word: isKeyword ? t.text.toUpperCase() : t.text,
      isKeyword,
      depth,
    };
    if (t.text === '(' || t.text === '[') depth += 1;
    return token;
  });
};

/** A replacement of the byte range [start, end) by `text`. */
export interface TextEdit {
  readonly start: number;
  readonly end: number;
  readonly text: string;
}

/** Applies non-overlapping edits to the byte range [from, to) of `sql`. */
export const spliceSql = (
  sql: string,
  from: number,
  to: number,
  edits: readonly TextEdit[],
): string => {
  const bytes = Buffer.from(sql, 'utf8');
  const ordered = [...edits].sort((a, b) => a.start - b.start || a.end - b.end);
  const parts: string[] = [];
  let cursor = from;
  for (const edit of ordered) {
    parts.push(bytes.subarray(cursor, edit.start).toString('utf8'), edit.text);
    cursor = edit.end;
  }
  parts.push(bytes.subarray(cursor, to).toString('utf8'));
  return parts.join('');
};

/** The text of the byte range [start, end). */
export const sliceSql = (sql: string, start: number, end: number): string =>
  Buffer.from(sql, 'utf8').subarray(start, end).toString('utf8');
