/**
 * Query result cache: L1 in-process (lru-cache) + L2 Redis, validated against per-table
 * versions so a write through the API is never followed by a stale L2 hit. See
 * {@link createResultCache} for the staleness bound. Each cache instance owns its state
 * (L1, single-flight map, circuit breaker); there is no module-level state.
 */

export { CacheOptionsError, CacheUnavailableError } from './errors.ts';
export { bareTableName, deriveEntryKey, versionKeyOf } from './keys.ts';
export { createResultCache } from './result-cache.ts';
export type {
  BypassReason,
  CacheLevel,
  CacheOutcome,
  CacheRedisClient,
  CacheRequest,
  ResultCache,
  ResultCacheOptions,
  ResultCacheStats,
} from './types.ts';

import type { RedisOptions } from 'ioredis';
import type { Config } from '#shared/config';
import type { ResultCacheOptions as CacheOptions } from './types.ts';

/** The cache's tunables from {@link Config}; the caller adds redis, metrics and logger. */
export const cacheSettingsFromConfig = (
  config: Config,
): Omit<CacheOptions, 'redis' | 'metrics' | 'logger'> => ({
  keyPrefix: config.CACHE_KEY_PREFIX,
  l1MaxBytes: config.CACHE_L1_MAX_BYTES,
  l1TtlMs: config.CACHE_L1_TTL_MS,
  defaultTtlMs: config.CACHE_DEFAULT_TTL_MS,
  maxTtlMs: config.CACHE_MAX_TTL_MS,
  maxEntryBytes: config.CACHE_MAX_ENTRY_BYTES,
  lockTtlMs: config.CACHE_LOCK_TTL_MS,
  lockWaitMs: config.CACHE_LOCK_WAIT_MS,
  connectWaitMs: config.REDIS_CONNECT_TIMEOUT_MS,
  breaker: {
    consecutiveFailures: config.CACHE_BREAKER_FAILURES,
    halfOpenAfterMs: config.CACHE_BREAKER_HALF_OPEN_MS,
  },
});

/**
 * ioredis options for the cache's client: connect on first use, fail fast instead of
 * queueing while disconnected (the cache then bypasses to the database), short command
 * timeout. TLS comes from a `rediss://` REDIS_URL (ElastiCache in-transit encryption).
 */
export const redisOptionsFromConfig = (config: Config): RedisOptions => ({
  lazyConnect: true,
  enableOfflineQueue: false,
  commandTimeout: config.REDIS_COMMAND_TIMEOUT_MS,
  connectTimeout: config.REDIS_CONNECT_TIMEOUT_MS,
  maxRetriesPerRequest: 1,
  autoResendUnfulfilledCommands: false,
  retryStrategy: (attempt: number) => Math.min(50 * attempt, 1_000),
});
