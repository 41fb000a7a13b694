import { describe, expect, it } from 'vitest';
import { type AlertCondition, createAlerter, createMemoryAlertStateStore } from '#shared/alerts';
import { DEFAULT_HEALTH_THRESHOLDS } from '#shared/analysis';
import type { Queryable } from '#shared/db';
import { mapDbError } from '#shared/db';
import { DatabaseUnavailableError, SqlSyntaxError } from '#shared/errors';
import { noMetrics } from '#shared/metrics';
import {
  type CollectMetricsDeps,
  collectMetrics,
  DEFAULT_FINDING_THRESHOLDS,
  type StatsRepository,
  type StatsTarget,
} from '#shared/stats';
import { ACTIVITY_SQL, SERVER_SQL } from '../../../shared/stats/catalog.ts';

const logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** A server that answers the catalog reads: 95 of 100 connections in use, nothing else. */
const busyServer: Queryable = {
  query: async <R>(sql: string) => {
    if (sql === SERVER_SQL) {
      return {
        rows: [
          {
            server_version_num: 150_004,
            database: 'app',
            in_recovery: false,
            server_started_at: '2026-11-20 00:00:00+00',
          },
        ] as R[],
      };
    }
    if (sql === ACTIVITY_SQL) return { rows: [{ connections: 94, max_connections: 100 }] as R[] };
    return { rows: [] as R[] };
  },
};

const target = (name: string, read: () => Promise<never> | undefined): StatsTarget => ({
  name,
  database: 'app',
  readOnly: async (_timeoutMs, work) => (await read()) ?? work(busyServer),
});

const memoryRepository = (
  failWrites = false,
  series: Record<string, { at: Date; value: number }[]> = {},
): StatsRepository => {
  const snapshots = new Map<string, unknown>();
  return {
    loadSnapshot: async (t, kind) => snapshots.get(`${t}/${kind}`) as never,
    saveSnapshot: async (s) => {
      if (failWrites) throw new Error('repository down');
      snapshots.set(`${s.target}/${s.kind}`, s);
    },
    recordMetrics: async () => undefined,
    metricSeries: async (_t, metric) => series[metric] ?? [],
    pruneMetrics: async () => 0,
  };
};

const deps = (targets: StatsTarget[], repository = memoryRepository()) => {
  const reconciled: { target: string; conditions: AlertCondition[]; partial?: boolean }[] = [];
  const published: { target: string; values: Record<string, number> }[] = [];
  const d: CollectMetricsDeps = {
    targets,
    repository,
    alerter: {
      reconcile: async (t, conditions, options) => {
        reconciled.push({ target: t, conditions, partial: options?.partial });
        return [];
      },
    },
    publisher: { publish: (dims, values) => published.push({ target: dims.target, values }) },
    metrics: noMetrics,
    logger,
    thresholds: DEFAULT_HEALTH_THRESHOLDS,
    settings: {
      readTimeoutMs: 1_000,
      explainTimeoutMs: 1_000,
      historyDays: 1,
      trendWindowMinutes: 60,
      trendMinConfidence: 0.99,
      slowQueries: { topN: 5, minMeanMs: 0, minCalls: 1 },
      findings: DEFAULT_FINDING_THRESHOLDS,
    },
  };
  return { d, reconciled, published };
};

