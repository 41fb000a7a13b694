import { type Database, executeStatement } from '#shared/db';
import { DatabaseUnavailableError, isAppError } from '#shared/errors';
import { type MetricsSink, MetricUnit } from '#shared/metrics';
import type { BreakerState, TargetGuard } from '#shared/resilience';

/** How a read picks among a target's healthy replicas. */
export type ReplicaSelection = 'round-robin' | 'least-outstanding';

/**
 * What to make of a read endpoint that is not in recovery (`pg_is_in_recovery()` false): a
 * logical-replication subscriber or a plain database reports no replay position, so its lag
 * cannot be measured. `skip` (default) never reads from it; `zero-lag` trusts it as caught up
 * (a logical replica whose lag is monitored elsewhere, or tests).
 */
export type NonStandbyPolicy = 'skip' | 'zero-lag';

export interface ReplicaPolicy {
  /** A replica whose lag (upper bound, see {@link ReplicaSet}) exceeds this is skipped. */
  maxLagMs: number;
  /** How long a measured lag is trusted before a request measures it again. */
  lagCheckIntervalMs: number;
  /** Time limit of one lag probe (server-side; the client waits 100 ms longer). */
  lagProbeTimeoutMs: number;
  selection: ReplicaSelection;
  nonStandby: NonStandbyPolicy;
}

/** One read endpoint of a target, with its own circuit breaker. */
export interface ReplicaEndpoint {
  /** `<target>/r<n>`, e.g. `primary/r1`, `s2/r2`. */
  readonly name: string;
  readonly db: Database;
  readonly guard: TargetGuard;
}

/** A lag measurement: `lagMs` undefined when the endpoint cannot tell (see the probe SQL). */
export interface LagReading {
  inRecovery: boolean;
  lagMs: number | undefined;
}

/** Measures one endpoint's replication lag; injectable for tests and other engines. */
export type LagProbe = (db: Database, timeoutMs: number) => Promise<LagReading>;

/**
 * Replication lag of a streaming standby, in ms.
 * - Not in recovery: NULL (a primary or logical subscriber; {@link NonStandbyPolicy} decides).
 * - Everything received is replayed and the WAL receiver is running: 0. Without this, an idle
 *   primary would make a caught-up standby look ever more behind, because
 *   `pg_last_xact_replay_timestamp()` is the commit time of the last replayed transaction.
 *   A stalled connection is only noticed after `wal_receiver_timeout` (default 60 s).
 * - Otherwise: time since the last replayed commit (an upper bound while WAL is pending).
 * pg_stat_wal_receiver shows its row (the pid) to every role.
 * https://www.postgresql.org/docs/15/functions-admin.html#FUNCTIONS-RECOVERY-INFO-TABLE
 */
const REPLICA_LAG_SQL = `SELECT /* dbopt */ pg_is_in_recovery() AS in_recovery,
  CASE
    WHEN NOT pg_is_in_recovery() THEN NULL
    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()
      AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver) THEN 0
    ELSE greatest(0, extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)
  END::float8 AS lag_ms`;

/** The default {@link LagProbe}: {@link REPLICA_LAG_SQL} as a read-only statement. */
export const probeReplicaLag: LagProbe = async (db, timeoutMs) => {
  const { rows } = await executeStatement(
    db,
    { sql: REPLICA_LAG_SQL, params: [], readOnly: true, timeoutMs, maxRows: 1 },
    100,
  );
  const row = rows[0] ?? {};
  const lag = row.lag_ms;
  return {
    inRecovery: row.in_recovery === true,
    lagMs: typeof lag === 'number' && Number.isFinite(lag) ? Math.ceil(lag) : undefined,
  };
};

/** Why a replica did not serve a read. */
export type ReplicaSkipReason =
  | 'breaker-open'
  | 'lagging'
  | 'lag-unknown'
  | 'not-a-standby'
  | 'probe-failed'
  | 'failed';

export interface SkippedReplica {
  name: string;
  reason: ReplicaSkipReason;
  /** The measured lag, for `lagging`. */
  lagMs?: number;
}

/** The outcome of {@link ReplicaSet.choose}: a replica and its lag bound, or none. */
export interface ReplicaChoice {
  replica?: ReplicaEndpoint;
  /** Upper bound of the chosen replica's lag right now (measured lag + age of the measure). */
  lagBoundMs: number;
  skipped: SkippedReplica[];
}

