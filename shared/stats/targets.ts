import { type Config, shardUrlsOf } from '#shared/config';
import { type Database, type Queryable, withReadOnlyTransaction } from '#shared/db';
import type { MetricsSink } from '#shared/metrics';
import type { StatementPaging } from './statements.ts';

type MetricUnitValue = Parameters<MetricsSink['addMetric']>[1];

/**
 * One database the collectors watch. `readOnly` runs catalog reads (and EXPLAIN) in one
 * read-only transaction with a server-side time limit; a pg pool and the RDS Data API both
 * provide it.
 */
export interface StatsTarget {
  /** `primary` (CACHE_TARGET) or the shard name: the `target` metric dimension. */
  readonly name: string;
  /** Database name as configured: the `database` dimension, also when unreachable. */
  readonly database: string;
  readOnly<T>(timeoutMs: number, work: (q: Queryable) => Promise<T>): Promise<T>;
  /**
   * Set for a reader with a response size limit (the RDS Data API): pg_stat_statements is read
   * in pages without texts, and texts only for the slow-query candidates. Absent: one read.
   */
  readonly statementPaging?: StatementPaging;
}

/** A target read through a (lazy) pg pool. */
export const pgStatsTarget = (name: string, database: string, db: Database): StatsTarget =>
  Object.freeze({
    name,
    database,
    readOnly: <T>(timeoutMs: number, work: (q: Queryable) => Promise<T>) =>
      withReadOnlyTransaction(db, { timeoutMs }, work),
  });

/** Database name of a postgres:// URL (the path), or `fallback`. */
export const databaseNameOf = (url: string | undefined, fallback: string): string => {
  if (!url) return fallback;
  try {
    return decodeURIComponent(new URL(url).pathname.slice(1)) || fallback;
  } catch {
    return fallback;
  }
};

/** What {@link statsTargetsFromConfig} needs to build the targets. */
export interface StatsTargetFactories {
  /** One lazy pool per connection string; `undefined` means the primary's DB_* settings. */
  createDb(connectionString: string | undefined): Database;
  /** With STATS_SOURCE=data-api: the primary read through the RDS Data API. */
  dataApiTarget?: (name: string, database: string) => StatsTarget;
}

/**
 * The targets of a deployment: the primary (DATABASE_URL / DB_*, or the Data API when
 * STATS_SOURCE=data-api) and every shard of SHARD_URLS, in that order. Builds nothing but
 * lazy pools.
 */
export const statsTargetsFromConfig = (
  config: Config,
  factories: StatsTargetFactories,
): StatsTarget[] => {
  const primaryName = config.CACHE_TARGET;
  const primaryDatabase = databaseNameOf(config.DATABASE_URL, config.DB_NAME);
  const primary =
    config.STATS_SOURCE === 'data-api' && factories.dataApiTarget
      ? factories.dataApiTarget(primaryName, config.DATA_API_DATABASE ?? primaryDatabase)
      : pgStatsTarget(primaryName, primaryDatabase, factories.createDb(undefined));
  const shards = Object.entries(shardUrlsOf(config))
    .filter(([name]) => name !== primaryName)
    .map(([name, url]) => pgStatsTarget(name, databaseNameOf(url, name), factories.createDb(url)));
  return [primary, ...shards];
};

/** The Powertools Metrics surface used to emit one EMF document per target. */
export interface DimensionedMetrics {
  addDimensions(dimensions: Record<string, string>): unknown;
  addMetric(name: string, unit: MetricUnitValue, value: number): unknown;
  publishStoredMetrics(): unknown;
}

/** Emits one target's metrics with the bounded dimensions {target, database}. */
export interface TargetMetricsPublisher {
  publish(
    dimensions: { target: string; database: string },
    values: Readonly<Record<string, number>>,
  ): void;
}

/**
 * Publishes each target's metrics as its own EMF document (Powertools: dimensions, metrics,
 * then `publishStoredMetrics`). Synchronous, so documents of targets collected concurrently
 * never mix; run-level metrics must be added only after the last target was published.
 */
export const createEmfTargetPublisher = (
  metrics: DimensionedMetrics,
  unitOf: (name: string) => MetricUnitValue,
): TargetMetricsPublisher =>
  Object.freeze({
    publish(
      dimensions: { target: string; database: string },
      values: Readonly<Record<string, number>>,
    ) {
      const entries = Object.entries(values).filter(([, v]) => Number.isFinite(v));
      if (entries.length === 0) return;
      metrics.addDimensions({ target: dimensions.target, database: dimensions.database });
      for (const [name, value] of entries) metrics.addMetric(name, unitOf(name), value);
      metrics.publishStoredMetrics();
    },
  });
