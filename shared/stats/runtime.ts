import type { MiddlewareObj } from '@middy/core';
import { z } from 'zod';
import { type AlertLogger, createAlerter, type SnsPublisher } from '#shared/alerts';
import { healthThresholdsFromConfig } from '#shared/analysis';
import type { Config } from '#shared/config';
import {
  CLIENT_TIMEOUT_GRACE_MS,
  createDataApiQueryable,
  createDatabase,
  type DataApiClient,
  type Database,
  databaseOptionsFromConfig,
  type Queryable,
} from '#shared/db';
import { ValidationError } from '#shared/errors';
import type { MetricsSink } from '#shared/metrics';
import { MetricUnit } from '#shared/metrics';
import { createRepository, migrateRepository, repositoryDatabaseOptions } from '#shared/repository';
import type { CollectMetricsDeps, StatsLogger } from './collect-metrics.ts';
import type { CollectSlowQueriesDeps } from './collect-slow-queries.ts';
import type { SqsSender } from './queue.ts';
import { TARGET_METRIC_UNITS } from './sample.ts';
import { statsSettingsFromConfig } from './settings.ts';
import { DATA_API_STATEMENT_PAGING } from './statements.ts';
import {
  createEmfTargetPublisher,
  type DimensionedMetrics,
  type StatsTarget,
  statsTargetsFromConfig,
} from './targets.ts';

/** Clients a handler (or local mode) constructs and hands to {@link createCollectorRuntime}. */
export interface CollectorClients {
  logger: StatsLogger & AlertLogger;
  /** Powertools Metrics: run-level metrics plus one EMF document per target. */
  metrics: MetricsSink & DimensionedMetrics;
  /** SNS client for alerts (used only with ALERT_TOPIC_ARN). */
  sns?: SnsPublisher;
  /** SQS client for slow-query messages (used only with SLOW_QUERY_QUEUE_URL). */
  sqs?: SqsSender;
  /** RDS Data API client (used only with STATS_SOURCE=data-api). */
  rdsData?: DataApiClient;
}

/** Everything both collectors need, built once per cold start from config and clients. */
export interface CollectorRuntime {
  readonly targets: readonly StatsTarget[];
  /**
   * Runs the repository migrations once (memoised; a failure is retried on the next call).
   * Resolves false (and logs) when the repository is unreachable: the collectors still run,
   * without history, so an unreachable primary is reported instead of crashing the run.
   */
  ensureRepository(): Promise<boolean>;
  metricsDeps(targets?: readonly StatsTarget[]): CollectMetricsDeps;
  slowQueryDeps(
    sql: CollectSlowQueriesDeps['sql'],
    targets?: readonly StatsTarget[],
  ): CollectSlowQueriesDeps;
  /** The targets named in a scheduler event (all when none are named). */
  selectTargets(names?: readonly string[]): readonly StatsTarget[];
  /** Closes every pool. */
  shutdown(): Promise<void>;
}

/** A queryable that creates the pool on first use. */
const lazyQueryable = (db: Database): Queryable => ({
  query: (sql, params) => db.pool().query(sql, params) as never,
});

/** A target read through the RDS Data API. */
export const dataApiStatsTarget = (
  name: string,
  database: string,
  q: ReturnType<typeof createDataApiQueryable>,
): StatsTarget =>
  Object.freeze({
    name,
    database,
    readOnly: <T>(timeoutMs: number, work: (tx: Queryable) => Promise<T>) =>
      q.withReadOnlyTransaction(timeoutMs, work),
    // 1 MiB per response: pg_stat_statements with every text does not fit on real workloads.
    statementPaging: DATA_API_STATEMENT_PAGING,
  });

const unitOf = (name: string) => TARGET_METRIC_UNITS[name] ?? MetricUnit.Count;

/**
 * Builds targets (lazy pools, or the Data API), the repository (REPOSITORY_DATABASE_URL or
 * the primary) and the alerter from config. Opens no connection.
 */