describe('collectMetrics', () => {
  it('raises unreachable (partial, so other open alerts stay) and still evaluates the healthy target', async () => {
    // Prepare
    const { d, reconciled, published } = deps([
      target('down', () =>
        Promise.reject(new DatabaseUnavailableError('The database is unavailable')),
      ),
      target('up', () => undefined),
    ]);
    // Act
    const run = await collectMetrics(d);
    // Assess
    expect(run.targets.map((t) => t.status)).toEqual(['unreachable', 'collected']);
    expect(reconciled[0]).toMatchObject({
      target: 'down',
      partial: true,
      conditions: [{ kind: 'unreachable', severity: 'CRITICAL' }],
    });
    expect(reconciled[1]?.partial).toBe(false);
    expect(reconciled[1]?.conditions.map((c) => c.kind)).toContain('connections');
    expect(published).toContainEqual({ target: 'down', values: { TargetUp: 0 } });
  });

  it.each<[string, Error, string, string]>([
    [
      'a client-side timeout (the server never answered)',
      mapDbError(new Error('Query read timeout')),
      'unreachable',
      'unreachable',
    ],
    [
      'a server-side cancel (SQLSTATE 57014: alive, but slow)',
      mapDbError(
        Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' }),
      ),
      'failed',
      'collect_failed',
    ],
  ])('classifies %s', async (_name, err, status, kind) => {
    // Prepare
    const { d, reconciled } = deps([target('t', () => Promise.reject(err))]);
    // Act
    const run = await collectMetrics(d);
    // Assess
    expect(run.targets[0]?.status).toBe(status);
    expect(reconciled[0]?.conditions.map((c) => c.kind)).toEqual([kind]);
  });

  it('reports a failed read that is not a connection problem as collect_failed WARNING', async () => {
    // Prepare
    const denied = new SqlSyntaxError(
      'SQL_INSUFFICIENT_PRIVILEGE',
      'permission denied for view pg_stat_replication',
    );
    const { d, reconciled, published } = deps([target('t', () => Promise.reject(denied))]);
    // Act
    const run = await collectMetrics(d);
    // Assess
    expect(run.targets[0]?.status).toBe('failed');
    expect(published).toEqual([{ target: 't', values: { CollectFailed: 1 } }]);
    expect(reconciled[0]).toMatchObject({
      partial: true,
      conditions: [{ kind: 'collect_failed', severity: 'WARNING' }],
    });
  });

  it('keeps the health verdict when the repository cannot store history', async () => {
    // Prepare
    const { d, reconciled } = deps([target('t', () => undefined)], memoryRepository(true));
    // Act
    const run = await collectMetrics(d);
    // Assess
    expect(run.targets[0]?.status).toBe('collected');
    expect(run.targets[0]?.error?.message).toBe('repository down');
    expect(run.targets[0]?.health?.bottleneck).toBe('connections');
    expect(reconciled[0]?.conditions.map((c) => c.kind)).toContain('connections');
  });

  it('raises a WARNING trend condition for a steadily rising mean statement time and none for a flat one', async () => {
    // Prepare: one point a minute for an hour; mean time climbs 2 → 8 ms, connections stay flat.
    const start = Date.parse('2026-11-27T09:00:00Z');
    const points = (f: (i: number) => number) =>
      Array.from({ length: 60 }, (_, i) => ({ at: new Date(start + i * 60_000), value: f(i) }));
    const repository = memoryRepository(false, {
      MeanQueryTimeMs: points((i) => 2 + i * 0.1 + (i % 3) * 0.05),
      ConnectionUtilisation: points((i) => 20 + (i % 2)),
    });
    const { d, reconciled } = deps([target('t', () => undefined)], repository);
    // Act
    const run = await collectMetrics(d);
    // Assess
    expect(run.targets[0]?.trends.MeanQueryTimeMs?.direction).toBe('DEGRADING');
    expect(run.targets[0]?.trends.ConnectionUtilisation?.direction).toBe('STABLE');
    const trend = reconciled[0]?.conditions.filter((c) => c.kind.startsWith('trend_'));
    expect(trend).toEqual([
      expect.objectContaining({ kind: 'trend_mean_query_time', severity: 'WARNING' }),
    ]);
  });
  it.each<[string, number, number]>([
    ['ConnectionUtilisation', 3, 8],
    ['ReplicationLagSeconds', 0.01, 0.05],
    ['MeanQueryTimeMs', 0.1, 0.4],
    ['WorstDeadTupleRatio', 0.5, 2],
  ])(
    'raises no trend condition for %s rising steadily but near zero (%s → %s)',
    async (metric, from, to) => {
      // Prepare: one point a minute for an hour, a clean monotonic rise (+100% and more).
      const start = Date.parse('2026-11-27T09:00:00Z');
      const series = Array.from({ length: 60 }, (_, i) => ({
        at: new Date(start + i * 60_000),
        value: from + ((to - from) * i) / 59,
      }));
      const { d, reconciled } = deps(
        [target('t', () => undefined)],
        memoryRepository(false, { [metric]: series }),
      );
      // Act
      const run = await collectMetrics(d);
      // Assess
      expect(run.targets[0]?.trends[metric]?.direction).toBe('STABLE');
      expect(reconciled[0]?.conditions.filter((c) => c.kind.startsWith('trend_'))).toEqual([]);
    },
  );

  it('keeps open the alerts whose check could not be measured this interval, resolves the measured and inapplicable ones', async () => {
    // Prepare: open alerts from earlier runs; this run is a baseline (no previous snapshot), so
    // the cache hit ratio, mean statement time and trends have no value, long transactions do (0 s).
    const opened = new Date('2026-11-27T09:00:00Z');
    const open = (kind: string) => ({
      target: 't',
      kind,
      severity: 'DEGRADED' as const,
      openedAt: opened,
      lastSentAt: opened,
      summary: kind,
    });
    const store = createMemoryAlertStateStore([
      open('cache_hit_ratio'),
      open('mean_query_time'),
      open('trend_mean_query_time'),
      open('long_transaction'),
      // Not applicable rather than unmeasured: no replicas, no table big enough to count.
      open('replication_lag'),
      open('dead_tuples'),
      open('trend_replication_lag'),
    ]);
    const { d } = deps([target('t', () => undefined)]);
    d.alerter = createAlerter({ store, cooldownMs: 1_800_000, logger });
    // Act
    const run = await collectMetrics(d);
    // Assess
    expect(run.targets[0]?.alerts.map((a) => [a.kind, a.event])).toEqual([
      ['connections', 'opened'],
      ['pg_stat_statements_missing', 'opened'],
      ['long_transaction', 'resolved'],
      ['replication_lag', 'resolved'],
      ['dead_tuples', 'resolved'],
      ['trend_replication_lag', 'resolved'],
    ]);
    expect(store.states().map((s) => s.kind)).toEqual([
      'cache_hit_ratio',
      'mean_query_time',
      'trend_mean_query_time',
      'connections',
      'pg_stat_statements_missing',
    ]);
  });
});
