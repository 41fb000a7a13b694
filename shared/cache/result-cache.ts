import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  BrokenCircuitError,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleAll,
} from 'cockatiel';
import { LRUCache } from 'lru-cache';
import { MetricUnit } from '#shared/metrics';
import { decodeEntry, encodeEntry } from './entry-format.ts';
import { CacheOptionsError, CacheUnavailableError } from './errors.ts';
import { bareTableNames, deriveEntryKey, lockKeyOf, versionKeyOf } from './keys.ts';
import { createLocalGenerations } from './local-generations.ts';
import {
  bumpVersions,
  prepareLoad,
  readEntry,
  storeEntry,
  versionsMatch,
  WRONG_TYPE,
} from './redis-ops.ts';
import type {
  BypassReason,
  CacheOutcome,
  CacheRedisClient,
  CacheRequest,
  ResultCache,
  ResultCacheOptions,
  ResultCacheStats,
} from './types.ts';

interface L1Entry {
  readonly payload: string;
  /** Local generation counters of the tables read, and their values when stored. */
  readonly genKeys: readonly string[];
  readonly gens: readonly number[];
}

/** What a statement's tables turn into for one target; derived once per statement. */
interface TablePlan {
  readonly bareTables: readonly string[];
  readonly genKeys: readonly string[];
  readonly versionKeys: readonly string[];
}

interface Flight {
  readonly promise: Promise<CacheResult>;
  readonly genKeys: readonly string[];
  readonly gens: readonly number[];
  /** performance.now() when the load began: what its joiners get is as fresh as this. */
  readonly startedAt: number;
}

type CacheResult = { payload: string; outcome: CacheOutcome };

type Attempt<T> = { ok: true; value: T } | { ok: false; reason: BypassReason; error?: unknown };

const OUTCOME_L1: CacheOutcome = Object.freeze({ level: 'l1' });
const OUTCOME_L2: CacheOutcome = Object.freeze({ level: 'l2' });
const OUTCOME_MISS: CacheOutcome = Object.freeze({ level: 'miss' });

const BYPASS_REASONS: readonly BypassReason[] = [
  'redis-unavailable',
  'breaker-open',
  'redis-garbage',
  'too-large',
  'bump-failed',
];
const BYPASS_OUTCOMES = new Map<BypassReason, CacheOutcome>(
  BYPASS_REASONS.map((reason) => [reason, Object.freeze({ level: 'bypass', reason })]),
);
/** `redis-unavailable` → `CacheBypass_RedisUnavailable`: one metric name per reason. */
const BYPASS_METRICS = new Map<BypassReason, string>(
  BYPASS_REASONS.map((reason) => [
    reason,
    `CacheBypass_${reason.replace(/(^|-)([a-z])/g, (_m, _dash, c: string) => c.toUpperCase())}`,
  ]),
);

/** L1 accounting per entry beyond its payload: the key and the per-table bookkeeping. */
const L1_ENTRY_OVERHEAD = 64;
/** First poll of a lock loser, doubling up to the remaining `lockWaitMs`. */
const FIRST_POLL_MS = 5;

const BREAKER_STATE_NAMES = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half-open',
  [CircuitState.Isolated]: 'isolated',
} as const;

const validateOptions = (o: ResultCacheOptions): void => {
  const problems: string[] = [];
  if (!o.keyPrefix || /[{}]/.test(o.keyPrefix)) {
    problems.push('keyPrefix must be non-empty without { or } (hash tags)');
  }
  const positive = {
    l1MaxBytes: o.l1MaxBytes,
    l1TtlMs: o.l1TtlMs,
    defaultTtlMs: o.defaultTtlMs,
    maxTtlMs: o.maxTtlMs,
    maxEntryBytes: o.maxEntryBytes,
    lockTtlMs: o.lockTtlMs,
    'breaker.consecutiveFailures': o.breaker.consecutiveFailures,
    'breaker.halfOpenAfterMs': o.breaker.halfOpenAfterMs,
  };
  for (const [name, value] of Object.entries(positive)) {
    if (!Number.isInteger(value) || value <= 0) problems.push(`${name} must be a positive integer`);
  }
  if (!Number.isInteger(o.lockWaitMs) || o.lockWaitMs < 0) {
    problems.push('lockWaitMs must be an integer ≥ 0');
  }
  if (o.defaultTtlMs > o.maxTtlMs) problems.push('defaultTtlMs must not exceed maxTtlMs');
  if (problems.length > 0) {
    throw new CacheOptionsError(`Invalid result cache options: ${problems.join('; ')}`);
  }
};

