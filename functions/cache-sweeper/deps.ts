import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { Redis } from 'ioredis';
import { cacheSettingsFromConfig, createResultCache, redisOptionsFromConfig } from '#shared/cache';
import { type Config, shardUrlsOf } from '#shared/config';
import { createDatabase, databaseOptionsFromConfig } from '#shared/db';
import { ConfigError } from '#shared/errors';
import { createRedisSnapshotStore, createSweeper } from '#shared/freshness';

/**
 * The sweeper's clients, built once per cold start. It bumps the cache's table versions for
 * writes that bypassed the query API, so it needs the same Redis and key prefix as the query
 * function, and it sweeps every target the query API caches for: the primary
 * (CACHE_TARGET) and each shard.
 */
export const createSweeperRuntime = (
  config: Config,
  clients: { logger: Logger; metrics: Metrics },
) => {
  const { logger, metrics } = clients;
  if (!config.REDIS_URL) throw new ConfigError('REDIS_URL is required by the cache sweeper');
  const dbOptions = databaseOptionsFromConfig(config);
  const redis = new Redis(config.REDIS_URL, redisOptionsFromConfig(config));
  redis.on('error', (err: Error) => logger.warn('redis connection error', { reason: err.message }));
  const cache = createResultCache({ ...cacheSettingsFromConfig(config), redis, metrics, logger });
  const store = createRedisSnapshotStore(redis, {
    keyPrefix: `${config.CACHE_KEY_PREFIX}:freshness:snapshot`,
  });
  const targets = [
    { name: config.CACHE_TARGET, db: createDatabase(dbOptions, logger) },
    ...Object.entries(shardUrlsOf(config)).map(([name, url]) => ({
      name,
      db: createDatabase({ ...dbOptions, connectionString: url }, logger),
    })),
  ];
  const sweepers = targets.map(({ name, db }) =>
    createSweeper({
      db,
      target: name,
      store,
      bump: (tables) => cache.bumpTablesStrict(name, tables),
      metrics,
      logger,
    }),
  );
  /** One sweep of every target, in parallel; a failing target fails this sweep (retried next). */
  const sweeper = {
    sweepOnce: async () => {
      const results = await Promise.all(sweepers.map((s) => s.sweepOnce()));
      return {
        changed: results.flatMap((r, i) => r.changed.map((t) => `${targets[i]?.name}:${t}`)),
        reset: results.some((r) => r.reset),
        durationMs: Math.max(...results.map((r) => r.durationMs)),
      };
    },
  };
  const shutdown = async (): Promise<void> => {
    redis.disconnect();
    await Promise.all(targets.map(({ db }) => db.end()));
  };
  return { redis, sweeper, shutdown };
};
