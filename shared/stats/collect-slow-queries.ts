import { type MetricsSink, MetricUnit } from '#shared/metrics';
import type { SqlAnalyzer } from '#shared/sql';
import type { StatsLogger, StatsRepository } from './collect-metrics.ts';
import { readServerInfo } from './database.ts';
import { isTargetUnreachable, StatsError } from './errors.ts';
import {
  explainGenericPlan,
  type Finding,
  findBigSeqScans,
  findCounterFindings,
  isExplainableStatement,
} from './findings.ts';
import { type SlowQueryMessage, toSlowQueryMessage } from './message.ts';
import { type QueueSendFailure, type SqsSender, sendSlowQueryMessages } from './queue.ts';
import { rankSlowStatements, rankSlowStatementsFetchingTexts, type SlowStatement } from './rank.ts';
import type { StatsSettings } from './settings.ts';
import {
  diffStatementStats,
  parseStoredStatementSnapshot,
  readStatementSnapshot,
  readStatementTexts,
  type StatementDelta,
  type StatementDiff,
  type StatementSnapshot,
  type StoredStatementSnapshot,
  toStoredStatementSnapshot,
} from './statements.ts';
import type { StatsTarget, TargetMetricsPublisher } from './targets.ts';

export interface CollectSlowQueriesDeps {
  targets: readonly StatsTarget[];
  repository: Pick<StatsRepository, 'loadSnapshot' | 'saveSnapshot'>;
  /** Fingerprints and classifies statement texts (`initSqlParser()` must have resolved). */
  sql: SqlAnalyzer;
  /** With `queueUrl`: one message per slow fingerprint. Absent: messages are only returned. */
  sqs?: SqsSender;
  queueUrl?: string;
  publisher: TargetMetricsPublisher;
  metrics: MetricsSink;
  logger: StatsLogger;
  settings: StatsSettings;
  /** EXPLAIN slow statements for the `seq_scan` finding; default true. */
  explain?: boolean;
  /**
   * Epoch ms after which no EXPLAIN starts (the Lambda's remaining time minus a margin for
   * sending and storing); later statements get a `plan_unavailable` finding instead.
   */
  explainDeadlineMs?: number;
  now?: () => Date;
}

/** What happened to one target in one run. */
export interface TargetSlowQueriesResult {
  target: string;
  database: string;
  /**
   * `baseline`: first reading (or after a server change), stored only;
   * `pg_stat_statements_missing`: see `error` for how to enable it.
   */
  status: 'collected' | 'baseline' | 'unreachable' | 'pg_stat_statements_missing' | 'failed';
  diff?: Omit<StatementDiff, 'deltas'> & { statements: number };
  slow: SlowStatement[];
  messages: SlowQueryMessage[];
  sent: number;
  sendFailures: QueueSendFailure[];
  error?: Error;
}

export interface CollectSlowQueriesResult {
  targets: TargetSlowQueriesResult[];
  durationMs: number;
}

/** The snapshot kind of the slow-query collector in the repository. */
export const STATEMENTS_SNAPSHOT_KIND = 'statements';

/** jsonb arrives parsed through pg, as text through the Data API's JSON records. */
const payloadOf = (payload: unknown): unknown =>
  typeof payload === 'string' ? JSON.parse(payload) : payload;

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

const fingerprinter =
  (sql: SqlAnalyzer) =>
  (query: string): string | null => {
    try {
      const analysis = sql.analyze(query);
      return analysis.statementCount === 1 ? analysis.fingerprint : null;
    } catch {
      // Truncated (track_activity_query_size) or otherwise unparsable text: keyed by queryid.
      return null;
    }
  };

