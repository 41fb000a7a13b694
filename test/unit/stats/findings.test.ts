import { describe, expect, it } from 'vitest';
import {
  DEFAULT_FINDING_THRESHOLDS,
  findCounterFindings,
  findSeqScans,
  type SlowStatement,
} from '#shared/stats';
import { type PlanNode, parseExplainJson } from '../../../shared/stats/findings.ts';

const slow = (overrides: Partial<SlowStatement> = {}): SlowStatement => ({
  fingerprint: 'fp',
  queryId: '1',
  query: 'SELECT 1',
  calls: 100,
  totalExecTimeMs: 1_000,
  sumSquaresMs2: 0,
  rows: 100,
  sharedBlksHit: 1_000,
  sharedBlksRead: 0,
  tempBlksWritten: 0,
  meanExecTimeMs: 10,
  stddevExecTimeMs: 1,
  entries: 1,
  ...overrides,
});

describe('findCounterFindings', () => {
  it.each<[string, Partial<SlowStatement>, string]>([
    ['low buffer hit ratio', { sharedBlksHit: 500, sharedBlksRead: 500 }, 'low_cache_hit_ratio'],
    ['high variance', { meanExecTimeMs: 10, stddevExecTimeMs: 25 }, 'high_variance'],
    ['many rows per call', { rows: 500_000, calls: 100 }, 'many_rows_per_call'],
    ['temp spills', { tempBlksWritten: 128 }, 'temp_spill'],
  ])('reports %s', (_name, overrides, kind) => {
    // Act
    const findings = findCounterFindings(slow(overrides), DEFAULT_FINDING_THRESHOLDS);
    // Assess
    expect(findings.map((f) => f.kind)).toEqual([kind]);
    expect(findings[0]?.detail.length).toBeGreaterThan(20);
  });

  it.each<[string, Partial<SlowStatement>]>([
    ['a healthy statement', {}],
    ['a low hit ratio over too few blocks', { sharedBlksHit: 10, sharedBlksRead: 40 }],
    ['variance over too few calls', { calls: 3, rows: 3, stddevExecTimeMs: 50 }],
  ])('reports nothing for %s', (_name, overrides) => {
    // Act / Assess
    expect(findCounterFindings(slow(overrides))).toEqual([]);
  });
});

describe('findSeqScans / parseExplainJson', () => {
  const plan: PlanNode = {
    'Node Type': 'Hash Join',
    Plans: [
      {
        'Node Type': 'Seq Scan',
        'Relation Name': 'orders',
        Schema: 'public',
        'Plan Rows': 120,
        Filter: '(status = $1)',
      },
      {
        'Node Type': 'Hash',
        Plans: [{ 'Node Type': 'Index Scan', 'Relation Name': 'customers', Schema: 'public' }],
      },
    ],
  };

  it('finds every sequential scan in a plan tree with its filter', () => {
    // Act / Assess
    expect(findSeqScans(plan)).toEqual([
      { relation: 'public.orders', planRows: 120, filter: '(status = $1)' },
    ]);
  });

  it('accepts EXPLAIN (FORMAT JSON) output as parsed JSON or as text (Data API)', () => {
    // Prepare
    const doc = [{ Plan: plan }];
    // Act / Assess
    expect(parseExplainJson([{ 'QUERY PLAN': doc }])).toEqual(plan);
    expect(parseExplainJson([{ 'QUERY PLAN': JSON.stringify(doc) }])).toEqual(plan);
  });

  it.each<[string, unknown]>([
    ['no plan', []],
    ['two plans', [{ Plan: plan }, { Plan: plan }]],
    ['a plan without a node type', [{ Plan: {} }]],
  ])('refuses %s', (_name, doc) => {
    // Act / Assess
    expect(() => parseExplainJson([{ 'QUERY PLAN': doc }])).toThrow();
  });
});
