import { parseStatements } from '#shared/sql';
import { explainStatement, planIndexNames } from '../rewrites/explain.ts';
import { type IndexDdl, prepareIndexDdl, quoteIdent } from './ddl.ts';
import { ApplyError } from './errors.ts';
import { type MeanTimeBaseline, readMeanTimeBaselines } from './mean-times.ts';

/** A statement with its own driver-side time limit (a `pg` QueryConfig). */
export interface LongQuery {
  readonly text: string;
  /** ms; above the server's statement_timeout so the server's clean cancel comes first. */
  readonly query_timeout: number;
}

/** One session on a DIRECT connection (not RDS Proxy): session SETs and CONCURRENTLY need it. */
export interface ApplySession {
  query<R extends Record<string, unknown> = Record<string, unknown>>(
    sql: string | LongQuery,
    params?: unknown[],
  ): Promise<{ rows: R[] }>;
  release(err?: Error | boolean): void;
}

export interface ApplyDeps {
  /** Hands out a session; `db.pool()` of #shared/db on the database endpoint fits. */
  readonly connect: () => Promise<ApplySession>;
  /** Records 'applied', then 'verified' or 'rejected' (needed when `suggestionId` is given). */
  readonly suggestions?: {
    setSuggestionStatus(
      id: number,
      status: 'proposed' | 'applied' | 'verified' | 'rejected',
      outcome?: Record<string, unknown>,
    ): Promise<void>;
  };
  readonly logger?: { info(message: string, extra?: Record<string, unknown>): void };
}

export interface ApplyLimits {
  /** lock_timeout while building: give up rather than queue writers behind the build. */
  readonly lockTimeoutMs: number;
  /** Largest index allowed, checked against an estimate before and the real size after. */
  readonly maxIndexBytes: number;
  /** statement_timeout of the build. */
  readonly maxBuildMs: number;
}

/** A statement the index is meant to serve, with its parameter values when known. */
export interface ServedStatement {
  readonly sql: string;
  readonly params?: readonly unknown[];
  /** pg_stat_statements queryid, to record its mean time before the index. */
  readonly queryId?: string;
}

export interface ApplyRequest {
  readonly ddl: string;
  readonly statements: readonly ServedStatement[];
  readonly limits: ApplyLimits;
  readonly suggestionId?: number;
  /** The proposal's own size estimate, used when HypoPG is not installed. */
  readonly sizeBytes?: number;
  /** A statement counts as slower when its cost grows by more than this fraction. */
  readonly slowerTolerance?: number;
}

export interface StatementCheck {
  readonly sql: string;
  readonly costBefore: number;
  readonly costAfter: number;
  readonly usesIndex: boolean;
  readonly queryId?: string;
}

export interface ApplyOutcome {
  readonly status: 'verified' | 'rejected';
  readonly indexName: string;
  /** `"schema"."name"`, as DROP INDEX takes it. */
  readonly qualifiedName: string;
  readonly ddl: string;
  readonly reason: string;
  /** Estimated size before the build, and the real one after (when built). */
  readonly estimatedSizeBytes?: number;
  readonly sizeBytes?: number;
  readonly buildMs?: number;
  readonly statements: StatementCheck[];
  /** pg_stat_statements counters of the served statements at build time (for a later check). */
  readonly meanTimeBaselines?: MeanTimeBaseline[];
}

const SQL_TABLE_SCHEMA = `
SELECT /* dbopt */ n.nspname
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass($1)`;

const SQL_INDEX_STATE = `
SELECT /* dbopt */ i.indisvalid,
  pg_relation_size(i.indexrelid) AS size_bytes
FROM pg_index i
WHERE i.indexrelid = to_regclass($1)`;

const SQL_HAS_HYPOPG = `
SELECT /* dbopt */ 1
FROM pg_extension
WHERE extname = 'hypopg'`;

const SQL_HYPO_SIZE = `
SELECT /* dbopt */ hypopg_relation_size(h.indexrelid) AS size_bytes
FROM hypopg_create_index($1) h`;

const DEFAULT_SLOWER_TOLERANCE = 0.01;
const LONG_QUERY_GRACE_MS = 5_000;

/**
 * A build or drop may run up to `serverLimitMs` (its statement_timeout); the pool's default
 * client-side query_timeout is much shorter. Without this the driver gave up on a long build
 * while the server finished it, and the "failed" build's cleanup dropped the good index.
 */
const longQuery = (text: string, serverLimitMs: number): LongQuery => ({
  text,
  query_timeout: Math.trunc(serverLimitMs) + LONG_QUERY_GRACE_MS,
});
const EXPLAIN_TIMEOUT_MS = 10_000;