const planFindings = async (
  deps: CollectSlowQueriesDeps,
  target: StatsTarget,
  s: SlowStatement,
  serverVersionNum: number,
): Promise<Finding[]> => {
  if (
    deps.explainDeadlineMs !== undefined &&
    Date.now() + deps.settings.explainTimeoutMs > deps.explainDeadlineMs
  ) {
    return [
      {
        kind: 'plan_unavailable',
        detail:
          'EXPLAIN skipped: the invocation is close to its time limit (raise the Lambda timeout or lower SLOW_QUERY_TOP_N)',
      },
    ];
  }
  try {
    return await target.readOnly(deps.settings.explainTimeoutMs, async (tx) =>
      findBigSeqScans(
        tx,
        await explainGenericPlan(tx, s.query, serverVersionNum, deps.sql),
        deps.settings.findings,
      ),
    );
  } catch (err) {
    // Returned as data on this statement; the run and the other statements go on.
    const error = asError(err);
    return [
      {
        kind: 'plan_unavailable',
        detail: `EXPLAIN of the generic plan failed: ${error.message}`,
        error: {
          name: error.name,
          message: error.message,
          code: (error as { code?: string }).code,
        },
      },
    ];
  }
};

const loadPrevious = async (
  deps: CollectSlowQueriesDeps,
  target: StatsTarget,
): Promise<StoredStatementSnapshot | undefined> => {
  try {
    const stored = await deps.repository.loadSnapshot<unknown>(
      target.name,
      STATEMENTS_SNAPSHOT_KIND,
    );
    return stored ? parseStoredStatementSnapshot(payloadOf(stored.payload)) : undefined;
  } catch (err) {
    deps.logger.warn('previous statement snapshot unavailable; this run is a baseline', {
      target: target.name,
      err,
    });
    return undefined;
  }
};

const failureStatusOf = (error: Error): TargetSlowQueriesResult['status'] =>
  isTargetUnreachable(error)
    ? 'unreachable'
    : error instanceof StatsError && error.code === 'PG_STAT_STATEMENTS_MISSING'
      ? 'pg_stat_statements_missing'
      : 'failed';

/**
 * Ranks the interval's deltas. A reading paged without texts (see `StatsTarget.statementPaging`)
 * fetches the texts of the candidates only, in a second read-only transaction.
 */
const rankSlow = async (
  deps: CollectSlowQueriesDeps,
  target: StatsTarget,
  read: StatementSnapshot,
  deltas: readonly StatementDelta[],
): Promise<SlowStatement[]> => {
  const include = (query: string) => isExplainableStatement(query, deps.sql);
  const pending = read.textsPending;
  if (!pending) {
    return rankSlowStatements(deltas, deps.settings.slowQueries, fingerprinter(deps.sql), include);
  }
  const dbId = deltas[0]?.entry.dbId ?? '';
  return rankSlowStatementsFetchingTexts(
    deltas,
    deps.settings.slowQueries,
    fingerprinter(deps.sql),
    include,
    (queryIds) =>
      target.readOnly(deps.settings.readTimeoutMs, (q) =>
        readStatementTexts(q, {
          target: target.name,
          dbId,
          columns: pending.columns,
          paging: pending.paging,
          queryIds,
        }),
      ),
  );
};

