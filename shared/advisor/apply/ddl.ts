import { parseStatements, scanSqlTokens } from '#shared/sql';
import { ApplyError } from './errors.ts';

/** A CREATE INDEX, checked and prepared for a non-blocking build. */
export interface IndexDdl {
  /** The statement with CONCURRENTLY and an explicit name. */
  readonly concurrentDdl: string;
  /** The same without CONCURRENTLY (what HypoPG accepts for a size estimate). */
  readonly plainDdl: string;
  readonly indexName: string;
  /** The table as written (possibly schema-qualified). */
  readonly table: string;
  readonly schemaName?: string;
}

const MAX_IDENTIFIER_BYTES = 63;

/**
 * Accepts exactly one CREATE INDEX (on the real parser) and returns it with CONCURRENTLY
 * (so writes continue during the build) and an explicit index name (so the result can be
 * checked and, if needed, dropped). Anything else is refused.
 */
export const prepareIndexDdl = (ddl: string): IndexDdl => {
  let stmts: ReturnType<typeof parseStatements>;
  try {
    stmts = parseStatements(ddl);
  } catch (err) {
    throw new ApplyError('APPLY_INVALID_DDL', `The DDL does not parse: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const index = (stmts[0]?.stmt as { IndexStmt?: IndexStmt } | undefined)?.IndexStmt;
  if (stmts.length !== 1 || !index) {
    throw new ApplyError(
      'APPLY_INVALID_DDL',
      'Expected exactly one CREATE INDEX statement (nothing else is applied automatically)',
    );
  }
  const relation = index.relation ?? {};
  const table = relation.schemaname
    ? `${relation.schemaname}.${relation.relname}`
    : String(relation.relname);
  const tokens = scanSqlTokens(ddl).tokens;
  const bytes = Buffer.from(ddl, 'utf8');
  const at = (i: number) => tokens[i]?.text.toUpperCase();
  const indexKeyword = tokens.findIndex((t) => t.text.toUpperCase() === 'INDEX');
  const onKeyword = tokens.findIndex((t, i) => i > indexKeyword && t.text.toUpperCase() === 'ON');
  if (indexKeyword < 0 || onKeyword < 0) {
    throw new ApplyError('APPLY_INVALID_DDL', 'Could not find INDEX … ON in the statement');
  }
  const name = index.idxname ?? generatedName(String(relation.relname), index);
  const end = tokens.at(-1)?.text === ';' ? (tokens.at(-1)?.start ?? bytes.length) : bytes.length;
  const text = (from: number, to: number) => bytes.subarray(from, to).toString('utf8');
  const afterIndex = tokens[indexKeyword]?.end ?? 0;
  const concurrently =
    at(indexKeyword + 1) === 'CONCURRENTLY' ? tokens[indexKeyword + 1] : undefined;
  const head = text(0, afterIndex);
  const middle = text(concurrently ? concurrently.end : afterIndex, tokens[onKeyword]?.start ?? 0);
  const tail = text(tokens[onKeyword]?.start ?? 0, end).trimEnd();
  const named = index.idxname ? middle : `${middle.trimEnd()} ${quoteIdent(name)} `;
  return {
    concurrentDdl: `${head} CONCURRENTLY${named.startsWith(' ') ? '' : ' '}${named}${tail}`,
    plainDdl: `${head}${named.startsWith(' ') ? '' : ' '}${named}${tail}`,
    indexName: name,
    table,
    schemaName: relation.schemaname,
  };
};

interface IndexStmt {
  idxname?: string;
  relation?: { relname?: string; schemaname?: string };
  indexParams?: Array<{ IndexElem?: { name?: string } }>;
}

/** `dbopt_<table>_<columns>_idx`, cut to PostgreSQL's 63-byte identifier limit. */
const generatedName = (table: string, index: IndexStmt): string => {
  const columns = (index.indexParams ?? []).map((p) => p.IndexElem?.name ?? 'expr');
  const base = `dbopt_${table}_${columns.join('_')}`;
  const suffix = '_idx';
  return `${Buffer.from(base, 'utf8')
    .subarray(0, MAX_IDENTIFIER_BYTES - suffix.length)
    .toString('utf8')
    .replace(/\uFFFD+$/, '')}${suffix}`;
};

export const quoteIdent = (name: string): string => `"${name.replaceAll('"', '""')}"`;
