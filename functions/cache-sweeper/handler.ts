import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { Redis } from 'ioredis';
import { cacheSettingsFromConfig, createResultCache, redisOptionsFromConfig } from '#shared/cache';
import { loadConfig, shardUrlsOf } from '#shared/config';
import { createDatabase, databaseOptionsFromConfig } from '#shared/db';
import { ConfigError } from '#shared/errors';
import { createRedisSnapshotStore, createSweeper, runSweepLoop } from '#shared/freshness';

// Once per cold start. The sweeper bumps the cache's table versions for writes that bypassed
// the query API, so it needs the same Redis and key prefix as the query function.
const config = loadConfig();
if (!config.REDIS_URL) throw new ConfigError('REDIS_URL is required by the cache sweeper');
const logger = new Logger({ serviceName: config.SERVICE_NAME, logLevel: config.LOG_LEVEL });
const metrics = new Metrics({
  namespace: config.METRICS_NAMESPACE,
  serviceName: config.SERVICE_NAME,
});
const dbOptions = databaseOptionsFromConfig(config);
const redis = new Redis(config.REDIS_URL, redisOptionsFromConfig(config));
redis.on('error', (err: Error) => logger.warn('redis connection error', { reason: err.message }));
const cache = createResultCache({ ...cacheSettingsFromConfig(config), redis, metrics, logger });
const store = createRedisSnapshotStore(redis, {
  keyPrefix: `${config.CACHE_KEY_PREFIX}:freshness:snapshot`,
});
// Every target the query API caches for: the primary (CACHE_TARGET) and each shard.
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

/** Time kept back at the end of an invocation for the last sweep and the metrics flush. */
const END_MARGIN_MS = 5_000;

/** Sweeps every CACHE_SWEEP_INTERVAL_MS until `signal` aborts (local mode) or the deadline. */
export const runSweeps = async (limit: { signal: AbortSignal } | { deadlineMs: number }) => {
  // The client connects lazily and queues nothing offline: connect before the first sweep.
  // A failed connect is not fatal; ioredis keeps retrying and the next sweep tries again.
  if (redis.status === 'wait') {
    await redis
      .connect()
      .catch((err: Error) => logger.warn('redis connect failed', { reason: err.message }));
  }
  return runSweepLoop({
    sweeper,
    intervalMs: config.CACHE_SWEEP_INTERVAL_MS,
    metrics,
    logger,
    ...limit,
  });
};

/** EventBridge Scheduler, every minute: sweep for (almost) the whole invocation. */
export const handler = middy(async (_event: unknown, context: Context) =>
  runSweeps({ deadlineMs: context.getRemainingTimeInMillis() - END_MARGIN_MS }),
)
  .use(injectLambdaContext(logger))
  .use(logMetrics(metrics));

export const shutdown = async (): Promise<void> => {
  redis.disconnect();
  await Promise.all(targets.map(({ db }) => db.end()));
};