const collectTarget = async (
  deps: CollectSlowQueriesDeps,
  target: StatsTarget,
  now: () => Date,
): Promise<TargetSlowQueriesResult> => {
  const empty = { slow: [], messages: [], sent: 0, sendFailures: [] };
  const prev = await loadPrevious(deps, target);
  let read: Awaited<ReturnType<typeof readStatementSnapshot>>;
  let database = target.database;
  try {
    read = await target.readOnly(deps.settings.readTimeoutMs, async (q) => {
      const server = await readServerInfo(q);
      database = server.database;
      return readStatementSnapshot(q, {
        target: target.name,
        serverVersionNum: server.serverVersionNum,
        now,
        ...(target.statementPaging ? { paging: target.statementPaging } : {}),
      });
    });
  } catch (err) {
    const error = asError(err);
    return { target: target.name, database, status: failureStatusOf(error), ...empty, error };
  }
  const diff = diffStatementStats(prev, read);
  const { deltas, ...summary } = diff;
  const result: TargetSlowQueriesResult = {
    target: target.name,
    database,
    status: diff.baseline ? 'baseline' : 'collected',
    diff: { ...summary, statements: read.entries.length },
    ...empty,
  };
  if (!diff.baseline) {
    try {
      result.slow = await rankSlow(deps, target, read, deltas);
    } catch (err) {
      // The texts of a paged read come in a second transaction; without them nothing can be
      // reported. The counters are not stored either: the next run spans both intervals.
      const error = asError(err);
      return { ...result, status: failureStatusOf(error), error };
    }
    const observedAt = new Date(read.takenAt);
    for (const s of result.slow) {
      const findings = findCounterFindings(s, deps.settings.findings);
      if (deps.explain !== false) {
        findings.push(...(await planFindings(deps, target, s, read.serverVersionNum)));
      }
      result.messages.push(
        toSlowQueryMessage(s, {
          target: target.name,
          database,
          intervalSeconds: diff.intervalSeconds,
          observedAt,
          findings,
        }),
      );
    }
    if (deps.sqs && deps.queueUrl && result.messages.length > 0) {
      const sent = await sendSlowQueryMessages(deps.sqs, deps.queueUrl, result.messages);
      result.sent = sent.sent;
      result.sendFailures = sent.failed;
    }
  }
  await deps.repository.saveSnapshot<StoredStatementSnapshot>({
    target: target.name,
    kind: STATEMENTS_SNAPSHOT_KIND,
    takenAt: new Date(read.takenAt),
    statsReset: read.statsResetAt ? new Date(read.statsResetAt) : null,
    serverVersionNum: read.serverVersionNum,
    payload: toStoredStatementSnapshot(read),
  });
  return result;
};

/**
 * One run of the slow-query collector over every target, concurrently: read
 * pg_stat_statements → diff with the stored previous reading (`diffStatementStats`) → rank
 * the DML statements (utility statements cannot be indexed) by time consumed in the interval → findings per slow fingerprint (counters, and the
 * generic plan's big sequential scans) → one SQS message per fingerprint → store the
 * reading as the next baseline. Per-target failures (unreachable, pg_stat_statements
 * missing, an EXPLAIN or SQS failure) are returned as data; the other targets go on.
 */
export const collectSlowQueries = async (
  deps: CollectSlowQueriesDeps,
): Promise<CollectSlowQueriesResult> => {
  const startedMs = performance.now();
  const now = deps.now ?? (() => new Date());
  const results = await Promise.all(
    deps.targets.map(async (target): Promise<TargetSlowQueriesResult> => {
      try {
        return await collectTarget(deps, target, now);
      } catch (err) {
        return {
          target: target.name,
          database: target.database,
          status: 'failed',
          slow: [],
          messages: [],
          sent: 0,
          sendFailures: [],
          error: asError(err),
        };
      }
    }),
  );
  for (const r of results) {
    const values: Record<string, number> = {
      SlowQueries: r.slow.length,
      PgStatStatementsMissing: r.status === 'pg_stat_statements_missing' ? 1 : 0,
    };
    if (r.diff) {
      values.StatementsTracked = r.diff.statements;
      values.StatementsReset = r.diff.reset ? 1 : 0;
      if (r.diff.deallocated !== null) values.StatementsDeallocated = r.diff.deallocated;
    }
    if (r.sendFailures.length > 0) values.SlowQueryMessagesFailed = r.sendFailures.length;
    deps.publisher.publish({ target: r.target, database: r.database }, values);
    if (r.error) {
      deps.logger.error('collecting slow queries failed', {
        target: r.target,
        status: r.status,
        err: r.error,
      });
    } else if (r.sendFailures.length > 0) {
      deps.logger.error('some slow-query messages were not queued', {
        target: r.target,
        failures: r.sendFailures,
      });
    } else {
      deps.logger.info('slow queries collected', {
        target: r.target,
        status: r.status,
        slow: r.slow.length,
        sent: r.sent,
        reset: r.diff?.reset,
      });
    }
  }
  const durationMs = performance.now() - startedMs;
  deps.metrics.addMetric('CollectSlowQueriesDuration', MetricUnit.Milliseconds, durationMs);
  return { targets: results, durationMs };
};
