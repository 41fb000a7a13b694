import type { AlertCondition, AlertOutcome } from '#shared/alerts';
import {
  analyzeTrend,
  evaluateHealth,
  type HealthReport,
  type HealthThresholds,
  type TrendVerdict,
} from '#shared/analysis';
import { type MetricsSink, MetricUnit } from '#shared/metrics';
import type { StoredSnapshot } from '#shared/repository';
import {
  type DatabaseDiff,
  type DatabaseSnapshot,
  diffDatabaseSnapshots,
  parseDatabaseSnapshot,
  readDatabaseSnapshot,
} from './database.ts';
import { isTargetUnreachable, pgStatStatementsMissingMessage } from './errors.ts';
import { buildHealthSample, metricValuesOf } from './sample.ts';
import type { StatsSettings } from './settings.ts';
import type { StatsTarget, TargetMetricsPublisher } from './targets.ts';

/** The narrow logging surface of the collectors (Powertools Logger fits). */
export interface StatsLogger {
  info(message: string, ...extra: unknown[]): void;
  warn(message: string, ...extra: unknown[]): void;
  error(message: string, ...extra: unknown[]): void;
}

/** The repository methods the collectors use (`createRepository(db)` fits). */
export interface StatsRepository {
  loadSnapshot<T>(target: string, kind: string): Promise<StoredSnapshot<T> | undefined>;
  saveSnapshot<T>(snapshot: StoredSnapshot<T>): Promise<void>;
  recordMetrics(target: string, takenAt: Date, values: Record<string, number>): Promise<void>;
  metricSeries(target: string, metric: string, since: Date): Promise<{ at: Date; value: number }[]>;
  pruneMetrics(olderThan: Date): Promise<number>;
}

/** The alerter surface (`createAlerter(…)` fits). */
export interface StatsAlerter {
  reconcile(
    target: string,
    active: AlertCondition[],
    options?: { partial?: boolean; unknownKinds?: readonly string[] },
  ): Promise<AlertOutcome[]>;
}

export interface CollectMetricsDeps {
  targets: readonly StatsTarget[];
  repository: StatsRepository;
  /** Absent: conditions are only returned (and logged). */
  alerter?: StatsAlerter;
  publisher: TargetMetricsPublisher;
  /** Run-level metrics (no target dimension). */
  metrics: MetricsSink;
  logger: StatsLogger;
  thresholds: HealthThresholds;
  settings: StatsSettings;
  now?: () => Date;
}

/** What happened to one target in one run. */
export interface TargetMetricsResult {
  target: string;
  database: string;
  /** `unreachable`: could not connect; `failed`: connected, but a read or a write failed. */
  status: 'collected' | 'unreachable' | 'failed';
  snapshot?: DatabaseSnapshot;
  diff?: DatabaseDiff;
  health?: HealthReport;
  /** Trend verdict per metric name (only metrics with history). */
  trends: Record<string, TrendVerdict>;
  /** Every condition passed to the alerter (health, trends, unreachable…). */
  conditions: AlertCondition[];
  /**
   * Alert kinds that could not be evaluated this run (health checks without a value, trends
   * without history): their open alerts are kept, neither resolved nor reminded.
   */
  unknownKinds: string[];
  alerts: AlertOutcome[];
  /** Published metric values. */
  values: Record<string, number>;
  error?: Error;
}

export interface CollectMetricsResult {
  targets: TargetMetricsResult[];
  durationMs: number;
  /** Metric history rows deleted past METRICS_HISTORY_DAYS (null if pruning failed). */
  pruned: number | null;
}

/**
 * Metrics whose history is checked for a trend; `higherIsBetter` as analyzeTrend takes it.
 * `minAbsoluteChange` (in the metric's stored unit: percent points, seconds, ms) keeps a
 * relative rise of a value near zero from alerting: connections going from 3% to 8% of
 * max_connections on the morning ramp-up, or replication lag from 10 to 50 ms, are +100% and
 * more, yet nothing to act on.
 */
export const TREND_METRICS: readonly {
  metric: string;
  kind: string;
  higherIsBetter: boolean;
  minAbsoluteChange: number;
}[] = Object.freeze([
  {
    metric: 'MeanQueryTimeMs',
    kind: 'trend_mean_query_time',
    higherIsBetter: false,
    minAbsoluteChange: 5,
  },
  {
    metric: 'CacheHitRatio',
    kind: 'trend_cache_hit_ratio',
    higherIsBetter: true,
    minAbsoluteChange: 1,
  },
  {
    metric: 'ConnectionUtilisation',
    kind: 'trend_connections',
    higherIsBetter: false,
    minAbsoluteChange: 10,
  },
  {
    metric: 'ReplicationLagSeconds',
    kind: 'trend_replication_lag',
    higherIsBetter: false,
    minAbsoluteChange: 10,
  },
  {
    metric: 'WorstDeadTupleRatio',
    kind: 'trend_dead_tuples',
    higherIsBetter: false,
    minAbsoluteChange: 5,
  },
]);

/** The snapshot kind of the metrics collector in the repository. */
export const DATABASE_SNAPSHOT_KIND = 'database';

