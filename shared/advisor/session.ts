import { randomBytes } from 'node:crypto';
/**
 * The advisor's database session: one dedicated connection to the DB endpoint (HypoPG
 * indexes and prepared statements live in the backend, so this must never go through RDS
 * Proxy). Every EXPLAIN runs `EXECUTE` of a prepared statement with real example values under
 * `plan_cache_mode = force_custom_plan`, inside a short transaction with `SET LOCAL
 * statement_timeout`; hypothetical indexes are created in that same transaction and reset
 * afterwards. Candidates HypoPG cannot simulate (GIN, or no HypoPG) are built for real inside
 * a transaction that is always rolled back.
 *
 * https://github.com/HypoPG/hypopg · https://www.postgresql.org/docs/15/runtime-config-query.html#GUC-PLAN-CACHE-MODE
 */
import type pg from 'pg';
import { type Database, mapDbError, type Queryable } from '#shared/db';
import { type Candidate, candidateBody } from './candidates.ts';
import { AdvisorError } from './errors.ts';
import { type PlanSummary, summarizePlan } from './plan.ts';
import { toSqlLiteral } from './sql-text.ts';

export interface PreparedStatementRef {
  /** Prepared statement name in this session. */
  name: string;
  /** `('v1', 'v2')` per parameter set; `''` for a statement without parameters. */
  executeArgs: string[];
  /** The parameter sets kept (those with the statement's parameter count). */
  paramSets: unknown[][];
}

/** One EXPLAIN to run: statement index and parameter-set index. */
export interface PlanItem {
  statement: number;
  paramSet: number;
}

export interface CandidateEvaluation {
  /** Plan name of the index (hypothetical `<oid>btree_…` or the built name). */
  indexName: string;
  sizeBytes: number;
  evaluatedWith: 'hypopg' | 'rollback-build';
  plans: Map<string, PlanSummary>;
  error?: string;
}

export const itemKey = (item: PlanItem): string => `${item.statement}:${item.paramSet}`;

const EXPLAIN_CHUNK = 40;

const TX_SETTINGS = (timeoutMs: number): string =>
  `SET /* dbopt */ LOCAL statement_timeout = ${Math.trunc(timeoutMs)}; SET /* dbopt */ LOCAL lock_timeout = 2000; SET /* dbopt */ LOCAL plan_cache_mode = force_custom_plan`;

const HYPOPG_CREATE_SQL = `SELECT /* dbopt */ indexrelid::int8 AS oid, indexname AS name, hypopg_relation_size(indexrelid)::int8 AS size_bytes
FROM hypopg_create_index($1)`;

const HYPOPG_DROP_SQL = 'SELECT /* dbopt */ hypopg_drop_index($1::oid)';
const HYPOPG_RESET_SQL = 'SELECT /* dbopt */ hypopg_reset()';
const RELATION_SIZE_SQL =
  'SELECT /* dbopt */ pg_relation_size(to_regclass($1))::int8 AS size_bytes';

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * A connection held for one advisor run. `close()` destroys it, so no prepared statement or
 * hypothetical index can outlive the run in a pooled session.
 */
export class AdvisorSession {
  private statementsPrepared = 0;
  private readonly preparedNames: string[] = [];
  /** Per session, so two runs sharing one backend (embedded PGlite) never reuse a name. */
  private readonly namePrefix = `dbopt_advisor_${randomBytes(4).toString('hex')}`;

  private statementName(n: number): string {
    return `${this.namePrefix}_${n}`;
  }