export const createCollectorRuntime = (
  config: Config,
  clients: CollectorClients,
): CollectorRuntime => {
  const { logger, metrics } = clients;
  // The targets' client-side limit follows the collectors' own server-side limits, not the
  // query API's QUERY_MAX_TIMEOUT_MS: a server that stops answering (frozen, or a pooled
  // socket whose path went away in a failover) would otherwise hold a target for 31 s, more
  // than half of collect-metrics' 50 s Lambda timeout, and time out the whole run.
  const readLimitMs = Math.max(config.STATS_READ_TIMEOUT_MS, config.SLOW_QUERY_EXPLAIN_TIMEOUT_MS);
  const dbOptions = {
    ...databaseOptionsFromConfig(config),
    queryTimeoutMs: readLimitMs + CLIENT_TIMEOUT_GRACE_MS,
  };
  const databases: Database[] = [];
  const track = (db: Database): Database => {
    databases.push(db);
    return db;
  };
  const dataApi =
    config.STATS_SOURCE === 'data-api' &&
    clients.rdsData &&
    config.DATA_API_RESOURCE_ARN &&
    config.DATA_API_SECRET_ARN &&
    config.DATA_API_DATABASE
      ? createDataApiQueryable({
          client: clients.rdsData,
          resourceArn: config.DATA_API_RESOURCE_ARN,
          secretArn: config.DATA_API_SECRET_ARN,
          database: config.DATA_API_DATABASE,
        })
      : undefined;
  // With the Data API and no REPOSITORY_DATABASE_URL the collector may run outside the VPC:
  // the repository goes through the Data API too. Its migrations need one session (advisory
  // lock, DDL transactions), which the Data API does not offer: run `dbopt migrate` once.
  const repositoryViaDataApi = dataApi !== undefined && !config.REPOSITORY_DATABASE_URL;
  // The repository (by default the primary itself) hangs with it: its statements are small
  // (a 10k-statement snapshot saves in ~0.2 s), so twice the read limit bounds each of the
  // run's repository calls (load, save, alert states, prune) well inside the Lambda timeout.
  const repositoryDb = track(
    createDatabase(
      {
        ...repositoryDatabaseOptions(config),
        queryTimeoutMs: 2 * readLimitMs + CLIENT_TIMEOUT_GRACE_MS,
      },
      logger,
    ),
  );
  const repository = createRepository(repositoryViaDataApi ? dataApi : lazyQueryable(repositoryDb));
  const targets = statsTargetsFromConfig(config, {
    createDb: (url) =>
      track(createDatabase(url ? { ...dbOptions, connectionString: url } : dbOptions, logger)),
    ...(dataApi
      ? {
          dataApiTarget: (name: string, database: string) =>
            dataApiStatsTarget(name, database, dataApi),
        }
      : {}),
  });
  const settings = statsSettingsFromConfig(config);
  const publisher = createEmfTargetPublisher(metrics, unitOf);
  const alerter = createAlerter({
    // Without ALERT_TOPIC_ARN nothing is published: alerts are logged and returned.
    sns: clients.sns ?? {
      send: () => Promise.reject(new Error('no SNS client: set ALERT_TOPIC_ARN in AWS')),
    },
    topicArn: config.ALERT_TOPIC_ARN,
    store: repository,
    cooldownMs: config.ALERT_COOLDOWN_MS,
    retries: config.ALERT_PUBLISH_RETRIES,
    logger,
    metrics,
  });
  const thresholds = healthThresholdsFromConfig(config);
  let migrated: Promise<void> | undefined;

  const selectTargets = (names?: readonly string[]): readonly StatsTarget[] => {
    if (!names || names.length === 0) return targets;
    const unknown = names.filter((n) => !targets.some((t) => t.name === n));
    if (unknown.length > 0) {
      throw new ValidationError(
        'UNKNOWN_TARGET',
        `Unknown target(s) ${unknown.join(', ')}; configured: ${targets.map((t) => t.name).join(', ')}`,
      );
    }
    return targets.filter((t) => names.includes(t.name));
  };

  return Object.freeze({
    targets,
    ensureRepository: async () => {
      if (repositoryViaDataApi) {
        migrated ??= Promise.resolve().then(() =>
          logger.info(
            'repository through the RDS Data API: migrations are not run from here; run `dbopt migrate` against the cluster once',
          ),
        );
        return true;
      }
      migrated ??= migrateRepository(repositoryDb.pool()).then(
        () => undefined,
        (err: unknown) => {
          migrated = undefined;
          throw err;
        },
      );
      try {
        await migrated;
        return true;
      } catch (err) {
        logger.error('repository unavailable; collecting without history this run', { err });
        return false;
      }
    },
    metricsDeps: (selected = targets) => ({
      targets: selected,
      repository,
      alerter,
      publisher,
      metrics,
      logger,
      thresholds,
      settings,
    }),
    slowQueryDeps: (sql: CollectSlowQueriesDeps['sql'], selected = targets) => ({
      targets: selected,
      repository,
      sql,
      ...(clients.sqs && config.SLOW_QUERY_QUEUE_URL
        ? { sqs: clients.sqs, queueUrl: config.SLOW_QUERY_QUEUE_URL }
        : {}),
      publisher,
      metrics,
      logger,
      settings,
    }),
    selectTargets,
    shutdown: async () => {
      await Promise.all(databases.map((db) => db.end()));
    },
  });
};

/**
 * The EventBridge Scheduler input of both collectors: none / `{}` (every target) or
 * `{ "targets": ["primary", "s1"] }`. Other fields are ignored, so whatever the scheduler
 * adds never fails a run; a malformed `targets` does.
 */
export const CollectEventSchema = z
  .looseObject({
    targets: z.array(z.string().min(1)).min(1).optional(),
  })
  .nullish()
  .transform((v) => v ?? {});

export type CollectEvent = z.output<typeof CollectEventSchema>;

/**
 * middy middleware: validates the scheduler event with {@link CollectEventSchema} and replaces
 * it with the parsed value; a bad event fails the invocation with a ValidationError naming
 * the problem (the scheduler's retry policy and DLQ take it from there).
 */
export const validateCollectEvent = (): MiddlewareObj<unknown, unknown> => ({
  before: (request) => {
    const parsed = CollectEventSchema.safeParse(request.event);
    if (!parsed.success) {
      throw new ValidationError(
        'INVALID_EVENT',
        `Invalid collector event: ${z.prettifyError(parsed.error)}`,
      );
    }
    request.event = parsed.data;
  },
});
