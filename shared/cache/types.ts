import type { Redis } from 'ioredis';
import type { MetricsSink } from '#shared/metrics';

/**
 * The part of an ioredis client the cache uses (STYLE.md rule 4). A `Redis` instance
 * satisfies it; construct it with `lazyConnect`, `enableOfflineQueue: false` and a short
 * `commandTimeout` (see README "Result cache").
 */
export type CacheRedisClient = Pick<Redis, 'status' | 'connect' | 'pipeline' | 'eval'>;

export interface ResultCacheOptions {
  /** L2. `undefined` → L1 only (local mode without REDIS_URL). */
  redis?: CacheRedisClient;
  /** Namespace of every Redis key, e.g. `dbopt`. Must not contain `{` or `}` (hash tags). */
  keyPrefix: string;
  /** Bound of L1 (lru-cache `maxSize`), counted in payload characters. */
  l1MaxBytes: number;
  /**
   * Lifetime of an L1 entry. L1 entries are not re-validated against Redis, so this is part
   * of the staleness bound for writes made on other instances.
   */
  l1TtlMs: number;
  /** L2 entry TTL when the request names none. */
  defaultTtlMs: number;
  /**
   * Longest L2 entry TTL; a request's `ttlMs` is clamped to it. Also how long this process
   * distrusts L2 after a failed version bump.
   */
  maxTtlMs: number;
  /** Larger payloads are served but not cached (outcome `bypass`, reason `too-large`). */
  maxEntryBytes: number;
  /** Lifetime of the cross-instance stampede lock; keep it above a typical load time. */
  lockTtlMs: number;
  /**
   * How long a request waits for another instance's load of the same key before loading
   * itself. 0 disables the cross-instance lock (single flight stays per process).
   */
  lockWaitMs: number;
  /** Longest wait for the first connection of a lazily connected client. Default 1000. */
  connectWaitMs?: number;
  breaker: { consecutiveFailures: number; halfOpenAfterMs: number };
  metrics: MetricsSink;
  logger: { warn(message: string, ...extra: unknown[]): void };
}

/**
 * Why a result was not served from, or not written to, the cache:
 * - `redis-unavailable`: a Redis call failed or timed out (the request still succeeds).
 * - `breaker-open`: Redis failed repeatedly; no call is attempted until the breaker half-opens.
 * - `redis-garbage`: the stored value was not an entry of ours; it is overwritten.
 * - `too-large`: the payload is over `maxEntryBytes`; it is served but not stored.
 * - `bump-failed`: a version bump of this process failed, so L2 is distrusted for `maxTtlMs`.
 */
export type BypassReason =
  | 'redis-unavailable'
  | 'breaker-open'
  | 'redis-garbage'
  | 'too-large'
  | 'bump-failed';

export type CacheLevel = 'l1' | 'l2' | 'miss' | 'bypass';

/** Where a result came from; `reason` is set exactly when `level` is `bypass`. */
export type CacheOutcome = { readonly level: CacheLevel; readonly reason?: BypassReason };

export interface CacheRequest {
  sql: string;
  /** Bound values (JSON values); `1` and `'1'` are different keys. */
  params: readonly unknown[];
  /** Database the statement runs on (shard or database id). */
  target: string;
  /** Database role the statement runs as. */
  role: string;
  /**
   * Tables the statement reads, as shared/sql names them (`SqlAnalysis.tablesRead`). Treated
   * as immutable: derived keys are cached per array.
   */
  tablesRead: readonly string[];
  /** L2 TTL for this entry; clamped to [1, maxTtlMs]. Default `defaultTtlMs`. */
  ttlMs?: number;
  /** Anything else the payload depends on, e.g. `maxRows=100`. Part of the key. */
  variant?: string;
}

export interface ResultCacheStats {
  l1Entries: number;
  /** Sum of L1 entry sizes (payload characters plus per-table overhead). */
  l1Size: number;
  inFlight: number;
  breaker: 'closed' | 'open' | 'half-open' | 'isolated';
  /** Milliseconds this process still distrusts L2 after a failed bump; 0 when it trusts it. */
  distrustRemainingMs: number;
  pendingBumps: number;
  l1Hits: number;
  l2Hits: number;
  misses: number;
  bypasses: Readonly<Record<BypassReason, number>>;
  /** Calls of `load` (the database). */
  loads: number;
}

export interface ResultCache {
  /**
   * Returns the cached payload or runs `load` (the database) and caches what it returns.
   * Never fails because of Redis; errors of `load` reach the caller unchanged.
   */
  getOrLoad(
    request: CacheRequest,
    load: () => Promise<string>,
  ): Promise<{ payload: string; outcome: CacheOutcome }>;
  /**
   * Call after a write through the API committed: bumps the versions of `tables` (names as
   * shared/sql gives them) so no instance serves an L2 entry that read them, and drops this
   * process's L1 entries that read them. Never throws; a failure is logged, counted
   * (`CacheBumpFailed`) and makes this process distrust L2 for `maxTtlMs`.
   */
  bumpTables(target: string, tables: readonly string[]): Promise<void>;
  /**
   * Same as {@link ResultCache.bumpTables} for out-of-band writes found by the sweeper, but
   * throws {@link CacheUnavailableError} so the caller retries (and keeps its watermark).
   */
  bumpTablesStrict(target: string, tables: readonly string[]): Promise<void>;
  /** Counters and state, for tests, the bench and metrics. */
  stats(): ResultCacheStats;
}
