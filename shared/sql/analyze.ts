import { fingerprintSync, normalizeSync } from 'libpg-query';
import { LRUCache } from 'lru-cache';
import { ValidationError } from '#shared/errors';
import { collectReferences, type References } from './collect-references.ts';
import { parseStatements } from './parser.ts';
import { classifyStatement } from './statement-kind.ts';
import type {
  SqlAnalysis,
  SqlAnalyzer,
  SqlAnalyzerOptions,
  SqlAnalyzerStats,
  StatementKind,
  UncacheableReason,
} from './types.ts';

/**
 * Creates an analyzer whose results are cached per exact SQL text in a bounded LRU that
 * belongs to this instance (create one per cold start and pass it in). A cache hit is one
 * LRU lookup; a miss parses with the WASM parser, so `initSqlParser()` must have resolved.
 * Syntax errors are not cached: they are cheap to reproduce and each caller gets a fresh
 * error.
 *
 * @example
 * await initSqlParser();
 * const sql = createSqlAnalyzer({ cacheEntries: 5000 });
 * const analysis = sql.analyze('SELECT * FROM users WHERE id = $1');
 * assertSingleStatement(analysis);
 * analysis.tablesRead; // ['users']
 */
export const createSqlAnalyzer = (options: SqlAnalyzerOptions): SqlAnalyzer => {
  const maxEntries = options.cacheEntries;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw new RangeError(`cacheEntries must be a positive integer; got ${maxEntries}`);
  }
  const cache = new LRUCache<string, SqlAnalysis>({ max: maxEntries });
  let hits = 0;
  let misses = 0;

  const analyze = (sql: string): SqlAnalysis => {
    const cached = cache.get(sql);
    if (cached !== undefined) {
      hits += 1;
      return cached;
    }
    misses += 1;
    const analysis = analyzeUncached(sql);
    cache.set(sql, analysis);
    return analysis;
  };

  const stats = (): SqlAnalyzerStats =>
    Object.freeze({ entries: cache.size, maxEntries, hits, misses });

  return Object.freeze({ analyze, stats });
};

/**
 * Enforces "exactly one statement", which the query API and EXPLAIN require.
 *
 * @throws ValidationError `EMPTY_STATEMENT` for empty or comment-only text,
 *   `MULTIPLE_STATEMENTS` for more than one statement.
 */
export const assertSingleStatement = (analysis: SqlAnalysis): void => {
  const count = analysis.statementCount;
  if (count === 0) {
    throw new ValidationError(
      'EMPTY_STATEMENT',
      'Send exactly one SQL statement; the text is empty or contains only comments',
      { details: { statementCount: 0 } },
    );
  }
  if (count > 1) {
    throw new ValidationError(
      'MULTIPLE_STATEMENTS',
      `Send exactly one SQL statement; found ${count}`,
      { details: { statementCount: count } },
    );
  }
};

// libpg-query's fingerprint and normalize recurse over the tree inside WASM. Past roughly
// 650 nested subqueries or 900 nested NOTs they overflow the JavaScript stack, and every
// such overflow leaks about 1 MB of WASM memory that is never returned (libpg-query cannot
// free the aborted call's memory context); about a thousand of them exhaust the module.
// Refuse trees deeper than this, well below those limits and far above real queries.
const MAX_NODE_DEPTH = 300;

const analyzeUncached = (sql: string): SqlAnalysis => {
  const statements = parseStatements(sql).map((raw) => raw.stmt);
  const kinds = statements.map(classifyStatement);
  const refs = collectReferences(statements);
  if (refs.maxNodeDepth > MAX_NODE_DEPTH) {
    throw new ValidationError(
      'SQL_TOO_COMPLEX',
      `The statement nests too deeply to analyse (depth ${refs.maxNodeDepth}, limit ${MAX_NODE_DEPTH}); reduce nested subqueries, parentheses or operator chains`,
      { details: { depth: refs.maxNodeDepth, maxDepth: MAX_NODE_DEPTH } },
    );
  }
  const readOnly =
    kinds.length > 0 &&
    kinds.every((kind) => kind === 'select') &&
    refs.tablesWritten.size === 0 &&
    !refs.hasLockingClause;
  const kind: StatementKind = kinds[0] ?? 'other';
  const tablesRead = Object.freeze([...refs.tablesRead].sort());
  const reason = findUncacheableReason(statements.length, kind, readOnly, refs);
  const hasStatements = statements.length > 0;
  return Object.freeze({
    statementCount: statements.length,
    kind,
    readOnly,
    hasLockingClause: refs.hasLockingClause,
    tablesRead,
    tablesWritten: Object.freeze([...refs.tablesWritten].sort()),
    functions: Object.freeze([...refs.functions].sort()),
    cacheable: reason === undefined,
    ...(reason === undefined ? {} : { uncacheableReason: reason }),
    fingerprint: hasStatements ? fingerprintSync(sql) : '',
    normalized: hasStatements ? normalizeSync(sql) : '',
    maxParamIndex: refs.maxParamIndex,
  });
};

const findUncacheableReason = (
  statementCount: number,
  kind: StatementKind,
  readOnly: boolean,
  refs: References,
): UncacheableReason | undefined => {
  if (statementCount !== 1) return 'not-single-statement';
  if (!readOnly) {
    // A SELECT that only misses read-only status because of FOR UPDATE/SHARE says so.
    const onlyLocks = kind === 'select' && refs.tablesWritten.size === 0;
    return onlyLocks && refs.hasLockingClause ? 'locking-clause' : 'not-read-only';
  }
  if (refs.readsTempTable) return 'temp-table';
  if (refs.readsSystemCatalog) return 'system-catalog';
  if (refs.callsVolatileFunction) return 'volatile-function';
  if (refs.callsUnknownFunction) return 'unknown-function';
  if (refs.tablesRead.size === 0) return 'no-tables';
  return undefined;
};