/** One replica in `GET /health`. */
export interface ReplicaHealth {
  name: string;
  target: string;
  breaker: BreakerState;
  state: 'ok' | 'lagging' | 'lag-unknown' | 'not-a-standby' | 'unreachable' | 'breaker-open';
  /** Last measured lag and how long ago it was measured. */
  lagMs?: number;
  lagAgeMs?: number;
  error?: string;
}

/**
 * The read endpoints of one target (the primary or a shard) and what this process knows
 * about them. A documented per-process cache: the last lag reading per replica, a
 * round-robin cursor and in-flight counts. No timers: lags are measured lazily by the
 * requests that need them.
 */
export interface ReplicaSet {
  readonly target: string;
  readonly replicas: readonly ReplicaEndpoint[];
  readonly policy: Readonly<ReplicaPolicy>;
  /**
   * Picks a replica for one read: skips replicas whose breaker is open, whose lag cannot be
   * shown to be within `maxLagMs`, or that are not standbys (unless `zero-lag`). A lag
   * measured `a` ms ago as `L` is taken as `L + a`: lag can grow at most as fast as the clock.
   * The measurement is repeated when older than `lagCheckIntervalMs`, or sooner when `L + a`
   * would exceed the bound (a replica already lagging waits for the interval). A failed
   * probe also keeps the replica skipped (`probe-failed`) until the interval passes.
   */
  choose(): Promise<ReplicaChoice>;
  /** Runs `work` counting it as in flight on `replica` (for least-outstanding). */
  track<T>(replica: ReplicaEndpoint, work: () => Promise<T>): Promise<T>;
  /** Each replica's breaker, lag and state; measures lags older than the interval. */
  health(): Promise<ReplicaHealth[]>;
}

interface LagState {
  reading?: LagReading;
  /** performance.now() at the start of the probe that produced `reading` (or failed). */
  measuredAt: number;
  error?: string;
  probing?: Promise<void>;
}

