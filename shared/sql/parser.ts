import {
  fingerprintSync,
  hasSqlDetails,
  loadModule,
  normalizeSync,
  type ParseResult,
  parseSync,
  type RawStmt,
} from 'libpg-query';
import { SqlSyntaxError, ValidationError } from '#shared/errors';

// The only module-level state in shared/sql: the WASM parser is compiled once per process
// (Lambda instance) and every analyzer shares it. A failed load is forgotten so that the
// next initSqlParser() call retries instead of replaying the failure forever.
let loading: Promise<void> | undefined;
let ready = false;

const loadParser = async (): Promise<void> => {
  try {
    await loadModule();
    // The first parse and fingerprint after loading pay ~100-200 ms of one-time WASM
    // initialisation; pay it here, at cold start, rather than in the first request.
    const warmUp = 'SELECT a FROM t WHERE b = 1';
    parseSync(warmUp);
    fingerprintSync(warmUp);
    normalizeSync(warmUp);
  } catch (err) {
    throw new Error('Loading the PostgreSQL parser (libpg-query WASM) failed', { cause: err });
  }
  ready = true;
};

/**
 * Loads and warms up the PostgreSQL parser (WASM) once per process. Await it at cold start,
 * before the first `analyze()`; after that, analysis is synchronous. Concurrent and
 * repeated calls share one load.
 */
export const initSqlParser = (): Promise<void> => {
  loading ??= loadParser().catch((err: unknown) => {
    loading = undefined;
    throw err;
  });
  return loading;
};

/**
 * Parses SQL text into raw statements. Empty text has no statements (libpg-query rejects
 * '' outright, while whitespace and comment-only text parse to an empty list, so both paths
 * agree here).
 *
 * @throws SqlSyntaxError `SQL_SYNTAX_ERROR` with `details.position`: the 1-based character
 *   position PostgreSQL itself reports (the `P` field / `LINE n:` caret).
 * @throws ValidationError `SQL_TOO_COMPLEX` when the text nests too deeply to parse.
 */
export const parseStatements = (sql: string): readonly RawStmt[] => {
  if (!ready) {
    throw new Error('The SQL parser is not loaded: await initSqlParser() at cold start');
  }
  if (sql === '') return [];
  let result: ParseResult;
  try {
    result = parseSync(sql);
  } catch (err) {
    // The parser (WASM) and the JSON.parse of its output both recurse. Only extreme input
    // gets here (measured: ~2,500 nested scalar subqueries or ~9,600-term operator chains,
    // never under ~18 KB of SQL text); callers should cap SQL length well below that, since
    // an overflow inside WASM leaks the aborted call's memory (see MAX_NODE_DEPTH).
    if (err instanceof RangeError) {
      throw new ValidationError(
        'SQL_TOO_COMPLEX',
        'The statement nests too deeply to analyse; reduce the nesting of parentheses or subqueries',
        { cause: err },
      );
    }
    if (!hasSqlDetails(err)) throw err;
    // PostgreSQL reports a 1-based character (code point) position; libpg-query's wrapper
    // subtracts one to make it 0-based. It maps "no position" (0) to 0 as well, so an error
    // without a position is reported at position 1, which is rare for raw-parser errors.
    const position = (err.sqlDetails?.cursorPosition ?? 0) + 1;
    throw new SqlSyntaxError('SQL_SYNTAX_ERROR', `${err.message} (position ${position})`, {
      cause: err,
      details: { position },
    });
  }
  return result.stmts ?? [];
};
