/**
 * Collectors (snapshot → diff → publish): database activity and statistics every minute
 * (`collectMetrics`: health verdicts, trends, alerts, EMF metrics, metric history) and
 * pg_stat_statements every five minutes (`collectSlowQueries`: per-interval deltas, ranking,
 * findings, one SQS message per slow fingerprint). Catalog SQL is chosen by server version.
 */
export {
  type CollectMetricsDeps,
  type CollectMetricsResult,
  collectMetrics,
  DATABASE_SNAPSHOT_KIND,
  type StatsAlerter,
  type StatsLogger,
  type StatsRepository,
  type TargetMetricsResult,
  TREND_METRICS,
  unreachableCondition,
} from './collect-metrics.ts';
export {
  type CollectSlowQueriesDeps,
  type CollectSlowQueriesResult,
  collectSlowQueries,
  STATEMENTS_SNAPSHOT_KIND,
  type TargetSlowQueriesResult,
} from './collect-slow-queries.ts';
export {
  type DatabaseDiff,
  type DatabaseSnapshot,
  diffDatabaseSnapshots,
  readDatabaseSnapshot,
  readServerInfo,
} from './database.ts';
export { pgStatStatementsMissingMessage, StatsError } from './errors.ts';
export {
  DEFAULT_FINDING_THRESHOLDS,
  explainGenericPlan,
  type Finding,
  type FindingKind,
  type FindingThresholds,
  findCounterFindings,
  findSeqScans,
  isExplainableStatement,
} from './findings.ts';
export {
  type SlowQueryMessage,
  SlowQueryMessageSchema,
  toSlowQueryMessage,
} from './message.ts';
export { type QueueSendResult, type SqsSender, sendSlowQueryMessages } from './queue.ts';
export { rankSlowStatements, type SlowQueryLimits, type SlowStatement } from './rank.ts';
export { type HealthReportData, readHealthReport } from './report.ts';
export {
  type CollectEvent,
  CollectEventSchema,
  type CollectorClients,
  type CollectorRuntime,
  createCollectorRuntime,
  dataApiStatsTarget,
  validateCollectEvent,
} from './runtime.ts';
export { buildHealthSample, metricValuesOf, TARGET_METRIC_UNITS } from './sample.ts';
export { type StatsSettings, statsSettingsFromConfig } from './settings.ts';
export {
  diffStatementStats,
  readStatementSnapshot,
  type StatementDelta,
  type StatementDiff,
  type StatementEntry,
  type StatementSnapshot,
  type StoredStatementSnapshot,
  toStoredStatementSnapshot,
} from './statements.ts';
export {
  createEmfTargetPublisher,
  type DimensionedMetrics,
  pgStatsTarget,
  type StatsTarget,
  statsTargetsFromConfig,
  type TargetMetricsPublisher,
} from './targets.ts';