/**
 * Creates the read-through result cache: L1 in this process (lru-cache, bounded by size,
 * entries live `l1TtlMs`), L2 in Redis, every entry validated against per-table versions.
 *
 * **Staleness bound** (what a reader can see after a write committed):
 * - Writes through the API (`bumpTables` after commit): never served from L2 again, on any
 *   instance; never from this process's L1; from another instance's L1 for at most
 *   `l1TtlMs`.
 * - Writes that bypass the API: once the sweeper sees them (its interval plus the lag of the
 *   statistics it reads) and calls `bumpTablesStrict`, the same as above. Total bound:
 *   sweeper interval + stats lag + `l1TtlMs`.
 * - If a bump fails (Redis unreachable at that moment): this process stops reading L2
 *   until `maxTtlMs` has passed or a retry of the bump succeeded; other instances may serve
 *   the pre-write result for at most `maxTtlMs + l1TtlMs` (an entry expires at most its TTL
 *   after the versions it carries were read). `CacheBumpFailed` counts these; alarm on it.
 *
 * Redis failures never fail a request: the result comes from `load` with outcome `bypass`.
 * Per-instance state (L1, single-flight map, breaker) is a documented cache, created here.
 *
 * @example
 * const cache = createResultCache({ redis, keyPrefix: 'dbopt', ...limits, metrics, logger });
 * const { payload, outcome } = await cache.getOrLoad(
 *   { sql, params, target: 'main', role: 'app', tablesRead: analysis.tablesRead },
 *   () => runStatement(),
 * );
 */