/**
 * Builds one index without blocking writes and keeps it only if it proves itself:
 *
 * 1. the DDL must be exactly one CREATE INDEX (parser); it is run CONCURRENTLY, named;
 * 2. its size is estimated first (HypoPG `hypopg_relation_size`, else the proposal's
 *    estimate) and a too-large index is refused before anything is built;
 * 3. the build runs with `lock_timeout` and `statement_timeout` on a direct session; if it
 *    fails, the invalid index it leaves behind is dropped (CONCURRENTLY) before the error is
 *    raised, so nothing is left over;
 * 4. afterwards: an invalid index is dropped; every served statement is EXPLAINed again — if
 *    none uses the index, or any got more expensive, it is dropped and 'rejected', else
 *    'verified'. The statements' pg_stat_statements mean times before the build are recorded
 *    so later runs can compare real times.
 *
 * Outcomes are recorded with `setSuggestionStatus` when `suggestionId` is given.
 *
 * @throws ApplyError APPLY_INVALID_DDL, APPLY_INVALID_STATEMENT, APPLY_INDEX_EXISTS, APPLY_LOCK_TIMEOUT,
 *   APPLY_BUILD_TIMEOUT, APPLY_BUILD_FAILED, APPLY_CLEANUP_FAILED.
 */
export const applyIndex = async (deps: ApplyDeps, request: ApplyRequest): Promise<ApplyOutcome> => {
  const ddl = prepareIndexDdl(request.ddl);
  request.statements.forEach(checkServedStatement);
  const session = await deps.connect();
  let broken: Error | undefined;
  try {
    const outcome = await applyOnSession(session, deps, request, ddl);
    if (request.suggestionId !== undefined) {
      await deps.suggestions?.setSuggestionStatus(request.suggestionId, outcome.status, {
        ...outcome,
        decidedAt: new Date().toISOString(),
      });
    }
    return outcome;
  } catch (err) {
    if (request.suggestionId !== undefined && err instanceof ApplyError) {
      // A lock or time limit is not a verdict on the index: keep it proposed, note the try.
      await deps.suggestions?.setSuggestionStatus(request.suggestionId, 'proposed', {
        lastAttempt: { at: new Date().toISOString(), code: err.code, message: err.message },
      });
    }
    if (!(err instanceof ApplyError)) broken = err instanceof Error ? err : new Error(String(err));
    throw err;
  } finally {
    try {
      await session.query('RESET lock_timeout; RESET statement_timeout');
      session.release(broken);
    } catch (resetErr) {
      session.release(resetErr instanceof Error ? resetErr : true);
    }
  }
};