export const createReplicaSet = (
  target: string,
  replicas: readonly ReplicaEndpoint[],
  policy: ReplicaPolicy,
  deps: { metrics: MetricsSink; probe?: LagProbe },
): ReplicaSet => {
  const probeLag = deps.probe ?? probeReplicaLag;
  const states: LagState[] = replicas.map(() => ({ measuredAt: Number.NEGATIVE_INFINITY }));
  const outstanding = replicas.map(() => 0);
  let cursor = 0;

  const measure = (index: number): Promise<void> => {
    const state = states[index] as LagState;
    if (state.probing) return state.probing;
    const replica = replicas[index] as ReplicaEndpoint;
    const startedAt = performance.now();
    // Through the breaker (no retries): an unreachable replica opens it like any target.
    state.probing = replica.guard
      .run(() => probeLag(replica.db, policy.lagProbeTimeoutMs), { readOnly: false })
      .then(
        (reading) => {
          state.reading = reading;
          state.error = undefined;
          state.measuredAt = startedAt;
          if (reading.lagMs !== undefined) {
            deps.metrics.addMetric('ReplicaLag', MetricUnit.Milliseconds, reading.lagMs);
          }
        },
        (err: unknown) => {
          // Remembered for the interval like a reading: the replica is skipped without a new
          // probe. A timeout (a hung replica) does not count for the breaker, so without this
          // every read of the target would wait out another probe.
          state.reading = undefined;
          state.error = isAppError(err) ? err.code : 'UNKNOWN';
          state.measuredAt = startedAt;
        },
      )
      .finally(() => {
        state.probing = undefined;
      });
    return state.probing;
  };

  /** The lag to use, or why not; undefined lag means "skip with reason". */
  const effectiveLag = (
    index: number,
  ): { lagMs: number } | { reason: ReplicaSkipReason; lagMs?: number } => {
    const state = states[index] as LagState;
    const reading = state.reading;
    if (reading === undefined) return { reason: 'probe-failed' };
    if (!reading.inRecovery) {
      if (policy.nonStandby === 'skip') return { reason: 'not-a-standby' };
    } else if (reading.lagMs === undefined) {
      return { reason: 'lag-unknown' };
    }
    const measured = reading.inRecovery ? (reading.lagMs as number) : 0;
    if (measured > policy.maxLagMs) return { reason: 'lagging', lagMs: measured };
    return { lagMs: measured + Math.max(0, performance.now() - state.measuredAt) };
  };

  const needsProbe = (index: number): boolean => {
    const state = states[index] as LagState;
    const ageMs = performance.now() - state.measuredAt;
    // Never measured, or a reading / failed probe older than the interval.
    if (ageMs >= policy.lagCheckIntervalMs) return true;
    if (state.reading === undefined) return false;
    const lag = effectiveLag(index);
    // Within the interval a lagging replica stays skipped; a healthy one is re-proven early
    // once its age alone could push it past the bound.
    return !('reason' in lag) && lag.lagMs > policy.maxLagMs;
  };

  /** Candidate order: rotating start (round-robin), then fewest in flight first if asked. */
  const candidates = (): number[] => {
    const start = cursor;
    cursor = (cursor + 1) % replicas.length;
    const order = replicas.map((_, i) => (start + i) % replicas.length);
    // A handful of replicas: a stable sort of a few indexes per read is cheap.
    if (policy.selection === 'least-outstanding') {
      order.sort((a, b) => (outstanding[a] as number) - (outstanding[b] as number));
    }
    return order;
  };

  const choose = async (): Promise<ReplicaChoice> => {
    const skipped: SkippedReplica[] = [];
    for (const index of candidates()) {
      const replica = replicas[index] as ReplicaEndpoint;
      if (replica.guard.state() === 'open') {
        skipped.push({ name: replica.name, reason: 'breaker-open' });
        continue;
      }
      if (needsProbe(index)) await measure(index);
      const lag = effectiveLag(index);
      if ('reason' in lag) {
        skipped.push({ name: replica.name, ...lag });
        continue;
      }
      if (lag.lagMs > policy.maxLagMs) {
        skipped.push({ name: replica.name, reason: 'lagging', lagMs: Math.round(lag.lagMs) });
        continue;
      }
      return { replica, lagBoundMs: lag.lagMs, skipped };
    }
    deps.metrics.addMetric('ReplicaFallbackToPrimary', MetricUnit.Count, 1);
    return { lagBoundMs: 0, skipped };
  };

  const track = async <T>(replica: ReplicaEndpoint, work: () => Promise<T>): Promise<T> => {
    const index = replicas.indexOf(replica);
    outstanding[index] = (outstanding[index] as number) + 1;
    try {
      return await work();
    } finally {
      outstanding[index] = (outstanding[index] as number) - 1;
    }
  };

  const health = async (): Promise<ReplicaHealth[]> => {
    await Promise.all(
      replicas.map((replica, index) =>
        replica.guard.state() !== 'open' &&
        performance.now() - (states[index] as LagState).measuredAt >= policy.lagCheckIntervalMs
          ? measure(index)
          : undefined,
      ),
    );
    return replicas.map((replica, index) => {
      const state = states[index] as LagState;
      const breaker = replica.guard.state();
      const lag = effectiveLag(index);
      const reading = state.reading;
      const stateName: ReplicaHealth['state'] =
        breaker === 'open'
          ? 'breaker-open'
          : reading === undefined
            ? 'unreachable'
            : 'reason' in lag
              ? lag.reason === 'probe-failed'
                ? 'unreachable'
                : (lag.reason as ReplicaHealth['state'])
              : 'ok';
      return {
        name: replica.name,
        target,
        breaker,
        state: stateName,
        ...(reading?.lagMs !== undefined
          ? { lagMs: reading.lagMs }
          : reading !== undefined && !reading.inRecovery && policy.nonStandby === 'zero-lag'
            ? { lagMs: 0 }
            : {}),
        ...(reading !== undefined
          ? { lagAgeMs: Math.round(performance.now() - state.measuredAt) }
          : {}),
        ...(state.error !== undefined ? { error: state.error } : {}),
      };
    });
  };

  return Object.freeze({
    target,
    replicas: Object.freeze([...replicas]),
    policy: Object.freeze({ ...policy }),
    choose,
    track,
    health,
  });
};

/** serialization_failure: what a standby raises when replay cancels a conflicting query. */
const RECOVERY_CONFLICT_STATE = '40001';

/**
 * A replica failure after which the read is retried on the primary: the replica is down, or
 * it cancelled the read because of a conflict with recovery (SQLSTATE 40001 on a standby,
 * once the guard's retries are spent) — an error the primary would not raise for a read.
 * https://www.postgresql.org/docs/15/hot-standby.html#HOT-STANDBY-CONFLICT
 */
export const isReplicaUnavailable = (err: unknown): boolean =>
  err instanceof DatabaseUnavailableError ||
  (isAppError(err) && err.details.sqlState === RECOVERY_CONFLICT_STATE);
