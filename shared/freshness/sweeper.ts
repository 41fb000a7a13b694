import { setTimeout as sleep } from 'node:timers/promises';
import type { Database } from '#shared/db';
import { type MetricsSink, MetricUnit } from '#shared/metrics';
import { type CounterSnapshot, detectChangedTables } from './counters.ts';
import { FreshnessError } from './errors.ts';
import type { SnapshotStore } from './snapshot-store.ts';

/** The narrow logging surface the sweeper needs (Powertools Logger satisfies it). */
export interface FreshnessLogger {
  info(message: string, ...extra: unknown[]): void;
  warn(message: string, ...extra: unknown[]): void;
  error(message: string, ...extra: unknown[]): void;
}

export interface SweeperDeps {
  db: Database;
  /** The shard/database these counters belong to; the cache's version keys are per target. */
  target: string;
  store: SnapshotStore;
  /**
   * Invalidates the given bare table names for `target`, e.g.
   * `(tables) => cache.bumpTablesStrict(target, tables)`. Must throw when the bump did not
   * happen: the sweep then keeps the old snapshot and reports the same changes next time.
   */
  bump: (tables: readonly string[]) => Promise<void>;
  metrics: MetricsSink;
  logger: FreshnessLogger;
  /** Server-side limit for the catalog read; default 2 000 ms. */
  timeoutMs?: number;
  /** Watch only these schemas; default every schema. */
  schemas?: readonly string[];
}

export interface SweepResult {
  /** Bare table names whose versions this sweep bumped (sorted). */
  changed: string[];
  /** The statistics were reset or discarded, so every table was bumped. */
  reset: boolean;
  durationMs: number;
}

export interface Sweeper {
  /** One read → bump → save cycle. Rejects with {@link FreshnessError}; saves nothing then. */
  sweepOnce(): Promise<SweepResult>;
}

const DEFAULT_TIMEOUT_MS = 2_000;

/**
 * Builds the out-of-band write detector for one target. Each sweep reads the per-table write
 * counters, bumps the cache versions of the tables that changed since the saved snapshot, and
 * only then saves the new snapshot: a failed bump leaves the old snapshot in place, so a change
 * is reported again until a bump succeeds (at-least-once). Two sweepers racing on one target
 * stay safe for the same reason: whichever snapshot is saved last was bumped by its saver, and
 * everything after it is diffed again.
 *
 * @example
 * const sweeper = createSweeper({
 *   db, target: 'main', store: createRedisSnapshotStore(redis), metrics, logger,
 *   bump: (tables) => cache.bumpTablesStrict('main', tables),
 * });
 * const { changed } = await sweeper.sweepOnce();
 */
export const createSweeper = (deps: SweeperDeps): Sweeper => {
  const readOptions = Object.freeze({
    timeoutMs: deps.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    schemas: Object.freeze([...(deps.schemas ?? [])]),
  });

  const loadPrevious = async (): Promise<CounterSnapshot | undefined> => {
    try {
      return await deps.store.load(deps.target);
    } catch (err) {
      if (!(err instanceof FreshnessError && err.code === 'SNAPSHOT_INVALID')) throw err;
      // Unreadable state is the same as no state: treat every table as changed and overwrite it.
      deps.logger.warn('stored counter snapshot is invalid; treating every table as changed', {
        target: deps.target,
        err,
      });
      deps.metrics.addMetric('SweepSnapshotInvalid', MetricUnit.Count, 1);
      return undefined;
    }
  };

  const sweepOnce = async (): Promise<SweepResult> => {
    const startedAt = performance.now();
    const prev = await loadPrevious();
    const { changed, reset, snapshot } = await detectChangedTables(deps.db, prev, readOptions);
    if (changed.length > 0) {
      try {
        await deps.bump(changed);
      } catch (err) {
        throw new FreshnessError('VERSION_BUMP_FAILED', 'bumping table versions failed', {
          cause: err,
          details: { target: deps.target, tables: changed.length },
        });
      }
    }
    // Unchanged counters need no write: the saved snapshot already equals this one in every
    // compared field. A missing or reset snapshot is always (re)written.
    if (!prev || reset || changed.length > 0) await deps.store.save(deps.target, snapshot);
    const durationMs = performance.now() - startedAt;
    deps.metrics.addMetric('SweepDuration', MetricUnit.Milliseconds, durationMs);
    deps.metrics.addMetric('SweepChangedTables', MetricUnit.Count, changed.length);
    if (reset) {
      deps.metrics.addMetric('SweepStatsResets', MetricUnit.Count, 1);
      deps.logger.warn('table statistics were reset; bumped every table', {
        target: deps.target,
        tables: changed.length,
      });
    } else if (changed.length > 0) {
      deps.logger.info('bumped tables changed outside the query API', {
        target: deps.target,
        tables: changed,
      });
    }
    return { changed, reset, durationMs };
  };

  return Object.freeze({ sweepOnce });
};

/** Sweeps 5 s apart by default: inside the 10 s idle-flush lag of PostgreSQL 15's stats. */
export const DEFAULT_SWEEP_INTERVAL_MS = 5_000;

export type SweepLoopOptions = {
  sweeper: Sweeper;
  /** Start-to-start spacing of sweeps; default {@link DEFAULT_SWEEP_INTERVAL_MS}. */
  intervalMs?: number;
  metrics: MetricsSink;
  logger: FreshnessLogger;
  /** Clock for tests; default `performance.now`. */
  nowMs?: () => number;
} & (
  | {
      /**
       * Milliseconds from the call after which no sweep starts, e.g.
       * `context.getRemainingTimeInMillis() - marginMs`, where the margin covers one sweep
       * (its catalog timeout plus the bump).
       */
      deadlineMs: number;
      signal?: AbortSignal;
    }
  | { deadlineMs?: number; signal: AbortSignal }
);

export interface SweepLoopResult {
  sweeps: number;
  errors: number;
}

/**
 * Sweeps every `intervalMs` until the deadline passes or `signal` aborts. EventBridge
 * Scheduler cannot fire more often than once a minute, so one sweeper Lambda invocation runs
 * this for most of its timeout; local mode runs it in the background with an AbortController.
 * An awaited loop, not setInterval: sweeps never overlap and the loop ends with the invocation.
 * A failed sweep is logged and counted (`SweepErrors`) and the loop goes on.
 *
 * @example
 * await runSweepLoop({
 *   sweeper, metrics, logger,
 *   deadlineMs: context.getRemainingTimeInMillis() - 5_000,
 * });
 */
export const runSweepLoop = async (options: SweepLoopOptions): Promise<SweepLoopResult> => {
  const nowMs = options.nowMs ?? (() => performance.now());
  const intervalMs = options.intervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
  const endMs = nowMs() + (options.deadlineMs ?? Number.POSITIVE_INFINITY);
  const { signal } = options;
  let sweeps = 0;
  let errors = 0;
  while (!signal?.aborted && nowMs() < endMs) {
    const startedMs = nowMs();
    sweeps += 1;
    try {
      await options.sweeper.sweepOnce();
    } catch (err) {
      errors += 1;
      options.metrics.addMetric('SweepErrors', MetricUnit.Count, 1);
      options.logger.error('freshness sweep failed; retrying next interval', { err });
    }
    const nextMs = startedMs + intervalMs;
    if (nextMs >= endMs || signal?.aborted) break;
    const waitMs = nextMs - nowMs();
    if (waitMs > 0) {
      try {
        await sleep(waitMs, undefined, signal ? { signal } : undefined);
      } catch (err) {
        if (!signal?.aborted) throw err;
      }
    }
  }
  return { sweeps, errors };
};
