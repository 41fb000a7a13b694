/**
 * Freshness: detects writes that bypass the query API (psql, migrations, other services) from
 * PostgreSQL's per-table write counters, so the result cache can invalidate them within a
 * bound. Snapshot → diff → publish (STYLE.md rule 13): read `pg_stat_user_tables`, diff against
 * the saved snapshot, bump the changed tables' versions, then save.
 *
 * Staleness bound for an out-of-band write, from its COMMIT to the cache no longer serving the
 * old result (PostgreSQL 15, measured on the test cluster):
 *
 *   flushLag + intervalMs + sweepDuration + L1 TTL (+ the gap between sweeper invocations)
 *
 * flushLag is how long the writer's backend keeps its counters private: ~0 when it has not
 * flushed in the last second or when it disconnects, ≤ 1 s while it keeps running statements
 * (PGSTAT_MIN_INTERVAL), ≤ 10 s when it goes idle right after a write that fell inside that
 * second (PGSTAT_IDLE_INTERVAL). Only under lock contention on the shared stats can a busy
 * backend defer up to 60 s (PGSTAT_MAX_INTERVAL).
 */
export {
  type ChangeDetection,
  type CounterSnapshot,
  detectChangedTables,
  diffTableCounters,
  type ReadCountersOptions,
  readCounterSnapshot,
  STATS_EPOCH_SQL,
  type StatsEpoch,
  TABLE_COUNTERS_SQL,
  type TableChanges,
  type TableCounters,
} from './counters.ts';
export { FreshnessError } from './errors.ts';
export {
  createMemorySnapshotStore,
  createRedisSnapshotStore,
  parseCounterSnapshot,
  SNAPSHOT_KEY_PREFIX,
  type SnapshotRedis,
  type SnapshotStore,
} from './snapshot-store.ts';
export {
  createSweeper,
  DEFAULT_SWEEP_INTERVAL_MS,
  type FreshnessLogger,
  runSweepLoop,
  type Sweeper,
  type SweeperDeps,
  type SweepLoopOptions,
  type SweepLoopResult,
  type SweepResult,
} from './sweeper.ts';
