import type { Config } from '#shared/config';
import { DEFAULT_FINDING_THRESHOLDS, type FindingThresholds } from './findings.ts';
import type { SlowQueryLimits } from './rank.ts';

/** Collector settings taken from {@link Config}. */
export interface StatsSettings {
  /** Server-side limit of one target's catalog reads (ms). */
  readTimeoutMs: number;
  /** Server-side limit of each EXPLAIN (ms). */
  explainTimeoutMs: number;
  /** Days of metric history kept. */
  historyDays: number;
  /** History window the trend analysis looks at (minutes). */
  trendWindowMinutes: number;
  /** A DEGRADING trend raises a WARNING from this confidence (0..1). */
  trendMinConfidence: number;
  slowQueries: SlowQueryLimits;
  findings: FindingThresholds;
}

export const DEFAULT_TREND_MIN_CONFIDENCE = 0.99;

export const statsSettingsFromConfig = (config: Config): StatsSettings =>
  Object.freeze({
    readTimeoutMs: config.STATS_READ_TIMEOUT_MS,
    explainTimeoutMs: config.SLOW_QUERY_EXPLAIN_TIMEOUT_MS,
    historyDays: config.METRICS_HISTORY_DAYS,
    trendWindowMinutes: config.STATS_TREND_WINDOW_MINUTES,
    trendMinConfidence: DEFAULT_TREND_MIN_CONFIDENCE,
    slowQueries: Object.freeze({
      topN: config.SLOW_QUERY_TOP_N,
      minMeanMs: config.SLOW_QUERY_MIN_MEAN_MS,
      minCalls: config.SLOW_QUERY_MIN_CALLS,
    }),
    findings: Object.freeze({
      ...DEFAULT_FINDING_THRESHOLDS,
      seqScanMinRows: config.SLOW_QUERY_SEQ_SCAN_MIN_ROWS,
    }),
  });