/** jsonb arrives parsed through pg, as text through the Data API's JSON records. */
const payloadOf = (payload: unknown): unknown =>
  typeof payload === 'string' ? JSON.parse(payload) : payload;

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

/** A CRITICAL `unreachable` condition for a target that refused or timed out the connection. */
export const unreachableCondition = (target: StatsTarget, err: Error): AlertCondition => ({
  kind: 'unreachable',
  severity: 'CRITICAL',
  summary: `Database target ${target.name} (${target.database}) is unreachable`,
  recommendation:
    'Check that the instance is running, that the collector can reach it (security groups, VPC, ' +
    'RDS Proxy target health) and that its credentials are valid.',
  details: {
    error: err.message,
    code: (err as { code?: string }).code ?? err.name,
    cause: err.cause instanceof Error ? err.cause.message : undefined,
  },
});

const loadPrevious = async (
  deps: CollectMetricsDeps,
  target: StatsTarget,
): Promise<DatabaseSnapshot | undefined> => {
  try {
    const stored = await deps.repository.loadSnapshot<unknown>(target.name, DATABASE_SNAPSHOT_KIND);
    return stored ? parseDatabaseSnapshot(payloadOf(stored.payload)) : undefined;
  } catch (err) {
    // A lost or unreadable baseline only costs one interval of rates.
    deps.logger.warn('previous database snapshot unavailable; this interval is a baseline', {
      target: target.name,
      err,
    });
    return undefined;
  }
};

const trendConditions = async (
  deps: CollectMetricsDeps,
  target: StatsTarget,
  now: Date,
): Promise<{ trends: Record<string, TrendVerdict>; conditions: AlertCondition[] }> => {
  const since = new Date(now.getTime() - deps.settings.trendWindowMinutes * 60_000);
  const trends: Record<string, TrendVerdict> = {};
  const conditions: AlertCondition[] = [];
  for (const t of TREND_METRICS) {
    const series = await deps.repository.metricSeries(target.name, t.metric, since);
    if (series.length === 0) continue;
    const verdict = analyzeTrend(series, {
      higherIsBetter: t.higherIsBetter,
      minAbsoluteChange: t.minAbsoluteChange,
    });
    trends[t.metric] = verdict;
    if (
      verdict.direction === 'DEGRADING' &&
      verdict.confidence >= deps.settings.trendMinConfidence
    ) {
      conditions.push({
        kind: t.kind,
        severity: 'WARNING',
        summary: `${t.metric} is degrading on ${target.name}: ${verdict.slopePerHour.toFixed(2)} per hour (${(verdict.relativeChange * 100).toFixed(0)}% over ${deps.settings.trendWindowMinutes} min)`,
        recommendation: verdict.reason,
        details: {
          metric: t.metric,
          confidence: verdict.confidence,
          slopePerHour: verdict.slopePerHour,
          points: verdict.points,
        },
      });
    }
  }
  return { trends, conditions };
};

