import { describe, expect, it } from 'vitest';
import type { AlertOutcome } from '#shared/alerts';
import type { CollectSlowQueriesResult } from '#shared/stats';
import { formatAlertOutcomes, formatSlowQueriesRun } from '../../../local/collect-loop.ts';

const at = new Date('2026-11-27T10:15:30.000Z');

const outcome = (
  event: AlertOutcome['event'],
  extra: Partial<AlertOutcome> = {},
): AlertOutcome => ({
  target: 'primary',
  kind: 'connections',
  event,
  severity: 'CRITICAL',
  summary: 'Connections at 97% of max_connections',
  openedAt: at,
  at,
  delivery: 'log',
  attempts: 0,
  ...extra,
});

describe('local collector output', () => {
  it('prints opened, escalated and resolved alerts, not suppressed ones', () => {
    // Act
    const lines = formatAlertOutcomes([
      outcome('opened'),
      outcome('suppressed'),
      outcome('resolved', { kind: 'unreachable', summary: 'back' }),
    ]);
    // Assess
    expect(lines).toEqual([
      '10:15:30  ALERT opened CRITICAL primary/connections: Connections at 97% of max_connections',
      '10:15:30  RESOLVED primary/unreachable: back',
    ]);
  });

  it('prints the top slow statements with their finding kinds, and why none qualified', () => {
    // Prepare
    const message = {
      version: 1 as const,
      target: 'primary',
      database: 'app',
      queryId: '1',
      fingerprint: 'f',
      query: 'SELECT *\n  FROM orders WHERE status = $1',
      calls: 1200,
      totalExecTimeMs: 6_000,
      meanExecTimeMs: 5,
      stddevExecTimeMs: 1,
      rows: 1,
      sharedBlksHit: 1,
      sharedBlksRead: 0,
      tempBlksWritten: 0,
      intervalSeconds: 300,
      observedAt: at.toISOString(),
      findings: [{ kind: 'seq_scan' as const, detail: 'x' }],
    };
    const run = {
      durationMs: 1,
      targets: [
        {
          target: 'primary',
          database: 'app',
          status: 'collected',
          diff: { intervalSeconds: 300, reset: false },
          slow: [{}],
          messages: [message],
          sent: 0,
          sendFailures: [],
        },
        {
          target: 's1',
          database: 'app',
          status: 'collected',
          diff: { intervalSeconds: 300, reset: false },
          slow: [],
          messages: [],
          sent: 0,
          sendFailures: [],
        },
      ],
    } as unknown as CollectSlowQueriesResult;
    // Act
    const lines = formatSlowQueriesRun(run, {
      at,
      limits: { topN: 5, minMeanMs: 10, minCalls: 2 },
    });
    // Assess
    expect(lines).toEqual([
      '10:15:30  slow queries primary: 1 in the last 300.0 s',
      '        5.0 ms × 1,200   SELECT * FROM orders WHERE status = $1  [seq_scan]',
      '10:15:30  slow queries s1: 0 in the last 300.0 s (none reached mean ≥ 10 ms and ≥ 2 calls: SLOW_QUERY_MIN_MEAN_MS, SLOW_QUERY_MIN_CALLS)',
    ]);
  });
});