const EXPLAINABLE = new Set(['SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/**
 * A served statement is EXPLAINed as text (without bound parameters it goes over the simple
 * protocol, which runs every statement of a string): it must be exactly one query or DML.
 */
const checkServedStatement = (s: ServedStatement): void => {
  let stmts: ReturnType<typeof parseStatements>;
  try {
    stmts = parseStatements(s.sql);
  } catch (err) {
    throw new ApplyError(
      'APPLY_INVALID_STATEMENT',
      `A served statement does not parse (${(err as Error).message}): ${s.sql.slice(0, 200)}`,
      { cause: err },
    );
  }
  const type = Object.keys((stmts[0]?.stmt ?? {}) as object)[0] ?? '';
  if (stmts.length !== 1 || !EXPLAINABLE.has(type)) {
    throw new ApplyError(
      'APPLY_INVALID_STATEMENT',
      `A served statement must be exactly one SELECT, INSERT, UPDATE, DELETE or MERGE; got ${stmts.length} statement(s) (${type || 'none'}): ${s.sql.slice(0, 200)}`,
    );
  }
};

const applyOnSession = async (
  session: ApplySession,
  deps: ApplyDeps,
  request: ApplyRequest,
  ddl: IndexDdl,
): Promise<ApplyOutcome> => {
  const { limits } = request;
  const schema = await tableSchema(session, ddl.table);
  const qualifiedIndex = `${quoteIdent(schema)}.${quoteIdent(ddl.indexName)}`;
  if ((await indexState(session, qualifiedIndex)) !== undefined) {
    throw new ApplyError(
      'APPLY_INDEX_EXISTS',
      `An index named ${qualifiedIndex} already exists; drop it or choose another name`,
    );
  }
  const base = { indexName: ddl.indexName, qualifiedName: qualifiedIndex, ddl: ddl.concurrentDdl };
  const estimatedSizeBytes = (await estimateSize(session, ddl)) ?? request.sizeBytes;
  if (estimatedSizeBytes !== undefined && estimatedSizeBytes > limits.maxIndexBytes) {
    return {
      ...base,
      status: 'rejected',
      reason: `estimated size ${estimatedSizeBytes} bytes exceeds APPLY_MAX_INDEX_BYTES (${limits.maxIndexBytes}); not built`,
      estimatedSizeBytes,
      statements: [],
    };
  }
  const before = await explainAll(session, request.statements);
  const meanTimeBaselines = await readMeanTimeBaselines(
    session,
    request.statements.flatMap((s) => (s.queryId ? [s.queryId] : [])),
  );

  const startedMs = Date.now();
  await build(session, ddl, qualifiedIndex, limits);
  const buildMs = Date.now() - startedMs;
  deps.logger?.info('index built', { index: qualifiedIndex, buildMs });

  const state = await indexState(session, qualifiedIndex);
  const built = {
    ...base,
    estimatedSizeBytes,
    sizeBytes: state?.sizeBytes,
    buildMs,
    meanTimeBaselines,
  };
  if (request.suggestionId !== undefined) {
    await deps.suggestions?.setSuggestionStatus(request.suggestionId, 'applied', built);
  }
  const reject = async (reason: string, statements: StatementCheck[]): Promise<ApplyOutcome> => {
    await dropIndex(session, qualifiedIndex, limits);
    return { ...built, status: 'rejected', reason: `${reason}; the index was dropped`, statements };
  };
  if (!state?.valid) return reject('the build left an invalid index (indisvalid = false)', []);
  if (state.sizeBytes > limits.maxIndexBytes) {
    return reject(`its size ${state.sizeBytes} bytes exceeds APPLY_MAX_INDEX_BYTES`, []);
  }

  const after = await explainAll(session, request.statements);
  const tolerance = request.slowerTolerance ?? DEFAULT_SLOWER_TOLERANCE;
  const checks: StatementCheck[] = request.statements.map((s, i) => ({
    sql: s.sql,
    costBefore: before[i]?.totalCost ?? Number.NaN,
    costAfter: after[i]?.totalCost ?? Number.NaN,
    usesIndex: after[i] ? planIndexNames(after[i].plan).has(ddl.indexName) : false,
    ...(s.queryId ? { queryId: s.queryId } : {}),
  }));
  const slower = checks.filter((c) => c.costAfter > c.costBefore * (1 + tolerance));
  if (slower.length > 0) {
    return reject(`it makes ${slower.length} served statement(s) more expensive`, checks);
  }
  if (!checks.some((c) => c.usesIndex)) {
    return reject('no served statement uses it', checks);
  }
  // Used but no cheaper: a duplicate of an existing index wins plan ties without helping.
  const improved = checks.filter(
    (c) => c.usesIndex && c.costAfter < c.costBefore * (1 - tolerance),
  );
  if (improved.length === 0) {
    return reject(
      'the statements that use it are no cheaper with it (an equivalent index exists?)',
      checks,
    );
  }
  return {
    ...built,
    status: 'verified',
    reason: `valid, makes ${improved.length} of ${checks.length} served statement(s) cheaper, none more expensive`,
    statements: checks,
  };
};

const tableSchema = async (session: ApplySession, table: string): Promise<string> => {
  const { rows } = await session.query<{ nspname: string }>(SQL_TABLE_SCHEMA, [table]);
  const schema = rows[0]?.nspname;
  if (!schema) {
    throw new ApplyError('APPLY_INVALID_DDL', `Table ${table} does not exist (check search_path)`);
  }
  return schema;
};

const indexState = async (
  session: ApplySession,
  qualifiedIndex: string,
): Promise<{ valid: boolean; sizeBytes: number } | undefined> => {
  const { rows } = await session.query<{ indisvalid: boolean; size_bytes: string }>(
    SQL_INDEX_STATE,
    [qualifiedIndex],
  );
  const row = rows[0];
  return row ? { valid: row.indisvalid, sizeBytes: Number(row.size_bytes) } : undefined;
};

/** HypoPG's estimate, in a transaction that is rolled back (hypothetical indexes vanish). */
const estimateSize = async (session: ApplySession, ddl: IndexDdl): Promise<number | undefined> => {
  const { rows } = await session.query(SQL_HAS_HYPOPG);
  if (rows.length === 0) return undefined;
  await session.query('BEGIN');
  try {
    const result = await session.query<{ size_bytes: string }>(SQL_HYPO_SIZE, [ddl.plainDdl]);
    return Number(result.rows[0]?.size_bytes);
  } catch {
    return undefined; // an index kind HypoPG cannot simulate: fall back to the proposal's size
  } finally {
    await session
      .query('SELECT /* dbopt */ hypopg_reset(); ROLLBACK')
      .catch(() => session.query('ROLLBACK'));
  }
};

const explainAll = async (session: ApplySession, statements: readonly ServedStatement[]) => {
  await session.query(`BEGIN READ ONLY; SET LOCAL statement_timeout = ${EXPLAIN_TIMEOUT_MS}`);
  try {
    const plans = [];
    for (const s of statements) {
      const paramCount = maxParam(s.sql);
      plans.push(await explainStatement(session, s.sql, paramCount, s.params));
    }
    await session.query('COMMIT');
    return plans;
  } catch (err) {
    await session.query('ROLLBACK');
    throw err;
  }
};

const maxParam = (sql: string): number => {
  let max = 0;
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      for (const v of value) visit(v);
    } else if (value && typeof value === 'object') {
      for (const [key, child] of Object.entries(value)) {
        if (key === 'ParamRef')
          max = Math.max(max, Number((child as { number?: number }).number ?? 0));
        visit(child);
      }
    }
  };
  visit(parseStatements(sql));
  return max;
};

