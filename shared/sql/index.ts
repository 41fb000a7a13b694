/**
 * SQL understanding for every capability, on PostgreSQL's own parser (libpg-query, WASM):
 * statement kind, read/write tables, functions, cacheability, fingerprint and parameters.
 * The only module-level state is the memoised WASM load; each analyzer owns its LRU cache.
 */

/** Raw lexer tokens with byte offsets (the rewrite advisor splices statement text by token). */
export { scanSync as scanSqlTokens } from 'libpg-query';
export { assertSingleStatement, createSqlAnalyzer } from './analyze.ts';
export {
  type AstObject,
  asList,
  asObject,
  integerConst,
  nodeOf,
  nodeType,
  stringValues,
  structuralKey,
  walkNodes,
} from './ast.ts';
export { initSqlParser, parseStatements } from './parser.ts';
export type {
  SqlAnalysis,
  SqlAnalyzer,
  SqlAnalyzerOptions,
  SqlAnalyzerStats,
  StatementKind,
  UncacheableReason,
} from './types.ts';
