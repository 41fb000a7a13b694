import type { HealthSample } from '#shared/analysis';
import { MetricUnit } from '#shared/metrics';
import { type DatabaseDiff, type DatabaseSnapshot, lockTotals } from './database.ts';

/** The health sample of one target from one reading and its interval. Pure. */
export const buildHealthSample = (
  target: string,
  snapshot: DatabaseSnapshot,
  diff: DatabaseDiff,
): HealthSample => ({
  target,
  connectionUtilisation:
    snapshot.activity.maxConnections > 0
      ? snapshot.activity.connections / snapshot.activity.maxConnections
      : 0,
  cacheHitRatio: diff.cacheHitRatio,
  longestTransactionSeconds: snapshot.activity.oldestTransactionSeconds,
  longestQuerySeconds: snapshot.activity.longestQuerySeconds,
  waitingLocks: lockTotals(snapshot).waiting,
  idleInTransaction: snapshot.activity.idleInTransaction,
  deadTupleRatio: snapshot.tables.worstDeadTupleRatio,
  replicationLagSeconds: snapshot.replication.lagSeconds,
  meanQueryTimeMs: diff.meanQueryTimeMs,
  deadlocksPerMinute: diff.rates?.deadlocksPerMinute ?? null,
  maxConnections: snapshot.activity.maxConnections,
  longestTransactionPid: snapshot.activity.oldestTransactionPid,
  longestQueryPid: snapshot.activity.longestQueryPid,
  deadTupleTable: snapshot.tables.worstDeadTupleTable,
});

type Unit = (typeof MetricUnit)[keyof typeof MetricUnit];

/**
 * CloudWatch unit of every metric the metrics collector publishes. The same names key the
 * repository's metric history (`metricSeries(target, 'CacheHitRatio', since)`).
 */
export const TARGET_METRIC_UNITS: Readonly<Record<string, Unit>> = Object.freeze({
  TargetUp: MetricUnit.Count,
  CollectFailed: MetricUnit.Count,
  StatsReset: MetricUnit.Count,
  ActiveSessions: MetricUnit.Count,
  IdleSessions: MetricUnit.Count,
  IdleInTransaction: MetricUnit.Count,
  WaitingSessions: MetricUnit.Count,
  LongestQuerySeconds: MetricUnit.Seconds,
  OldestTransactionSeconds: MetricUnit.Seconds,
  Connections: MetricUnit.Count,
  ConnectionUtilisation: MetricUnit.Percent,
  LocksGranted: MetricUnit.Count,
  LocksWaiting: MetricUnit.Count,
  CommitsPerSecond: MetricUnit.CountPerSecond,
  RollbacksPerSecond: MetricUnit.CountPerSecond,
  BlocksReadPerSecond: MetricUnit.CountPerSecond,
  CacheHitRatio: MetricUnit.Percent,
  TempBytesPerSecond: MetricUnit.BytesPerSecond,
  DeadlocksPerMinute: MetricUnit.Count,
  SeqScansPerSecond: MetricUnit.CountPerSecond,
  IdxScansPerSecond: MetricUnit.CountPerSecond,
  SeqTuplesReadPerSecond: MetricUnit.CountPerSecond,
  DeadTuples: MetricUnit.Count,
  WorstDeadTupleRatio: MetricUnit.Percent,
  UnusedIndexes: MetricUnit.Count,
  ReplicationLagSeconds: MetricUnit.Seconds,
  MeanQueryTimeMs: MetricUnit.Milliseconds,
  SlowQueries: MetricUnit.Count,
});

/**
 * The metric values of one reading (ratios as percent, 0..100). Values that were not measured
 * (no rates on a baseline interval, no replicas) are left out rather than published as 0.
 */
export const metricValuesOf = (
  snapshot: DatabaseSnapshot,
  diff: DatabaseDiff,
): Record<string, number> => {
  const locks = lockTotals(snapshot);
  const a = snapshot.activity;
  const values: Record<string, number> = {
    TargetUp: 1,
    StatsReset: diff.reset || diff.statementsReset ? 1 : 0,
    ActiveSessions: a.active,
    IdleSessions: a.idle,
    IdleInTransaction: a.idleInTransaction,
    WaitingSessions: a.waiting,
    LongestQuerySeconds: a.longestQuerySeconds,
    OldestTransactionSeconds: a.oldestTransactionSeconds,
    Connections: a.connections,
    ConnectionUtilisation: a.maxConnections > 0 ? (100 * a.connections) / a.maxConnections : 0,
    LocksGranted: locks.granted,
    LocksWaiting: locks.waiting,
    DeadTuples: snapshot.tables.deadTuples,
    UnusedIndexes: snapshot.indexes.unusedIndexes,
  };
  if (snapshot.tables.worstDeadTupleRatio !== null) {
    values.WorstDeadTupleRatio = 100 * snapshot.tables.worstDeadTupleRatio;
  }
  if (snapshot.replication.lagSeconds !== null) {
    values.ReplicationLagSeconds = snapshot.replication.lagSeconds;
  }
  if (diff.cacheHitRatio !== null) values.CacheHitRatio = 100 * diff.cacheHitRatio;
  if (diff.meanQueryTimeMs !== null) values.MeanQueryTimeMs = diff.meanQueryTimeMs;
  const r = diff.rates;
  if (r) {
    values.CommitsPerSecond = r.commitsPerSecond;
    values.RollbacksPerSecond = r.rollbacksPerSecond;
    values.BlocksReadPerSecond = r.blocksReadPerSecond;
    values.TempBytesPerSecond = r.tempBytesPerSecond;
    values.DeadlocksPerMinute = r.deadlocksPerMinute;
    if (r.seqScansPerSecond !== null) values.SeqScansPerSecond = r.seqScansPerSecond;
    if (r.idxScansPerSecond !== null) values.IdxScansPerSecond = r.idxScansPerSecond;
    if (r.seqTuplesReadPerSecond !== null) {
      values.SeqTuplesReadPerSecond = r.seqTuplesReadPerSecond;
    }
  }
  return values;
};
