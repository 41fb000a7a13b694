import { describe, expect, it } from 'vitest';
import {
  DEFAULT_HEALTH_THRESHOLDS,
  evaluateHealth,
  HEALTH_CHECK_PRIORITY,
  type HealthSample,
} from '#shared/analysis';

/** A quiet, healthy database: every value well inside the defaults. */
const healthy = (overrides: Partial<HealthSample> = {}): HealthSample => ({
  target: 'primary',
  connectionUtilisation: 0.2,
  cacheHitRatio: 0.999,
  longestTransactionSeconds: 1,
  longestQuerySeconds: 0.5,
  waitingLocks: 0,
  idleInTransaction: 0,
  deadTupleRatio: 0.01,
  replicationLagSeconds: 0.2,
  meanQueryTimeMs: 3,
  deadlocksPerMinute: 0,
  ...overrides,
});

describe('evaluateHealth', () => {
  it('reports HEALTHY with no bottleneck, recommendation or conditions', () => {
    // Act
    const report = evaluateHealth(healthy(), DEFAULT_HEALTH_THRESHOLDS);
    // Assess
    expect(report).toMatchObject({
      target: 'primary',
      status: 'HEALTHY',
      bottleneck: null,
      recommendation: null,
      conditions: [],
    });
    expect(report.checks.map((c) => c.status)).toEqual(Array(10).fill('OK'));
  });

  it.each<[string, Partial<HealthSample>, string, string]>([
    ['connections', { connectionUtilisation: 0.75 }, 'connections', 'WARNING'],
    ['connections', { connectionUtilisation: 0.9 }, 'connections', 'DEGRADED'],
    ['connections', { connectionUtilisation: 0.96 }, 'connections', 'CRITICAL'],
    ['cache hit ratio (lower is worse)', { cacheHitRatio: 0.985 }, 'cache_hit_ratio', 'WARNING'],
    ['cache hit ratio (lower is worse)', { cacheHitRatio: 0.95 }, 'cache_hit_ratio', 'DEGRADED'],
    ['cache hit ratio (lower is worse)', { cacheHitRatio: 0.5 }, 'cache_hit_ratio', 'CRITICAL'],
    ['long transaction', { longestTransactionSeconds: 7_200 }, 'long_transaction', 'CRITICAL'],
    ['long query', { longestQuerySeconds: 301 }, 'long_query', 'DEGRADED'],
    ['lock waits', { waitingLocks: 5 }, 'lock_waits', 'WARNING'],
    ['idle in transaction', { idleInTransaction: 25 }, 'idle_in_transaction', 'DEGRADED'],
    ['dead tuples', { deadTupleRatio: 0.45 }, 'dead_tuples', 'CRITICAL'],
    ['replication lag', { replicationLagSeconds: 45 }, 'replication_lag', 'WARNING'],
    ['mean query time', { meanQueryTimeMs: 600 }, 'mean_query_time', 'DEGRADED'],
    ['deadlocks', { deadlocksPerMinute: 6 }, 'deadlocks', 'CRITICAL'],
  ])('grades %s: %o → %s %s', (_name, overrides, kind, severity) => {
    // Act
    const report = evaluateHealth(healthy(overrides), DEFAULT_HEALTH_THRESHOLDS);
    // Assess
    expect(report.status).toBe(severity);
    expect(report.bottleneck).toBe(kind);
    expect(report.conditions).toHaveLength(1);
    expect(report.conditions[0]).toMatchObject({ kind, severity });
    expect(report.checks.find((c) => c.kind === kind)?.status).toBe(severity);
  });

  it('takes its levels from the thresholds it is given', () => {
    // Prepare
    const thresholds = {
      ...DEFAULT_HEALTH_THRESHOLDS,
      waitingLocks: { warning: 100, degraded: 200, critical: 300 },
    };
    // Act
    const relaxed = evaluateHealth(healthy({ waitingLocks: 60 }), thresholds);
    const strict = evaluateHealth(healthy({ waitingLocks: 60 }), DEFAULT_HEALTH_THRESHOLDS);
    // Assess
    expect(relaxed.status).toBe('HEALTHY');
    expect(strict.status).toBe('CRITICAL');
  });

  it('lets the worst check set the status and lists every condition, worst first', () => {
    // Prepare
    const sample = healthy({
      cacheHitRatio: 0.97,
      connectionUtilisation: 0.92,
      deadlocksPerMinute: 20,
    });
    // Act
    const report = evaluateHealth(sample, DEFAULT_HEALTH_THRESHOLDS);
    // Assess
    expect(report.status).toBe('CRITICAL');
    expect(report.bottleneck).toBe('deadlocks');
    expect(report.conditions.map((c) => [c.kind, c.severity])).toEqual([
      ['deadlocks', 'CRITICAL'],
      ['connections', 'DEGRADED'],
      ['cache_hit_ratio', 'WARNING'],
    ]);
  });

  it('breaks a tie with the documented priority: the root cause before its symptoms', () => {
    // Prepare: lock waits, connections and a long transaction all CRITICAL
    const sample = healthy({
      waitingLocks: 80,
      connectionUtilisation: 0.97,
      longestTransactionSeconds: 4_000,
      longestTransactionPid: 4242,
    });
    // Act
    const report = evaluateHealth(sample, DEFAULT_HEALTH_THRESHOLDS);
    // Assess
    expect(report.bottleneck).toBe('long_transaction');
    expect(report.conditions.map((c) => c.kind)).toEqual([
      'long_transaction',
      'lock_waits',
      'connections',
    ]);
    expect(HEALTH_CHECK_PRIORITY.slice(0, 3)).toEqual([
      'long_transaction',
      'lock_waits',
      'connections',
    ]);
  });

  it.each<[string, Partial<HealthSample>, RegExp]>([
    [
      'connections with the counts',
      { connectionUtilisation: 0.92, maxConnections: 200 },
      /^Connections at 92% of max_connections: put RDS Proxy in front or lower application pool sizes/,
    ],
    [
      'a long transaction with its pid and age',
      { longestTransactionSeconds: 7_500, longestTransactionPid: 4242 },
      /^Transaction open for 2h 5m on pid 4242: find it in pg_stat_activity .* long transactions block vacuum/,
    ],
    [
      'a long query with its pid',
      { longestQuerySeconds: 720, longestQueryPid: 77 },
      /^Query running for 12m on pid 77: .*pg_cancel_backend/,
    ],
    [
      'dead tuples with the table',
      { deadTupleRatio: 0.35, deadTupleTable: 'public.orders' },
      /^Dead tuples are 35% of rows in public\.orders: autovacuum is falling behind/,
    ],
    [
      'the cache hit ratio with one decimal',
      { cacheHitRatio: 0.912 },
      /^Cache hit ratio 91\.2%: the working set does not fit in shared_buffers/,
    ],
  ])('recommends specifically for %s', (_name, overrides, expected) => {
    // Act
    const report = evaluateHealth(healthy(overrides), DEFAULT_HEALTH_THRESHOLDS);
    // Assess
    expect(report.recommendation).toMatch(expected);
    expect(report.conditions[0]?.recommendation).toBe(report.recommendation);
  });

  it('puts the value and the levels into the condition details and a count into the summary', () => {
    // Act
    const report = evaluateHealth(
      healthy({ connectionUtilisation: 0.92, maxConnections: 200 }),
      DEFAULT_HEALTH_THRESHOLDS,
    );
    // Assess
    expect(report.conditions[0]).toEqual({
      kind: 'connections',
      severity: 'DEGRADED',
      summary: 'Connections at 92% of max_connections (184 of 200)',
      recommendation: expect.any(String),
      details: {
        metric: 'connectionUtilisation',
        value: 0.92,
        thresholds: { warning: 0.75, degraded: 0.85, critical: 0.95 },
      },
    });
  });

  it('treats null and non-finite inputs as unknown, never alarming', () => {
    // Prepare
    const sample = healthy({
      cacheHitRatio: null,
      deadTupleRatio: null,
      replicationLagSeconds: null,
      meanQueryTimeMs: null,
      deadlocksPerMinute: null,
      waitingLocks: Number.NaN,
      connectionUtilisation: Number.POSITIVE_INFINITY,
    });
    // Act
    const report = evaluateHealth(sample, DEFAULT_HEALTH_THRESHOLDS);
    // Assess
    expect(report.status).toBe('HEALTHY');
    expect(report.conditions).toEqual([]);
    expect(report.checks.filter((c) => c.status === 'UNKNOWN').map((c) => c.kind)).toEqual([
      'lock_waits',
      'connections',
      'replication_lag',
      'deadlocks',
      'mean_query_time',
      'cache_hit_ratio',
      'dead_tuples',
    ]);
  });
});
