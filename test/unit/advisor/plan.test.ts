import { beforeAll, describe, expect, it } from 'vitest';
import { initSqlParser } from '#shared/sql';
import { summarizePlan } from '../../../shared/advisor/plan.ts';

const indexScan = (filter?: string) => ({
  'Node Type': 'Index Scan',
  'Index Name': '<1>btree_t_created_at',
  'Total Cost': 50,
  'Plan Rows': 10,
  ...(filter ? { Filter: filter } : {}),
});

const explain = (plan: Record<string, unknown>) => [{ Plan: plan }];
const columns = (name: string) => (name === '<1>btree_t_created_at' ? ['created_at'] : undefined);

beforeAll(async () => {
  await initSqlParser();
});

describe('summarizePlan', () => {
  it.each([
    [
      'an ordered scan under LIMIT filtering on a column the index lacks',
      { 'Node Type': 'Limit', 'Total Cost': 5, Plans: [indexScan("(status = 'hold'::text)")] },
      false,
    ],
    [
      'the same scan when a Sort sits between it and the LIMIT',
      {
        'Node Type': 'Limit',
        'Total Cost': 5,
        Plans: [
          { 'Node Type': 'Sort', 'Total Cost': 5, Plans: [indexScan("(status = 'hold'::text)")] },
        ],
      },
      true,
    ],
    [
      'a filter only on the indexed column (LIKE recheck)',
      { 'Node Type': 'Limit', 'Total Cost': 5, Plans: [indexScan('(created_at > now())')] },
      true,
    ],
    [
      'the inner side of a nested loop',
      {
        'Node Type': 'Limit',
        'Total Cost': 5,
        Plans: [
          {
            'Node Type': 'Nested Loop',
            'Total Cost': 5,
            Plans: [
              { 'Node Type': 'Seq Scan', 'Parent Relationship': 'Outer', 'Total Cost': 1 },
              { ...indexScan('(status = 1)'), 'Parent Relationship': 'Inner' },
            ],
          },
        ],
      },
      true,
    ],
  ])('trust for %s', (_, plan, trusted) => {
    // Act
    const summary = summarizePlan(explain(plan), columns);

    // Assess
    expect(summary.uses).toEqual([
      expect.objectContaining({ indexName: '<1>btree_t_created_at', trusted }),
    ]);
    expect(summary.totalCost).toBe(5);
  });

  it('reads the rows a write produces from the ModifyTable input', () => {
    // Act
    const summary = summarizePlan(
      JSON.stringify(
        explain({
          'Node Type': 'ModifyTable',
          'Total Cost': 9,
          'Plan Rows': 0,
          Plans: [{ 'Node Type': 'Function Scan', 'Plan Rows': 500 }],
        }),
      ),
      () => undefined,
    );

    // Assess
    expect(summary).toEqual({ totalCost: 9, uses: [], rows: 500 });
  });
});