export const createResultCache = (options: ResultCacheOptions): ResultCache => {
  validateOptions(options);
  const { redis, keyPrefix, metrics, logger, maxTtlMs, maxEntryBytes, lockWaitMs } = options;
  const connectWaitMs = options.connectWaitMs ?? 1000;

  const l1 = new LRUCache<string, L1Entry>({
    maxSize: options.l1MaxBytes,
    maxEntrySize: Math.min(options.l1MaxBytes, maxEntryBytes + L1_ENTRY_OVERHEAD * 8),
    sizeCalculation: (e) => e.payload.length + L1_ENTRY_OVERHEAD * (1 + e.genKeys.length),
    ttl: options.l1TtlMs,
    // 0: read the clock on each check instead of caching it behind a timer.
    ttlResolution: 0,
    updateAgeOnGet: false,
  });
  const generations = createLocalGenerations();
  /**
   * Documented cache: derived table names and keys per `tablesRead` array. shared/sql hands
   * out one frozen analysis per SQL text, so the same array comes back for every request of
   * a statement; the WeakMap lets it go when the analyzer evicts it.
   */
  const plans = new WeakMap<readonly string[], Map<string, TablePlan>>();
  const planOf = (tablesRead: readonly string[], target: string): TablePlan => {
    let byTarget = plans.get(tablesRead);
    if (!byTarget) {
      byTarget = new Map();
      plans.set(tablesRead, byTarget);
    }
    let plan = byTarget.get(target);
    if (!plan) {
      const bareTables = bareTableNames(tablesRead);
      plan = Object.freeze({
        bareTables,
        genKeys: bareTables.map((t) => generations.keyOf(target, t)),
        versionKeys: bareTables.map((t) => versionKeyOf(keyPrefix, target, t)),
      });
      byTarget.set(target, plan);
    }
    return plan;
  };
  const flights = new Map<string, Flight>();
  const breaker = circuitBreaker(handleAll, {
    halfOpenAfter: options.breaker.halfOpenAfterMs,
    breaker: new ConsecutiveBreaker(options.breaker.consecutiveFailures),
  });
  /** Memoised first connection of a lazily connected client. */
  let connecting: Promise<void> | undefined;
  /** performance.now() until which L2 is not read (after a failed bump); 0 = trusted. */
  let distrustUntil = 0;
  /** Counts failed bumps, so a retry can tell whether a new failure arrived while it ran. */
  let failedBumps = 0;
  /** Version bumps that failed, per target, retried before L2 is trusted again. */
  const pendingBumps = new Map<string, Set<string>>();
  const counts = {
    l1Hits: 0,
    l2Hits: 0,
    misses: 0,
    loads: 0,
    bypasses: Object.fromEntries(BYPASS_REASONS.map((r) => [r, 0])) as Record<BypassReason, number>,
  };

  // ---- Redis access: readiness, breaker, failure classification --------------------------

  const waitForConnection = async (client: CacheRedisClient): Promise<void> => {
    if (client.status === 'wait' && !connecting) {
      connecting = client.connect().finally(() => {
        connecting = undefined;
      });
    }
    if (!connecting) throw new Error(`Redis connection is ${client.status}`);
    const timeout = new AbortController();
    try {
      await Promise.race([
        connecting,
        sleep(connectWaitMs, undefined, { signal: timeout.signal }).then(() => {
          throw new Error(`Redis did not connect within ${connectWaitMs} ms`);
        }),
      ]);
    } finally {
      timeout.abort();
    }
  };

  /** Runs `fn` when the client is ready; never queues behind a reconnect (fails instead). */
  const withClient = <T>(client: CacheRedisClient, fn: (c: CacheRedisClient) => Promise<T>) =>
    client.status === 'ready' ? fn(client) : waitForConnection(client).then(() => fn(client));

  const attempt = async <T>(fn: (c: CacheRedisClient) => Promise<T>): Promise<Attempt<T>> => {
    if (!redis) return { ok: false, reason: 'redis-unavailable' };
    // Half-open lets one trial call through; the others must not wait for it.
    if (breaker.state === CircuitState.HalfOpen) return { ok: false, reason: 'breaker-open' };
    try {
      return { ok: true, value: await breaker.execute(() => withClient(redis, fn)) };
    } catch (error) {
      if (error instanceof BrokenCircuitError) return { ok: false, reason: 'breaker-open' };
      return { ok: false, reason: 'redis-unavailable', error };
    }
  };

  // ---- Outcome bookkeeping -----------------------------------------------------------------

  const recordHit = (level: 'l1' | 'l2', startedAt: number): void => {
    const ms = performance.now() - startedAt;
    if (level === 'l1') {
      counts.l1Hits += 1;
      metrics.addMetric('CacheHitL1', MetricUnit.Count, 1);
      metrics.addMetric('CacheHitLatencyL1', MetricUnit.Milliseconds, ms);
    } else {
      counts.l2Hits += 1;
      metrics.addMetric('CacheHitL2', MetricUnit.Count, 1);
      metrics.addMetric('CacheHitLatencyL2', MetricUnit.Milliseconds, ms);
    }
  };

  const bypass = (reason: BypassReason): CacheOutcome => {
    counts.bypasses[reason] += 1;
    metrics.addMetric('CacheBypass', MetricUnit.Count, 1);
    metrics.addMetric(BYPASS_METRICS.get(reason) as string, MetricUnit.Count, 1);
    return BYPASS_OUTCOMES.get(reason) as CacheOutcome;
  };

  const miss = (): CacheOutcome => {
    counts.misses += 1;
    metrics.addMetric('CacheMiss', MetricUnit.Count, 1);
    return OUTCOME_MISS;
  };

  /** String length undercounts multi-byte characters; measure bytes only when it matters. */
  const fitsEntry = (payload: string): boolean =>
    payload.length <= maxEntryBytes &&
    (payload.length * 3 <= maxEntryBytes || Buffer.byteLength(payload) <= maxEntryBytes);

  /**
   * Keeps a payload in L1 until `l1TtlMs` after `freshAsOf` (performance.now() of the moment
   * the data was known current: a load's start, or the start of the Redis read that validated
   * it), not after it was stored: a slow load must not extend the staleness bound. A load
   * that overlapped a local write would be dead on arrival; it is not kept.
   */
  const keepInL1 = (
    key: string,
    payload: string,
    genKeys: readonly string[],
    gens: readonly number[],
    freshAsOf: number,
  ): void => {
    const ttl = Math.floor(options.l1TtlMs - (performance.now() - freshAsOf));
    if (ttl > 0 && generations.unchanged(genKeys, gens)) {
      l1.set(key, { payload, genKeys, gens }, { ttl });
    }
  };

  const runLoad = async (load: () => Promise<string>): Promise<string> => {
    counts.loads += 1;
    return load();
  };

  // ---- Version bumps -----------------------------------------------------------------------

  const bumpRemote = async (target: string, bareTables: readonly string[]): Promise<void> => {
    if (!redis) return;
    const keys = bareTables.map((t) => versionKeyOf(keyPrefix, target, t));
    // A bump is worth a try even with the breaker open: a failure costs at most one command
    // timeout on a write, while a lost bump costs freshness. It never waits for a reconnect.
    if (breaker.state === CircuitState.Closed) {
      const result = await attempt((c) => bumpVersions(c, keys));
      if (!result.ok) throw result.error ?? new Error(`Redis bump skipped: ${result.reason}`);
    } else {
      await withClient(redis, (c) => bumpVersions(c, keys));
    }
  };

  const rememberFailedBump = (target: string, bareTables: readonly string[], error: unknown) => {
    failedBumps += 1;
    distrustUntil = performance.now() + maxTtlMs;
    const pending = pendingBumps.get(target) ?? new Set<string>();
    for (const t of bareTables) pending.add(t);
    pendingBumps.set(target, pending);
    metrics.addMetric('CacheBumpFailed', MetricUnit.Count, 1);
    logger.warn(
      `Result cache: table version bump failed; this instance bypasses L2 for up to ${maxTtlMs} ms`,
      { target, tables: bareTables, error },
    );
  };

  /** True when L2 may be read: no failed bump, or all of them now retried successfully. */
  const trustL2 = async (): Promise<boolean> => {
    if (distrustUntil === 0) return true;
    if (performance.now() >= distrustUntil) {
      // Every entry that could predate a lost bump has expired by now.
      distrustUntil = 0;
      pendingBumps.clear();
      return true;
    }
    // A bump that fails while this retry is in flight may name the same tables again: only
    // forget pending tables (and the distrust) if no failure arrived meanwhile.
    const failuresBefore = failedBumps;
    for (const [target, tables] of [...pendingBumps]) {
      const sent = [...tables];
      try {
        await bumpRemote(target, sent);
      } catch {
        return false;
      }
      if (failedBumps !== failuresBefore) return false;
      for (const t of sent) tables.delete(t);
      if (tables.size === 0) pendingBumps.delete(target);
    }
    if (failedBumps !== failuresBefore) return false;
    distrustUntil = 0;
    return true;
  };

  const bump = async (target: string, tables: readonly string[]): Promise<void> => {
    const bare = bareTableNames(tables);
    // Local first, unconditionally: this process's L1 never serves the pre-write result.
    generations.bump(bare.map((t) => generations.keyOf(target, t)));
    try {
      await bumpRemote(target, bare);
    } catch (error) {
      rememberFailedBump(target, bare, error);
      throw new CacheUnavailableError(
        `Could not bump the cache versions of ${bare.join(', ')} on ${target}; retry the bump`,
        { cause: error, details: { target, tables: bare } },
      );
    }
  };

  // ---- Read path -----------------------------------------------------------------------------

  /** Polls for the entry another instance is loading; undefined when it did not appear. */
  const waitForPeer = async (
    key: string,
    versionKeys: readonly string[],
  ): Promise<string | undefined> => {
    const deadline = performance.now() + lockWaitMs;
    let delayMs = FIRST_POLL_MS;
    for (;;) {
      const remainingMs = deadline - performance.now();
      if (remainingMs <= 0) return undefined;
      await sleep(Math.min(delayMs, remainingMs));
      delayMs *= 2;
      const read = await attempt((c) => readEntry(c, key, versionKeys));
      if (!read.ok) return undefined;
      const { raw, versions } = read.value;
      if (typeof raw !== 'string') continue;
      const entry = decodeEntry(raw, versionKeys.length);
      if (entry && versionsMatch(entry.versions, versions)) return entry.payload;
    }
  };

  const resolve = async (
    key: string,
    request: CacheRequest,
    plan: TablePlan,
    gens: readonly number[],
    load: () => Promise<string>,
    startedAt: number,
  ): Promise<CacheResult> => {
    const { bareTables, genKeys, versionKeys } = plan;
    /** Loads without L2; the result still goes to L1, which is bounded by `l1TtlMs`. */
    const loadLocally = async (reason?: BypassReason, error?: unknown): Promise<CacheResult> => {
      if (error !== undefined) logger.warn('Result cache bypassed: Redis call failed', { error });
      const loadStartedAt = performance.now();
      const payload = await runLoad(load);
      if (!fitsEntry(payload)) return { payload, outcome: bypass('too-large') };
      keepInL1(key, payload, genKeys, gens, loadStartedAt);
      return { payload, outcome: reason ? bypass(reason) : miss() };
    };

    if (!redis) return loadLocally();
    if (distrustUntil !== 0 && !(await trustL2())) return loadLocally('bump-failed');

    // When the versions a new entry would carry were read (they come from this read, or from
    // the repair just after it): the entry's TTL counts from here.
    const versionsReadAt = performance.now();
    const versionsReadAtMs = Date.now();
    const read = await attempt((c) => readEntry(c, key, versionKeys));
    if (!read.ok) return loadLocally(read.reason, read.error);

    let garbage = false;
    const { raw } = read.value;
    if (raw !== null) {
      const entry = raw === WRONG_TYPE ? undefined : decodeEntry(raw, bareTables.length);
      if (!entry) {
        garbage = true;
        metrics.addMetric('CacheGarbage', MetricUnit.Count, 1);
      } else if (versionsMatch(entry.versions, read.value.versions)) {
        keepInL1(key, entry.payload, genKeys, gens, versionsReadAt);
        recordHit('l2', startedAt);
        return { payload: entry.payload, outcome: OUTCOME_L2 };
      }
    }

    // Miss. The versions stored with the new entry were read above, before the query runs: a
    // write that commits during the load makes the entry stale on arrival, never served.
    const lock = { key: lockKeyOf(key), token: randomUUID(), ttlMs: options.lockTtlMs };
    const prepared = await attempt((c) =>
      prepareLoad(c, lockWaitMs > 0 ? lock : undefined, versionKeys, read.value.versions),
    );
    if (!prepared.ok) return loadLocally(prepared.reason, prepared.error);
    const { locked, versions } = prepared.value;

    if (lockWaitMs > 0 && !locked) {
      const waitStartedAt = performance.now();
      const peerPayload = await waitForPeer(key, versionKeys);
      if (peerPayload !== undefined) {
        metrics.addMetric('CacheLockWaitHit', MetricUnit.Count, 1);
        keepInL1(key, peerPayload, genKeys, gens, waitStartedAt);
        recordHit('l2', startedAt);
        return { payload: peerPayload, outcome: OUTCOME_L2 };
      }
    }

    const heldLock = locked ? lock : undefined;
    let payload: string;
    const loadStartedAt = performance.now();
    try {
      payload = await runLoad(load);
    } catch (error) {
      if (heldLock) await attempt((c) => storeEntry(c, undefined, heldLock));
      throw error;
    }

    const fits = fitsEntry(payload);
    // The entry expires at most its TTL after its versions were read, not after the load:
    // that bounds how long an entry can outlive a lost bump (see the staleness bound).
    const requestedTtlMs = Math.min(Math.max(1, request.ttlMs ?? options.defaultTtlMs), maxTtlMs);
    const ttlMs = Math.floor(requestedTtlMs - (performance.now() - versionsReadAt));
    const entry =
      fits && ttlMs > 0
        ? {
            key,
            ttlMs,
            value: encodeEntry({ payload, versions, versionsReadAtMs }),
          }
        : undefined;
    if (entry || heldLock) {
      const stored = await attempt((c) => storeEntry(c, entry, heldLock));
      if (!stored.ok) {
        metrics.addMetric('CacheStoreFailed', MetricUnit.Count, 1);
        logger.warn('Result cache: storing an entry failed', {
          reason: stored.reason,
          error: stored.error,
        });
      } else if (entry) {
        metrics.addMetric('CacheBytesStored', MetricUnit.Bytes, entry.value.length);
      }
    }
    if (!fits) return { payload, outcome: bypass('too-large') };
    keepInL1(key, payload, genKeys, gens, loadStartedAt);
    return { payload, outcome: garbage ? bypass('redis-garbage') : miss() };
  };

  return Object.freeze({
    getOrLoad: (request: CacheRequest, load: () => Promise<string>): Promise<CacheResult> => {
      const startedAt = performance.now();
      const key = deriveEntryKey(keyPrefix, request);
      const cached = l1.get(key);
      if (cached !== undefined) {
        if (generations.unchanged(cached.genKeys, cached.gens)) {
          recordHit('l1', startedAt);
          return Promise.resolve({ payload: cached.payload, outcome: OUTCOME_L1 });
        }
        l1.delete(key);
      }
      // Single flight: join a load of this key unless a local write happened since it began.
      // Joining a load serves data as fresh as the load's start: only join young loads, so a
      // joiner never gets a result older than the L1 bound allows.
      const flight = flights.get(key);
      if (
        flight &&
        startedAt - flight.startedAt < options.l1TtlMs &&
        generations.unchanged(flight.genKeys, flight.gens)
      ) {
        return flight.promise;
      }

      const plan = planOf(request.tablesRead, request.target);
      const gens = generations.current(plan.genKeys);
      const promise = resolve(key, request, plan, gens, load, startedAt);
      const entry: Flight = { promise, genKeys: plan.genKeys, gens, startedAt };
      flights.set(key, entry);
      const forget = () => {
        if (flights.get(key) === entry) flights.delete(key);
      };
      // Side branch: the caller awaits `promise` itself, with no extra hops on the hot path.
      promise.then(forget, forget);
      return promise;
    },

    bumpTables: async (target: string, tables: readonly string[]): Promise<void> => {
      try {
        await bump(target, tables);
      } catch {
        // Already logged, counted and turned into L2 distrust by bump().
      }
    },

    bumpTablesStrict: (target: string, tables: readonly string[]): Promise<void> =>
      bump(target, tables),

    stats: (): ResultCacheStats => ({
      l1Entries: l1.size,
      l1Size: l1.calculatedSize,
      inFlight: flights.size,
      breaker: BREAKER_STATE_NAMES[breaker.state],
      distrustRemainingMs:
        distrustUntil === 0 ? 0 : Math.max(0, Math.ceil(distrustUntil - performance.now())),
      pendingBumps: [...pendingBumps.values()].reduce((n, s) => n + s.size, 0),
      l1Hits: counts.l1Hits,
      l2Hits: counts.l2Hits,
      misses: counts.misses,
      loads: counts.loads,
      bypasses: { ...counts.bypasses },
    }),
  });
};
