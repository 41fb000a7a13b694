import { advisorOptionsFromConfig } from '#shared/advisor';
import type { SnsPublisher } from '#shared/alerts';
import { type Config, shardUrlsOf } from '#shared/config';
import {
  createDatabase,
  type Database,
  databaseOptionsFromConfig,
  type Queryable,
} from '#shared/db';
import type { MetricsSink } from '#shared/metrics';
import { createRepository, migrateRepository, repositoryDatabaseOptions } from '#shared/repository';
import type { OptimizerDeps, OptimizerLogger, OptimizerSettings } from './optimize.ts';

/** The optimizer's settings from the config (defaults live in the schema). */
export const optimizerSettingsFromConfig = (config: Config): OptimizerSettings => ({
  advisor: advisorOptionsFromConfig(config),
  workloadStatements: config.OPTIMIZER_WORKLOAD_STATEMENTS,
  hygieneMinIndexAgeDays: config.HYGIENE_MIN_INDEX_AGE_DAYS,
  autoApply: config.ADVISOR_AUTO_APPLY,
  applyLimits: {
    lockTimeoutMs: config.APPLY_LOCK_TIMEOUT_MS,
    maxIndexBytes: config.APPLY_MAX_INDEX_BYTES,
    maxBuildMs: config.APPLY_MAX_BUILD_MS,
  },
  recheckMinCalls: config.APPLY_RECHECK_MIN_CALLS,
});

/** Where new suggestions are announced: SUGGESTION_TOPIC_ARN, else ALERT_TOPIC_ARN. */
export const suggestionTopicOf = (config: Config): string | undefined =>
  config.SUGGESTION_TOPIC_ARN ?? config.ALERT_TOPIC_ARN;

export interface OptimizerRuntime {
  readonly deps: OptimizerDeps;
  /** Runs the repository migrations once (memoised; a failure is retried on the next call). */
  ensureRepository(): Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * Builds the optimizer's dependencies from config: one lazy pool per target on the DB
 * endpoint (ADVISOR_DATABASE_URL for the primary, else its DATABASE_URL/DB_*; SHARD_URLS for
 * shards), the repository and the announcer. Opens no connection.
 */
export const createOptimizerRuntime = (
  config: Config,
  clients: {
    logger: OptimizerLogger;
    metrics?: MetricsSink;
    sns?: SnsPublisher;
    sleep: (ms: number) => Promise<void>;
  },
): OptimizerRuntime => {
  const dbOptions = databaseOptionsFromConfig(config);
  const databases: Database[] = [];
  const track = (db: Database): Database => {
    databases.push(db);
    return db;
  };
  const primaryUrl = config.ADVISOR_DATABASE_URL;
  const targets = new Map<string, Database>([
    [
      config.CACHE_TARGET,
      track(
        createDatabase(
          primaryUrl ? { ...dbOptions, connectionString: primaryUrl } : dbOptions,
          clients.logger,
        ),
      ),
    ],
  ]);
  for (const [name, url] of Object.entries(shardUrlsOf(config))) {
    if (!targets.has(name))
      targets.set(
        name,
        track(createDatabase({ ...dbOptions, connectionString: url }, clients.logger)),
      );
  }
  const repositoryDb = track(createDatabase(repositoryDatabaseOptions(config), clients.logger));
  const repositoryQueryable: Queryable = {
    query: (sql, params) => repositoryDb.pool().query(sql, params) as never,
  };
  const topicArn = suggestionTopicOf(config);
  let migrated: Promise<unknown> | undefined;
  return Object.freeze({
    deps: {
      databaseFor: (target: string) => targets.get(target),
      repository: createRepository(repositoryQueryable),
      ...(clients.sns && topicArn
        ? {
            announce: {
              sns: clients.sns,
              topicArn,
              retries: config.ALERT_PUBLISH_RETRIES,
              sleep: clients.sleep,
            },
          }
        : {}),
      logger: clients.logger,
      ...(clients.metrics ? { metrics: clients.metrics } : {}),
      settings: optimizerSettingsFromConfig(config),
    },
    ensureRepository: async () => {
      migrated ??= migrateRepository(repositoryDb.pool()).catch((err: unknown) => {
        migrated = undefined;
        throw err;
      });
      await migrated;
    },
    shutdown: async () => {
      await Promise.all(databases.map((db) => db.end()));
    },
  });
};