const collectTarget = async (
  deps: CollectMetricsDeps,
  target: StatsTarget,
  now: () => Date,
): Promise<TargetMetricsResult> => {
  const base = {
    target: target.name,
    database: target.database,
    trends: {},
    alerts: [],
    unknownKinds: [],
  };
  const prev = await loadPrevious(deps, target);
  let snapshot: DatabaseSnapshot;
  try {
    snapshot = await target.readOnly(deps.settings.readTimeoutMs, (q) =>
      readDatabaseSnapshot(q, { now }),
    );
  } catch (err) {
    const error = asError(err);
    const unreachable = isTargetUnreachable(error);
    const condition: AlertCondition = unreachable
      ? unreachableCondition(target, error)
      : {
          kind: 'collect_failed',
          severity: 'WARNING',
          summary: `Reading statistics from ${target.name} failed: ${error.message}`,
          recommendation:
            'Grant the collector role pg_monitor (GRANT pg_monitor TO <role>) and check the logs for the failing query.',
        };
    return {
      ...base,
      status: unreachable ? 'unreachable' : 'failed',
      conditions: [condition],
      values: unreachable ? { TargetUp: 0 } : { CollectFailed: 1 },
      error,
    };
  }
  const diff = diffDatabaseSnapshots(prev, snapshot);
  const health = evaluateHealth(buildHealthSample(target.name, snapshot, diff), deps.thresholds);
  const values = metricValuesOf(snapshot, diff);
  const takenAt = new Date(snapshot.takenAt);
  // History is a by-product: a repository failure is reported, the verdict still counts.
  let trend: Awaited<ReturnType<typeof trendConditions>> = { trends: {}, conditions: [] };
  let storeError: Error | undefined;
  try {
    await deps.repository.saveSnapshot<DatabaseSnapshot>({
      target: target.name,
      kind: DATABASE_SNAPSHOT_KIND,
      takenAt,
      statsReset: snapshot.statsResetAt ? new Date(snapshot.statsResetAt) : null,
      serverVersionNum: snapshot.server.serverVersionNum,
      payload: snapshot,
    });
    // History also keeps lock waits per mode (not in EMF: one metric per mode is noise there).
    const waitsByMode: Record<string, number> = {};
    for (const l of snapshot.locks) {
      if (!l.granted) waitsByMode[`LocksWaiting.${l.mode}`] = l.locks;
    }
    await deps.repository.recordMetrics(target.name, takenAt, { ...values, ...waitsByMode });
    trend = await trendConditions(deps, target, takenAt);
  } catch (err) {
    storeError = asError(err);
    deps.logger.error('storing the snapshot or metric history failed', {
      target: target.name,
      err: storeError,
    });
  }
  const conditions = [...health.conditions, ...trend.conditions];
  // Not measured is not the same as not applicable: without replicas there is no lag, and
  // without a table big enough to count there is no dead-tuple problem (those alerts resolve).
  const notApplicable = new Set<string>();
  if (snapshot.replication.replicas === 0) {
    notApplicable.add('replication_lag').add('trend_replication_lag');
  }
  if (snapshot.tables.worstDeadTupleRatio === null) {
    notApplicable.add('dead_tuples').add('trend_dead_tuples');
  }
  const unknownKinds = [
    ...health.checks
      .filter((c) => c.status === 'UNKNOWN' && !notApplicable.has(c.kind))
      .map((c) => c.kind),
    ...TREND_METRICS.filter((t) => !(t.metric in trend.trends) && !notApplicable.has(t.kind)).map(
      (t) => t.kind,
    ),
  ];
  if (snapshot.statements === null) {
    conditions.push({
      kind: 'pg_stat_statements_missing',
      severity: 'WARNING',
      summary: pgStatStatementsMissingMessage(target.name),
    });
  }
  if (diff.reset || diff.statementsReset) {
    deps.logger.warn('statistics were reset; this interval is a fresh baseline', {
      target: target.name,
      databaseCounters: diff.reset,
      statements: diff.statementsReset,
    });
  }
  return {
    ...base,
    database: snapshot.server.database,
    status: 'collected',
    snapshot,
    diff,
    health,
    trends: trend.trends,
    conditions,
    unknownKinds,
    values,
    ...(storeError ? { error: storeError } : {}),
  };
};

/**
 * One run of the metrics collector over every target, concurrently: read pg_stat_* → diff
 * with the stored previous reading → health verdict and trends → alerts, metrics (EMF, with
 * dimensions {target, database}) and metric history. One bad target never stops the others:
 * an unreachable one yields a CRITICAL `unreachable` condition (raised without resolving its
 * other open alerts) and `TargetUp` 0; any other failure is returned on its result.
 *
 * @example
 * const run = await collectMetrics({ targets, repository, alerter, publisher, metrics,
 *   logger, thresholds: healthThresholdsFromConfig(config), settings });
 */
export const collectMetrics = async (deps: CollectMetricsDeps): Promise<CollectMetricsResult> => {
  const startedMs = performance.now();
  const now = deps.now ?? (() => new Date());
  const results = await Promise.all(
    deps.targets.map(async (target): Promise<TargetMetricsResult> => {
      let result: TargetMetricsResult;
      try {
        result = await collectTarget(deps, target, now);
      } catch (err) {
        result = {
          target: target.name,
          database: target.database,
          status: 'failed',
          trends: {},
          conditions: [],
          unknownKinds: [],
          alerts: [],
          values: {},
          error: asError(err),
        };
      }
      if (deps.alerter && (result.status === 'collected' || result.conditions.length > 0)) {
        try {
          // Unreachable or failed: raise that condition without resolving the others.
          result.alerts = await deps.alerter.reconcile(target.name, result.conditions, {
            partial: result.status !== 'collected',
            unknownKinds: result.unknownKinds,
          });
        } catch (err) {
          deps.logger.error('alert reconciliation failed', { target: target.name, err });
        }
      }
      return result;
    }),
  );
  for (const r of results) {
    deps.publisher.publish({ target: r.target, database: r.database }, r.values);
    if (r.status === 'collected') {
      deps.logger.info('target health', {
        target: r.target,
        status: r.health?.status,
        bottleneck: r.health?.bottleneck,
        reset: r.diff?.reset,
      });
    } else {
      deps.logger.error('collecting metrics failed', {
        target: r.target,
        status: r.status,
        err: r.error,
      });
    }
  }
  let pruned: number | null = null;
  try {
    pruned = await deps.repository.pruneMetrics(
      new Date(now().getTime() - deps.settings.historyDays * 86_400_000),
    );
  } catch (err) {
    deps.logger.warn('pruning metric history failed; retried next run', { err });
  }
  const durationMs = performance.now() - startedMs;
  deps.metrics.addMetric('CollectMetricsDuration', MetricUnit.Milliseconds, durationMs);
  deps.metrics.addMetric(
    'TargetsCollected',
    MetricUnit.Count,
    results.filter((r) => r.status === 'collected').length,
  );
  deps.metrics.addMetric(
    'TargetsFailed',
    MetricUnit.Count,
    results.filter((r) => r.status !== 'collected').length,
  );
  return { targets: results, durationMs, pruned };
};
