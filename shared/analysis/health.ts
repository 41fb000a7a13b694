import type { AlertCondition, AlertSeverity } from '#shared/alerts';
import { formatDuration, formatNumber, formatPercent } from './format.ts';
import { type HealthThresholds, LOWER_IS_WORSE, type ThresholdLevels } from './thresholds.ts';

/**
 * What the collector saw on one target in one interval. `null` means "not measured" (no
 * replicas, no statements in the interval, no reads yet): unknown, never alarming.
 */
export interface HealthSample {
  target: string;
  /** Connections in use / max_connections, 0..1. */
  connectionUtilisation: number;
  /** blks_hit / (blks_hit + blks_read) over the interval, 0..1. */
  cacheHitRatio: number | null;
  /** Age of the oldest open transaction (now − xact_start). */
  longestTransactionSeconds: number;
  /** Age of the longest running active statement (now − query_start). */
  longestQuerySeconds: number;
  /** Sessions waiting for a lock. */
  waitingLocks: number;
  /** Sessions in state 'idle in transaction'. */
  idleInTransaction: number;
  /** Dead / (live + dead) tuples of the worst table. */
  deadTupleRatio: number | null;
  replicationLagSeconds: number | null;
  /** Mean statement execution time over the interval. */
  meanQueryTimeMs: number | null;
  deadlocksPerMinute: number | null;
  /** Optional context that makes recommendations specific. */
  maxConnections?: number | null;
  longestTransactionPid?: number | null;
  longestQueryPid?: number | null;
  /** Schema-qualified name of the table with the worst dead-tuple ratio. */
  deadTupleTable?: string | null;
}

export type HealthStatus = 'HEALTHY' | AlertSeverity;

/** One check's result; `UNKNOWN` when the sample had no value for it. */
export interface HealthCheckResult {
  /** The alert kind, e.g. `connections`. */
  kind: string;
  /** The sample field and threshold name, e.g. `connectionUtilisation`. */
  metric: keyof HealthThresholds;
  value: number | null;
  status: 'OK' | 'UNKNOWN' | AlertSeverity;
}

export interface HealthReport {
  target: string;
  /** The worst check's severity, HEALTHY when none reaches a warning level. */
  status: HealthStatus;
  /** Kind of the worst check (ties: {@link HEALTH_CHECK_PRIORITY}); null when healthy. */
  bottleneck: string | null;
  /** What to do about the bottleneck, in words; null when healthy. */
  recommendation: string | null;
  /** Every check at WARNING or worse, worst first; feed these to the alerter. */
  conditions: AlertCondition[];
  /** Every check, in priority order, including OK and UNKNOWN ones. */
  checks: HealthCheckResult[];
}

interface CheckDefinition {
  kind: string;
  metric: keyof HealthThresholds;
  summary(value: number, sample: HealthSample): string;
  recommendation(value: number, sample: HealthSample): string;
}

const pidText = (pid: number | null | undefined): string =>
  typeof pid === 'number' ? `pid ${pid}` : 'the oldest backend';

/**
 * The checks in tie-break priority: root causes before their symptoms. A long or idle
 * transaction holds locks (→ lock waits) that pile up sessions (→ connections); fixing the
 * first fixes the rest. Then risks to correctness/availability (replication lag, deadlocks),
 * then slowness (long and slow queries, cache), then slow-burn maintenance (dead tuples).
 */
