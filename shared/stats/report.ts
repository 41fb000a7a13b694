import { evaluateHealth, type HealthReport, type HealthThresholds } from '#shared/analysis';
import type { SqlAnalyzer } from '#shared/sql';
import { DEAD_TUPLE_TABLES_SQL, STATIO_SQL, UNUSED_INDEXES_SQL } from './catalog.ts';
import { type DatabaseSnapshot, readDatabaseSnapshot, readServerInfo } from './database.ts';
import { StatsError } from './errors.ts';
import {
  DEFAULT_FINDING_THRESHOLDS,
  explainGenericPlan,
  type Finding,
  type FindingThresholds,
  findBigSeqScans,
  findCounterFindings,
  isExplainableStatement,
} from './findings.ts';
import { rankSlowStatements, type SlowStatement } from './rank.ts';
import { buildHealthSample } from './sample.ts';
import { fullDelta, readStatementSnapshot } from './statements.ts';
import type { StatsTarget } from './targets.ts';

/** A one-shot health report of one database, from its cumulative statistics. */
export interface HealthReportData {
  target: string;
  database: string;
  serverVersionNum: number;
  takenAt: string;
  /** Statistics are cumulative since this time (pg_stat_database.stats_reset), null: since start. */
  statsSince: string | null;
  health: HealthReport;
  snapshot: DatabaseSnapshot;
  cacheHitRatios: { database: number | null; tables: number | null; indexes: number | null };
  /** Top statements by total time since pg_stat_statements was reset, with findings. */
  slowQueries: (SlowStatement & { shareOfTotalTime: number; findings: Finding[] })[];
  /** Why there are no slow queries: pg_stat_statements is missing (actionable message). */
  slowQueriesError: string | null;
  unusedIndexes: { schema: string; table: string; index: string; sizeBytes: number }[];
  deadTupleTables: {
    schema: string;
    table: string;
    liveTuples: number;
    deadTuples: number;
    deadTupleRatio: number;
    lastAutovacuum: string | null;
  }[];
}

export interface HealthReportOptions {
  thresholds: HealthThresholds;
  sql: SqlAnalyzer;
  timeoutMs: number;
  /** Slow statements listed (default 10). */
  topN?: number;
  /** Statements below this mean (ms) are not listed (default 0). */
  minMeanMs?: number;
  findings?: FindingThresholds;
  /** EXPLAIN the listed statements for big sequential scans (default true). */
  explain?: boolean;
  listLimit?: number;
  onProgress?: (step: string) => void;
}

const ratio = (hit: number, read: number): number | null =>
  hit + read > 0 ? hit / (hit + read) : null;

/**
 * Reads everything `dbopt report` prints: the health verdict (on cumulative figures: cache
 * hit ratio and mean statement time since the statistics were reset), the statements that
 * consumed the most time, unused indexes, and tables with dead tuples (bloat signal).
 * pg_stat_statements being absent is reported in `slowQueriesError`, not thrown.
 */
