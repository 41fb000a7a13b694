import { describe, expect, it } from 'vitest';
import {
  buildHealthSample,
  type DatabaseSnapshot,
  diffDatabaseSnapshots,
  metricValuesOf,
} from '#shared/stats';

const snapshot = (
  overrides: Partial<DatabaseSnapshot> = {},
  counters: Partial<DatabaseSnapshot['counters']> = {},
): DatabaseSnapshot => ({
  format: 1,
  takenAt: '2026-11-27T10:00:00.000Z',
  server: {
    serverVersionNum: 150_004,
    database: 'app',
    inRecovery: false,
    serverStartedAt: '2026-11-20T00:00:00+00',
  },
  statsResetAt: null,
  activity: {
    active: 2,
    idle: 5,
    idleInTransaction: 1,
    waiting: 0,
    longestQuerySeconds: 3,
    oldestTransactionSeconds: 4,
    longestQueryPid: 101,
    oldestTransactionPid: 102,
    connections: 20,
    maxConnections: 100,
  },
  counters: {
    xactCommit: 1_000,
    xactRollback: 10,
    blksHit: 9_000,
    blksRead: 1_000,
    tempBytes: 0,
    tempFiles: 0,
    deadlocks: 0,
    seqScan: 50,
    seqTupRead: 5_000,
    idxScan: 500,
    ...counters,
  },
  statements: { calls: 2_000, totalMs: 4_000 },
  locks: [
    { mode: 'AccessShareLock', granted: true, locks: 7 },
    { mode: 'RowExclusiveLock', granted: false, locks: 2 },
  ],
  tables: {
    tables: 3,
    liveTuples: 100_000,
    deadTuples: 5_000,
    worstDeadTupleRatio: 0.2,
    worstDeadTupleTable: 'public.orders',
    neverVacuumedWithDead: 0,
    oldestVacuumAgeSeconds: 3_600,
  },
  indexes: { indexes: 4, unusedIndexes: 1, unusedIndexBytes: 8_192 },
  replication: { replicas: 0, lagSeconds: null },
  ...overrides,
});

const ONE_MINUTE_LATER = '2026-11-27T10:01:00.000Z';

describe('diffDatabaseSnapshots', () => {
  it('turns counters into per-interval rates, an interval hit ratio and mean statement time', () => {
    // Prepare
    const prev = snapshot();
    const curr = snapshot(
      { takenAt: ONE_MINUTE_LATER, statements: { calls: 2_100, totalMs: 4_500 } },
      { xactCommit: 1_600, blksHit: 9_900, blksRead: 1_100, deadlocks: 2, tempBytes: 6_000 },
    );
    // Act
    const diff = diffDatabaseSnapshots(prev, curr);
    // Assess
    expect(diff.baseline).toBe(false);
    expect(diff.intervalSeconds).toBe(60);
    expect(diff.rates).toMatchObject({
      commitsPerSecond: 10,
      deadlocksPerMinute: 2,
      tempBytesPerSecond: 100,
    });
    expect(diff.cacheHitRatio).toBeCloseTo(0.9, 9);
    expect(diff.meanQueryTimeMs).toBe(5);
  });

  it('treats the first reading as a baseline without rates', () => {
    // Act
    const diff = diffDatabaseSnapshots(undefined, snapshot());
    // Assess
    expect(diff).toMatchObject({ baseline: true, reset: false, rates: null, cacheHitRatio: null });
  });

  it.each<[string, Partial<DatabaseSnapshot>, Partial<DatabaseSnapshot['counters']>]>([
    ['a counter went down', {}, { xactCommit: 3 }],
    ['stats_reset moved', { statsResetAt: '2026-11-27T10:00:30+00' }, { xactCommit: 1_200 }],
    [
      'the server restarted',
      {
        server: {
          serverVersionNum: 150_004,
          database: 'app',
          inRecovery: false,
          serverStartedAt: '2026-11-27T10:00:10+00',
        },
      },
      { xactCommit: 1_200 },
    ],
  ])(
    'starts a fresh baseline (flagged, no negative rates) when %s',
    (_name, overrides, counters) => {
      // Act
      const diff = diffDatabaseSnapshots(
        snapshot(),
        snapshot({ takenAt: ONE_MINUTE_LATER, ...overrides }, counters),
      );
      // Assess
      expect(diff).toMatchObject({ baseline: true, reset: true, rates: null });
    },
  );

  it('keeps the database rates, hit ratio and mean time when only table sums went down (a table was dropped)', () => {
    // Prepare: a staging table with 40 seq scans was dropped; the database went on working.
    const curr = snapshot(
      { takenAt: ONE_MINUTE_LATER, statements: { calls: 2_100, totalMs: 4_500 } },
      { xactCommit: 1_600, blksHit: 9_900, blksRead: 1_100, seqScan: 15, seqTupRead: 1_000 },
    );
    // Act
    const diff = diffDatabaseSnapshots(snapshot(), curr);
    const values = metricValuesOf(curr, diff);
    // Assess
    expect(diff).toMatchObject({ baseline: false, reset: false });
    expect(diff.rates).toMatchObject({ commitsPerSecond: 10, seqScansPerSecond: null });
    expect(diff.cacheHitRatio).toBeCloseTo(0.9, 9);
    expect(diff.meanQueryTimeMs).toBe(5);
    expect(values).toMatchObject({ CommitsPerSecond: 10, StatsReset: 0 });
    expect(values).not.toHaveProperty('SeqScansPerSecond');
  });

  it('flags a pg_stat_statements reset without dropping the database rates', () => {
    // Act
    const diff = diffDatabaseSnapshots(
      snapshot(),
      snapshot({ takenAt: ONE_MINUTE_LATER, statements: { calls: 5, totalMs: 9 } }),
    );
    // Assess
    expect(diff.statementsReset).toBe(true);
    expect(diff.meanQueryTimeMs).toBeNull();
    expect(diff.rates).not.toBeNull();
  });
});

