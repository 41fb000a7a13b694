import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { Redis } from 'ioredis';
import { redisOptionsFromConfig } from '#shared/cache';
import type { Config } from '#shared/config';
import { createDatabase, databaseOptionsFromConfig } from '#shared/db';
import {
  createQueryCacheDeps,
  createQueryReplicas,
  createQueryShards,
  queryPolicyFromConfig,
  targetGuardOptionsFromConfig,
} from '#shared/query';
import { createTargetGuard } from '#shared/resilience';
import { createSqlAnalyzer } from '#shared/sql';

/**
 * The query function's clients, built once per cold start (the handler module's job, kept
 * beside it so the handler itself stays a thin adapter). Pools connect lazily; Redis is
 * optional (no REDIS_URL: L1 only).
 */
export const createQueryRuntime = (
  config: Config,
  clients: { logger: Logger; metrics: Metrics },
) => {
  const { logger, metrics } = clients;
  const dbOptions = databaseOptionsFromConfig(config);
  const db = createDatabase(dbOptions, logger);
  const redis =
    config.CACHE_ENABLED && config.REDIS_URL
      ? new Redis(config.REDIS_URL, redisOptionsFromConfig(config))
      : undefined;
  // Without a listener ioredis prints connection errors itself; the cache already degrades.
  redis?.on('error', (err: Error) =>
    logger.warn('redis connection error', { reason: err.message }),
  );
  const guardOf = (target: string) =>
    createTargetGuard(target, targetGuardOptionsFromConfig(config), { metrics, logger });
  const deps = {
    db,
    guard: guardOf('primary'),
    sql: createSqlAnalyzer({ cacheEntries: config.SQL_PARSE_CACHE_ENTRIES }),
    policy: queryPolicyFromConfig(config),
    metrics,
    cache: createQueryCacheDeps(config, { redis, metrics, logger }),
    shards: createQueryShards(
      config,
      (url) => createDatabase({ ...dbOptions, connectionString: url }, logger),
      guardOf,
    ),
    replicas: createQueryReplicas(
      config,
      (url, o) => createDatabase({ ...dbOptions, connectionString: url, ...o }, logger),
      guardOf,
      { metrics },
    ),
  };
  /** Closes every pool and Redis; local mode calls it on Ctrl-C. Lambda never needs it. */
  const shutdown = async (): Promise<void> => {
    redis?.disconnect();
    const replicaDbs = [...(deps.replicas?.values() ?? [])].flatMap((set) =>
      set.replicas.map((r) => r.db),
    );
    await Promise.all(
      [db, ...(deps.shards?.databases.values() ?? []), ...replicaDbs].map((d) => d.end()),
    );
  };
  return { deps, shutdown };
};