const build = async (
  session: ApplySession,
  ddl: IndexDdl,
  qualifiedIndex: string,
  limits: ApplyLimits,
): Promise<void> => {
  await session.query(
    `SET lock_timeout = ${Math.trunc(limits.lockTimeoutMs)}; SET statement_timeout = ${Math.trunc(limits.maxBuildMs)}`,
  );
  try {
    await session.query(longQuery(ddl.concurrentDdl, limits.maxBuildMs));
  } catch (err) {
    const sqlState = (err as { code?: string }).code;
    const cleanup = await cleanUpAfterFailure(session, qualifiedIndex, limits);
    const left = cleanup ? ` ${cleanup}` : ' Nothing was left behind.';
    if (sqlState === '55P03') {
      throw new ApplyError(
        'APPLY_LOCK_TIMEOUT',
        `CREATE INDEX CONCURRENTLY waited longer than lock_timeout (${limits.lockTimeoutMs} ms) for another session's lock on ${ddl.table}; retry when long transactions on it have finished, or raise APPLY_LOCK_TIMEOUT_MS.${left}`,
        { cause: err, details: { sqlState } },
      );
    }
    if (sqlState === '57014') {
      throw new ApplyError(
        'APPLY_BUILD_TIMEOUT',
        `Building ${qualifiedIndex} took longer than APPLY_MAX_BUILD_MS (${limits.maxBuildMs} ms).${left}`,
        { cause: err, details: { sqlState } },
      );
    }
    throw new ApplyError(
      'APPLY_BUILD_FAILED',
      `Building ${qualifiedIndex} failed: ${(err as Error).message}.${left}`,
      { cause: err, details: { sqlState } },
    );
  } finally {
    await session.query('RESET lock_timeout; RESET statement_timeout');
  }
};

/**
 * A failed CREATE INDEX CONCURRENTLY may leave an invalid index that is still maintained on
 * every write. Drop it, waiting up to the build limit for the locks (the blocker that made
 * the build fail may still be there). Returns a note when it could not be dropped.
 */
const cleanUpAfterFailure = async (
  session: ApplySession,
  qualifiedIndex: string,
  limits: ApplyLimits,
): Promise<string | undefined> => {
  if ((await indexState(session, qualifiedIndex)) === undefined) return undefined;
  try {
    await dropIndex(session, qualifiedIndex, limits);
    return 'The invalid index it left behind was dropped.';
  } catch (err) {
    throw new ApplyError(
      'APPLY_CLEANUP_FAILED',
      `The build failed and left the invalid index ${qualifiedIndex}, which could not be dropped (${(err as Error).message}); run DROP INDEX CONCURRENTLY ${qualifiedIndex}; by hand`,
      { cause: err },
    );
  }
};

/** DROP INDEX CONCURRENTLY on a direct session, waiting for locks up to the build limit. */
export const dropIndex = async (
  session: ApplySession,
  qualifiedIndex: string,
  limits: ApplyLimits,
): Promise<void> => {
  const waitMs = Math.trunc(Math.max(limits.maxBuildMs, limits.lockTimeoutMs));
  await session.query(`SET lock_timeout = ${waitMs}; SET statement_timeout = ${waitMs}`);
  await session.query(longQuery(`DROP INDEX CONCURRENTLY IF EXISTS ${qualifiedIndex}`, waitMs));
};