  private constructor(
    private readonly client: pg.PoolClient,
    readonly hypopg: boolean,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Checks a connection out of `db` and finds out whether HypoPG can be used (creating the
   * extension when allowed and possible). `warnings` receives why it cannot.
   */
  static async open(
    db: Database,
    options: { statementTimeoutMs: number; useHypopg: 'auto' | 'never' },
    warnings: string[],
  ): Promise<AdvisorSession> {
    let client: pg.PoolClient;
    try {
      client = await db.pool().connect();
    } catch (err) {
      throw mapDbError(err);
    }
    client.on('error', () => undefined);
    let hypopg = false;
    if (options.useHypopg === 'auto') {
      try {
        const installed = await client.query(
          "SELECT /* dbopt */ 1 FROM pg_extension WHERE extname = 'hypopg'",
        );
        if (installed.rowCount === 0)
          await client.query('CREATE /* dbopt */ EXTENSION IF NOT EXISTS hypopg');
        hypopg = true;
      } catch (err) {
        warnings.push(
          `HypoPG is not available (${errorText(err)}); candidates were built inside rolled-back transactions instead (this locks each table against writes while it builds). Run CREATE EXTENSION hypopg on the target database for cheaper what-if analysis`,
        );
      }
    }
    return new AdvisorSession(client, hypopg, options.statementTimeoutMs);
  }

  /**
   * Client-side limit for one round trip: the server-side statement_timeout plus a grace, so
   * the server's own cancel (a clean error, connection kept) normally fires first; the pool's
   * default query_timeout may be shorter than a candidate build.
   */
  private clientTimeoutMs(): number {
    return this.timeoutMs + 5_000;
  }

  /**
   * Deallocates this run's prepared statements, then destroys the connection (hypothetical
   * indexes go with it). On a real server the connection's end would drop the statements
   * anyway; embedded PGlite is one backend shared by every connection, where they would
   * otherwise outlive the run and collide with the next run's names.
   */
  close(): void {
    const destroy = (): void => this.client.release(true);
    if (this.preparedNames.length === 0) {
      destroy();
      return;
    }
    const deallocate = this.preparedNames.map((name) => `DEALLOCATE /* dbopt */ ${name}`);
    this.client.query(deallocate.join('; ')).then(destroy, destroy);
  }

  /** Runs `work` in a read-only, rolled-back transaction with the advisor's time limit. */
  readOnly<T>(work: (q: Queryable) => Promise<T>): Promise<T> {
    const q: Queryable = {
      query: async <R extends Record<string, unknown>>(sql: string, params?: unknown[]) => {
        const result = await this.client.query(sql, params);
        return { rows: result.rows as R[] };
      },
    };
    return this.inTransaction(false, () => work(q)).catch((err: unknown) => {
      throw mapDbError(err);
    });
  }

  /** PREPAREs one statement; returns its reference or throws the mapped error. */
  async prepare(sql: string, paramSets: readonly unknown[][]): Promise<PreparedStatementRef> {
    this.statementsPrepared += 1;
    const name = this.statementName(this.statementsPrepared);
    const text = `PREPARE /* dbopt */ ${name} AS ${sql}`;
    try {
      await this.client.query(text);
      this.preparedNames.push(name);
    } catch (err) {
      throw mapDbError(err);
    }
    const types = await this.client.query<{ count: number }>(
      'SELECT /* dbopt */ cardinality(parameter_types) AS count FROM pg_prepared_statements WHERE name = $1',
      [name],
    );
    const count = Number(types.rows[0]?.count ?? 0);
    const usable = paramSets.filter((set) => set.length === count);
    if (count > 0 && usable.length === 0) {
      throw new AdvisorError(
        'WORKLOAD_INVALID',
        `The statement has ${count} parameter(s) but no example parameter set of that length; give params values (or let workloadFromStatStatements sample them)`,
      );
    }
    const executeArgs = (count === 0 ? [[]] : usable).map((set) =>
      set.length === 0 ? '' : `(${set.map(toSqlLiteral).join(', ')})`,
    );
    return { name, executeArgs, paramSets: count === 0 ? [[]] : usable };
  }

  private async inTransaction<T>(write: boolean, work: () => Promise<T>): Promise<T> {
    await this.client.query(
      `BEGIN /* dbopt */${write ? '' : ' READ ONLY'}; ${TX_SETTINGS(this.timeoutMs)}`,
    );
    try {
      return await work();
    } finally {
      // Always rolled back: nothing the advisor does may persist. hypopg_reset() afterwards
      // because hypothetical indexes are not transactional.
      await this.client.query('ROLLBACK /* dbopt */');
      if (this.hypopg) await this.client.query(HYPOPG_RESET_SQL);
    }
  }

  private async explainAll(
    statements: readonly PreparedStatementRef[],
    items: readonly PlanItem[],
    indexColumns: (name: string) => readonly string[] | undefined,
  ): Promise<Map<string, PlanSummary>> {
    const out = new Map<string, PlanSummary>();
    for (let start = 0; start < items.length; start += EXPLAIN_CHUNK) {
      const chunk = items.slice(start, start + EXPLAIN_CHUNK);
      const text = chunk
        .map((item) => {
          const ref = statements[item.statement] as PreparedStatementRef;
          return `EXPLAIN /* dbopt */ (FORMAT JSON) EXECUTE ${ref.name}${ref.executeArgs[item.paramSet] ?? ''}`;
        })
        .join(';\n');
      const result = (await this.client.query({
        text,
        query_timeout: this.clientTimeoutMs(),
      } as pg.QueryConfig)) as unknown as pg.QueryResult | pg.QueryResult[];
      const results = Array.isArray(result) ? result : [result];
      chunk.forEach((item, n) => {
        const row = results[n]?.rows[0] as Record<string, unknown> | undefined;
        out.set(itemKey(item), summarizePlan(row?.['QUERY PLAN'], indexColumns));
      });
    }
    return out;
  }

  /**
   * Plans every item without hypothetical indexes, one savepoint each, so a parameter set
   * the statement rejects (bad literal, missing table) is reported instead of aborting all.
   */
  async baseline(
    statements: readonly PreparedStatementRef[],
    items: readonly PlanItem[],
  ): Promise<Map<string, PlanSummary | Error>> {
    const out = new Map<string, PlanSummary | Error>();
    await this.inTransaction(false, async () => {
      for (const item of items) {
        await this.client.query('SAVEPOINT /* dbopt */ dbopt_item');
        try {
          const plans = await this.explainAll(statements, [item], () => undefined);
          out.set(itemKey(item), plans.get(itemKey(item)) as PlanSummary);
          await this.client.query('RELEASE /* dbopt */ SAVEPOINT dbopt_item');
        } catch (err) {
          await this.client.query('ROLLBACK /* dbopt */ TO SAVEPOINT dbopt_item');
          out.set(itemKey(item), mapDbError(err));
        }
      }
    });
    return out;
  }

  /**
   * Evaluates candidates one at a time (each alone on top of the existing indexes): the plans
   * of `itemsOf(candidate)` with that one index in place.
   */
  async evaluateEach(
    statements: readonly PreparedStatementRef[],
    candidates: readonly Candidate[],
    itemsOf: (c: Candidate) => readonly PlanItem[],
    onEvaluated?: (done: number) => void,
  ): Promise<Map<string, CandidateEvaluation>> {
    const out = new Map<string, CandidateEvaluation>();
    const hypo = candidates.filter((c) => this.canSimulate(c));
    const built = candidates.filter((c) => !this.canSimulate(c));
    let done = 0;
    const BATCH = 12;
    for (let start = 0; start < hypo.length; start += BATCH) {
      const batch = hypo.slice(start, start + BATCH);
      await this.inTransaction(false, async () => {
        for (const c of batch) {
          out.set(c.id, await this.evaluateHypothetical(statements, c, itemsOf(c)));
          done += 1;
          onEvaluated?.(done);
        }
      });
    }
    for (const c of built) {
      out.set(c.id, await this.evaluateBuilt(statements, c, itemsOf(c)));
      done += 1;
      onEvaluated?.(done);
    }
    return out;
  }

  /** HypoPG simulates btree (and brin) indexes, not GIN/GiST. */
  canSimulate(c: Candidate): boolean {
    return this.hypopg && (c.method === 'btree' || c.method === 'brin');
  }

  private async evaluateHypothetical(
    statements: readonly PreparedStatementRef[],
    c: Candidate,
    items: readonly PlanItem[],
  ): Promise<CandidateEvaluation> {
    await this.client.query('SAVEPOINT /* dbopt */ dbopt_candidate');
    let oid: string | undefined;
    try {
      const created = await this.client.query<{ oid: string; name: string; size_bytes: string }>(
        HYPOPG_CREATE_SQL,
        [`CREATE INDEX ON ${candidateBody(c)}`],
      );
      const row = created.rows[0];
      if (!row) throw new Error('hypopg_create_index returned no row');
      oid = row.oid;
      const columns = candidateColumns(c);
      const plans = await this.explainAll(statements, items, (n) =>
        n === row.name ? columns : undefined,
      );
      await this.client.query(HYPOPG_DROP_SQL, [oid]);
      await this.client.query('RELEASE /* dbopt */ SAVEPOINT dbopt_candidate');
      return {
        indexName: row.name,
        sizeBytes: Number(row.size_bytes),
        evaluatedWith: 'hypopg',
        plans,
      };
    } catch (err) {
      await this.client.query('ROLLBACK /* dbopt */ TO SAVEPOINT dbopt_candidate');
      if (oid !== undefined) await this.client.query(HYPOPG_DROP_SQL, [oid]);
      return {
        indexName: '',
        sizeBytes: 0,
        evaluatedWith: 'hypopg',
        plans: new Map(),
        error: errorText(err),
      };
    }
  }

  private async evaluateBuilt(
    statements: readonly PreparedStatementRef[],
    c: Candidate,
    items: readonly PlanItem[],
  ): Promise<CandidateEvaluation> {
    const name = 'dbopt_advisor_candidate';
    try {
      return await this.inTransaction(true, async () => {
        await this.client.query({
          text: `CREATE /* dbopt */ INDEX ${name} ON ${candidateBody(c)}`,
          query_timeout: this.clientTimeoutMs(),
        } as pg.QueryConfig);
        const size = await this.client.query<{ size_bytes: string }>(RELATION_SIZE_SQL, [
          `${c.table.split('.')[0]}.${name}`,
        ]);
        const columns = candidateColumns(c);
        const plans = await this.explainAll(statements, items, (n) =>
          n === name ? columns : undefined,
        );
        return {
          indexName: name,
          sizeBytes: Number(size.rows[0]?.size_bytes ?? 0),
          evaluatedWith: 'rollback-build' as const,
          plans,
        };
      });
    } catch (err) {
      return {
        indexName: '',
        sizeBytes: 0,
        evaluatedWith: 'rollback-build',
        plans: new Map(),
        error: errorText(mapDbError(err)),
      };
    }
  }

  /**
   * Plans `items` with every candidate of `set` in place at once (hypothetical where possible,
   * the rest built in the same rolled-back transaction). Returns the plans and, per candidate
   * id, its plan name.
   */
  async evaluateSet(
    statements: readonly PreparedStatementRef[],
    set: readonly Candidate[],
    items: readonly PlanItem[],
  ): Promise<{ plans: Map<string, PlanSummary>; names: Map<string, string> }> {
    const needsBuild = set.some((c) => !this.canSimulate(c));
    const names = new Map<string, string>();
    const columnsByName = new Map<string, readonly string[]>();
    const plans = await this.inTransaction(needsBuild, async () => {
      let n = 0;
      for (const c of set) {
        if (this.canSimulate(c)) {
          const created = await this.client.query<{ name: string }>(HYPOPG_CREATE_SQL, [
            `CREATE INDEX ON ${candidateBody(c)}`,
          ]);
          const name = created.rows[0]?.name as string;
          names.set(c.id, name);
          columnsByName.set(name, candidateColumns(c));
        } else {
          n += 1;
          const name = `dbopt_advisor_final_${n}`;
          await this.client.query({
            text: `CREATE /* dbopt */ INDEX ${name} ON ${candidateBody(c)}`,
            query_timeout: this.clientTimeoutMs(),
          } as pg.QueryConfig);
          names.set(c.id, name);
          columnsByName.set(name, candidateColumns(c));
        }
      }
      return this.explainAll(statements, items, (name) => columnsByName.get(name));
    });
    return { plans, names };
  }
}

/** Every column an index stores or tests (keys, INCLUDE, predicate). */
export const candidateColumns = (c: Candidate): string[] => [
  ...new Set([...c.keys.flatMap((k) => k.columns), ...c.include, ...c.whereColumns]),
];