const CHECKS: readonly CheckDefinition[] = [
  {
    kind: 'long_transaction',
    metric: 'longestTransactionSeconds',
    summary: (v, s) =>
      `Transaction open for ${formatDuration(v)} on ${pidText(s.longestTransactionPid)}`,
    recommendation: (v, s) =>
      `Transaction open for ${formatDuration(v)} on ${pidText(s.longestTransactionPid)}: find it in pg_stat_activity ` +
      '(ORDER BY xact_start) and end it (pg_terminate_backend) if it is stuck; long transactions block vacuum ' +
      'and hold locks. Keep transactions short and set idle_in_transaction_session_timeout.',
  },
  {
    kind: 'lock_waits',
    metric: 'waitingLocks',
    summary: (v) => `${formatNumber(v)} sessions waiting for locks`,
    recommendation: (v) =>
      `${formatNumber(v)} sessions waiting for locks: find the blockers with pg_blocking_pids(pid) from ` +
      'pg_stat_activity and end or shorten the blocking transactions; take row locks in a consistent order ' +
      'and run DDL with lock_timeout.',
  },
  {
    kind: 'connections',
    metric: 'connectionUtilisation',
    summary: (v, s) =>
      `Connections at ${formatPercent(v)} of max_connections` +
      (s.maxConnections ? ` (${Math.round(v * s.maxConnections)} of ${s.maxConnections})` : ''),
    recommendation: (v) =>
      `Connections at ${formatPercent(v)} of max_connections: put RDS Proxy in front or lower ` +
      'application pool sizes, and close idle sessions; new connections fail once the limit is reached.',
  },
  {
    kind: 'idle_in_transaction',
    metric: 'idleInTransaction',
    summary: (v) => `${formatNumber(v)} sessions idle in transaction`,
    recommendation: (v) =>
      `${formatNumber(v)} sessions idle in transaction: the application opens transactions and does not ` +
      'commit them (missing COMMIT, work between statements); fix that code path and set ' +
      'idle_in_transaction_session_timeout for the role.',
  },
  {
    kind: 'replication_lag',
    metric: 'replicationLagSeconds',
    summary: (v) => `Replication lag ${formatDuration(v)}`,
    recommendation: (v) =>
      `Replica ${formatDuration(v)} behind: reads from it are stale; check replica CPU and I/O, long ` +
      'queries on the replica, and write bursts on the primary (large UPDATE/DELETE, index builds).',
  },
  {
    kind: 'deadlocks',
    metric: 'deadlocksPerMinute',
    summary: (v) => `${formatNumber(v)} deadlocks per minute`,
    recommendation: (v) =>
      `${formatNumber(v)} deadlocks per minute: transactions lock the same rows in different orders; the ` +
      'server log names both statements (log_lock_waits on); make them take locks in one order.',
  },
  {
    kind: 'long_query',
    metric: 'longestQuerySeconds',
    summary: (v, s) => `Query running for ${formatDuration(v)} on ${pidText(s.longestQueryPid)}`,
    recommendation: (v, s) =>
      `Query running for ${formatDuration(v)} on ${pidText(s.longestQueryPid)}: check it in pg_stat_activity ` +
      'and cancel it (pg_cancel_backend) if it is runaway; set a statement_timeout for the role ' +
      'and look at its plan and the index suggestions.',
  },
  {
    kind: 'mean_query_time',
    metric: 'meanQueryTimeMs',
    summary: (v) => `Mean statement time ${formatNumber(v)} ms`,
    recommendation: (v) =>
      `Mean statement time ${formatNumber(v)} ms: look at the statements consuming the most time ` +
      '(dbopt slow queries, pg_stat_statements ORDER BY total_exec_time) and apply the index suggestions.',
  },
  {
    kind: 'cache_hit_ratio',
    metric: 'cacheHitRatio',
    summary: (v) => `Cache hit ratio ${formatPercent(v)}`,
    recommendation: (v) =>
      `Cache hit ratio ${formatPercent(v)}: the working set does not fit in shared_buffers; reduce the ` +
      'data read (indexes for big sequential scans) or move to an instance class with more memory.',
  },
  {
    kind: 'dead_tuples',
    metric: 'deadTupleRatio',
    summary: (v, s) =>
      `Dead tuples are ${formatPercent(v)} of rows${s.deadTupleTable ? ` in ${s.deadTupleTable}` : ''}`,
    recommendation: (v, s) =>
      `Dead tuples are ${formatPercent(v)} of rows${s.deadTupleTable ? ` in ${s.deadTupleTable}` : ''}: ` +
      'autovacuum is falling behind; check for long transactions holding it back, lower ' +
      'autovacuum_vacuum_scale_factor for that table, or run VACUUM on it.',
  },
];

/** Check kinds in tie-break priority order (first wins a tie). */
export const HEALTH_CHECK_PRIORITY: readonly string[] = Object.freeze(CHECKS.map((c) => c.kind));

const SEVERITY_ORDER: readonly AlertSeverity[] = ['CRITICAL', 'DEGRADED', 'WARNING'];

const levelReached = (
  value: number,
  levels: ThresholdLevels,
  lowerIsWorse: boolean,
): AlertSeverity | undefined =>
  SEVERITY_ORDER.find((severity) => {
    const limit = levels[severity.toLowerCase() as keyof ThresholdLevels];
    return lowerIsWorse ? value <= limit : value >= limit;
  });

const known = (value: unknown): value is number =>
  typeof value === 'number' && Number.isFinite(value);

const rank = (status: HealthCheckResult['status']): number =>
  status === 'CRITICAL' ? 3 : status === 'DEGRADED' ? 2 : status === 'WARNING' ? 1 : 0;

/**
 * Health verdict for one sample: each check compares its value with its three levels; the
 * worst check sets the status and is the bottleneck (ties broken by
 * {@link HEALTH_CHECK_PRIORITY}). Missing (null, NaN) values are UNKNOWN, never alarming.
 *
 * @example
 * const report = evaluateHealth(sample, healthThresholdsFromConfig(config));
 * await alerter.reconcile(report.target, report.conditions);
 */
export const evaluateHealth = (
  sample: HealthSample,
  thresholds: HealthThresholds,
): HealthReport => {
  const checks: HealthCheckResult[] = [];
  const conditions: (AlertCondition & { priority: number })[] = [];
  CHECKS.forEach((check, priority) => {
    const value = sample[check.metric];
    if (!known(value)) {
      checks.push({ kind: check.kind, metric: check.metric, value: null, status: 'UNKNOWN' });
      return;
    }
    const levels = thresholds[check.metric];
    const severity = levelReached(value, levels, LOWER_IS_WORSE.has(check.metric));
    checks.push({ kind: check.kind, metric: check.metric, value, status: severity ?? 'OK' });
    if (!severity) return;
    conditions.push({
      kind: check.kind,
      severity,
      summary: check.summary(value, sample),
      recommendation: check.recommendation(value, sample),
      details: { metric: check.metric, value, thresholds: { ...levels } },
      priority,
    });
  });
  conditions.sort((a, b) => rank(b.severity) - rank(a.severity) || a.priority - b.priority);
  const worst = conditions[0];
  return {
    target: sample.target,
    status: worst?.severity ?? 'HEALTHY',
    bottleneck: worst?.kind ?? null,
    recommendation: worst?.recommendation ?? null,
    conditions: conditions.map(({ priority: _priority, ...condition }) => condition),
    checks,
  };
};