describe('buildHealthSample / metricValuesOf', () => {
  it('builds the HealthSample contract from a reading and its interval', () => {
    // Prepare
    const curr = snapshot({ takenAt: ONE_MINUTE_LATER }, { blksHit: 9_050, blksRead: 1_050 });
    const diff = diffDatabaseSnapshots(snapshot(), curr);
    // Act
    const sample = buildHealthSample('primary', curr, diff);
    // Assess
    expect(sample).toMatchObject({
      target: 'primary',
      connectionUtilisation: 0.2,
      cacheHitRatio: 0.5,
      longestTransactionSeconds: 4,
      longestQuerySeconds: 3,
      waitingLocks: 2,
      idleInTransaction: 1,
      deadTupleRatio: 0.2,
      replicationLagSeconds: null,
      deadlocksPerMinute: 0,
      deadTupleTable: 'public.orders',
    });
  });

  it('publishes the interval cache hit ratio and mean statement time in their units (percent, ms)', () => {
    // Prepare: 900 of 1,000 blocks from the cache; 100 statements taking 500 ms in all.
    const curr = snapshot(
      { takenAt: ONE_MINUTE_LATER, statements: { calls: 2_100, totalMs: 4_500 } },
      { blksHit: 9_900, blksRead: 1_100 },
    );
    // Act
    const values = metricValuesOf(curr, diffDatabaseSnapshots(snapshot(), curr));
    // Assess
    expect(values.CacheHitRatio).toBeCloseTo(90, 9);
    expect(values.MeanQueryTimeMs).toBe(5);
  });

  it('publishes ratios as percent and leaves out what was not measured', () => {
    // Act
    const values = metricValuesOf(snapshot(), diffDatabaseSnapshots(undefined, snapshot()));
    // Assess
    expect(values).toMatchObject({
      TargetUp: 1,
      ConnectionUtilisation: 20,
      LocksWaiting: 2,
      LocksGranted: 7,
      WorstDeadTupleRatio: 20,
    });
    expect(values).not.toHaveProperty('CommitsPerSecond');
    expect(values).not.toHaveProperty('CacheHitRatio');
    expect(values).not.toHaveProperty('ReplicationLagSeconds');
  });
});
