import { describe, expect, it } from 'vitest';
import { parseWorkload, planWorkloadRound, type Workload } from '../../../local/demo/workload.ts';

const workload: Workload = parseWorkload({
  queries: [
    { id: 'hot', sql: 'SELECT $1', params: [[1], [2], [3]], weight_per_hour: 900, kind: 'read' },
    { id: 'cold', sql: 'SELECT 2', params: [[]], weight_per_hour: 1, kind: 'read' },
    { id: 'write', sql: 'UPDATE t SET x = $1', params: [[9]], weight_per_hour: 99, kind: 'write' },
  ],
});

describe('planWorkloadRound', () => {
  it('runs each query in proportion to its weight, at least once', () => {
    // Act
    const plan = planWorkloadRound(workload, {
      round: 0,
      executionsPerRound: 100,
      includeWrites: true,
    });

    // Assess
    const count = (id: string) => plan.filter((s) => s.query.id === id).length;
    expect(count('hot')).toBe(90);
    expect(count('write')).toBe(10);
    expect(count('cold')).toBe(1);
  });

  it('interleaves the queries instead of running them in blocks', () => {
    // Act
    const plan = planWorkloadRound(workload, {
      round: 0,
      executionsPerRound: 100,
      includeWrites: true,
    });

    // Assess
    const firstWrite = plan.findIndex((s) => s.query.id === 'write');
    expect(firstWrite).toBeGreaterThan(0);
    expect(firstWrite).toBeLessThan(10);
  });

  it('cycles parameter sets across rounds and can skip writes', () => {
    // Act
    const round0 = planWorkloadRound(workload, {
      round: 0,
      executionsPerRound: 2,
      includeWrites: false,
    });
    const round1 = planWorkloadRound(workload, {
      round: 1,
      executionsPerRound: 2,
      includeWrites: false,
    });

    // Assess
    expect(round0.every((s) => s.query.kind === 'read')).toBe(true);
    const hotParams = (plan: typeof round0) =>
      plan.filter((s) => s.query.id === 'hot').map((s) => s.params[0]);
    expect(hotParams(round0)).toEqual([1, 2]);
    expect(hotParams(round1)).toEqual([3, 1]);
  });
});

describe('parseWorkload', () => {
  it.each([
    [{ queries: [] }, 'queries'],
    [
      { queries: [{ id: 'a', sql: 'SELECT 1', params: [], weight_per_hour: 1, kind: 'read' }] },
      'params',
    ],
    [
      { queries: [{ id: 'a', sql: 'SELECT 1', params: [[]], weight_per_hour: 0, kind: 'read' }] },
      'weight_per_hour',
    ],
    [
      { queries: [{ id: 'a', sql: 'SELECT 1', params: [[]], weight_per_hour: 1, kind: 'ddl' }] },
      'kind',
    ],
    [
      {
        queries: [
          { id: 'a', sql: 'SELECT 1', params: [[]], weight_per_hour: 1, kind: 'read' },
          { id: 'a', sql: 'SELECT 2', params: [[]], weight_per_hour: 1, kind: 'read' },
        ],
      },
      'duplicate id a',
    ],
  ])('rejects %j naming %s', (document, problem) => {
    // Act
    const parse = () => parseWorkload(document);

    // Assess
    expect(parse).toThrow(problem);
  });
});