export const readHealthReport = async (
  target: StatsTarget,
  options: HealthReportOptions,
): Promise<HealthReportData> => {
  const progress = options.onProgress ?? (() => undefined);
  const limit = options.listLimit ?? 10;
  const findingThresholds = options.findings ?? DEFAULT_FINDING_THRESHOLDS;
  progress('reading pg_stat_activity, pg_stat_database, pg_locks, pg_stat_user_tables/indexes');
  const base = await target.readOnly(options.timeoutMs, async (q) => {
    const server = await readServerInfo(q);
    const snapshot = await readDatabaseSnapshot(q, { server });
    const statio = (await q.query(STATIO_SQL)).rows[0] ?? {};
    const unused = (
      await q.query<{
        schema_name: string;
        table_name: string;
        index_name: string;
        size_bytes: number;
      }>(UNUSED_INDEXES_SQL, [limit])
    ).rows;
    const dead = (
      await q.query<{
        schema_name: string;
        table_name: string;
        live_tuples: number;
        dead_tuples: number;
        last_autovacuum: string | null;
      }>(DEAD_TUPLE_TABLES_SQL, [limit])
    ).rows;
    return { server, snapshot, statio, unused, dead };
  });
  const { server, snapshot, statio } = base;
  progress('reading pg_stat_statements');
  let slowQueries: HealthReportData['slowQueries'] = [];
  let slowQueriesError: string | null = null;
  let meanQueryTimeMs: number | null = null;
  try {
    const statements = await target.readOnly(options.timeoutMs, (q) =>
      readStatementSnapshot(q, { target: target.name, serverVersionNum: server.serverVersionNum }),
    );
    const deltas = statements.entries.map(fullDelta);
    const top = deltas.filter((d) => d.entry.toplevel !== false);
    const calls = top.reduce((n, d) => n + d.calls, 0);
    const totalMs = top.reduce((n, d) => n + d.totalExecTimeMs, 0);
    meanQueryTimeMs = calls > 0 ? totalMs / calls : null;
    const ranked = rankSlowStatements(
      deltas,
      { topN: options.topN ?? 10, minMeanMs: options.minMeanMs ?? 0, minCalls: 1 },
      (text) => {
        try {
          const a = options.sql.analyze(text);
          return a.statementCount === 1 ? a.fingerprint : null;
        } catch {
          return null;
        }
      },
      (text) => isExplainableStatement(text, options.sql),
    );
    for (const [i, s] of ranked.entries()) {
      const findings = findCounterFindings(s, findingThresholds);
      if (options.explain !== false) {
        progress(`explaining statement ${i + 1} of ${ranked.length}`);
        try {
          findings.push(
            ...(await target.readOnly(options.timeoutMs, async (tx) =>
              findBigSeqScans(
                tx,
                await explainGenericPlan(tx, s.query, server.serverVersionNum, options.sql),
                findingThresholds,
              ),
            )),
          );
        } catch (err) {
          findings.push({
            kind: 'plan_unavailable',
            detail: `EXPLAIN of the generic plan failed: ${(err as Error).message}`,
          });
        }
      }
      slowQueries.push({
        ...s,
        shareOfTotalTime: totalMs > 0 ? s.totalExecTimeMs / totalMs : 0,
        findings,
      });
    }
  } catch (err) {
    if (!(err instanceof StatsError && err.code === 'PG_STAT_STATEMENTS_MISSING')) throw err;
    slowQueries = [];
    slowQueriesError = err.message;
  }
  const databaseHitRatio = ratio(snapshot.counters.blksHit, snapshot.counters.blksRead);
  const sample = buildHealthSample(target.name, snapshot, {
    baseline: true,
    reset: false,
    intervalSeconds: 0,
    rates: null,
    cacheHitRatio: databaseHitRatio,
    meanQueryTimeMs,
    statementsReset: false,
  });
  return {
    target: target.name,
    database: server.database,
    serverVersionNum: server.serverVersionNum,
    takenAt: snapshot.takenAt,
    statsSince: snapshot.statsResetAt,
    health: evaluateHealth(sample, options.thresholds),
    snapshot,
    cacheHitRatios: {
      database: databaseHitRatio,
      tables: ratio(Number(statio.heap_hit ?? 0), Number(statio.heap_read ?? 0)),
      indexes: ratio(Number(statio.idx_hit ?? 0), Number(statio.idx_read ?? 0)),
    },
    slowQueries,
    slowQueriesError,
    unusedIndexes: base.unused.map((r) => ({
      schema: r.schema_name,
      table: r.table_name,
      index: r.index_name,
      sizeBytes: Number(r.size_bytes),
    })),
    deadTupleTables: base.dead.map((r) => {
      const live = Number(r.live_tuples);
      const deadTuples = Number(r.dead_tuples);
      return {
        schema: r.schema_name,
        table: r.table_name,
        liveTuples: live,
        deadTuples,
        deadTupleRatio: live + deadTuples > 0 ? deadTuples / (live + deadTuples) : 0,
        lastAutovacuum: r.last_autovacuum,
      };
    }),
  };
};
