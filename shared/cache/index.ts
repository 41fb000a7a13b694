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
