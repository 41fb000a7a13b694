import { beforeAll, describe, expect, it } from 'vitest';
import { planScatter } from '#shared/scatter';
import { initSqlParser } from '#shared/sql';

beforeAll(async () => {
  await initSqlParser();
});

const INT4 = 23;
const INT8 = 20;
const NUMERIC = 1700;
const TEXT = 25;

describe('planScatter: supported shapes', () => {
  it.each([
    ['SELECT id, name FROM t WHERE id > $1', 'concatenate', 'SELECT id, name FROM t WHERE id > $1'],
    ['SELECT * FROM t LIMIT 3 OFFSET 2;', 'concatenate', 'SELECT * FROM t\nLIMIT 5'],
    ['SELECT id FROM t ORDER BY id', 'merge-sort', 'SELECT id FROM t ORDER BY id'],
    [
      'SELECT id, v FROM t ORDER BY v DESC NULLS LAST, id LIMIT 5 OFFSET 3',
      'merge-sort',
      'SELECT id, v FROM t ORDER BY v DESC NULLS LAST, id\nLIMIT 8',
    ],
    [
      'SELECT id FROM t ORDER BY 1 FETCH FIRST 4 ROWS ONLY',
      'merge-sort',
      'SELECT id FROM t ORDER BY 1\nLIMIT 4',
    ],
    ['SELECT id FROM t ORDER BY id OFFSET 2', 'merge-sort', 'SELECT id FROM t ORDER BY id'],
    [
      'SELECT id FROM t ORDER BY id -- newest first\nLIMIT 10 OFFSET 5',
      'merge-sort',
      'SELECT id FROM t ORDER BY id -- newest first\nLIMIT 15',
    ],
    ['SELECT id FROM t ORDER BY id LIMIT ALL', 'merge-sort', 'SELECT id FROM t ORDER BY id'],
    [
      'SELECT count(*), max(v) AS top FROM t',
      'aggregate',
      'SELECT count(*) AS "__scatter_0" , max(v) AS "__scatter_1" FROM t',
    ],
    [
      'SELECT avg(x) FROM t',
      'aggregate',
      'SELECT sum(x) AS "__scatter_0" , count(x) AS "__scatter_0_count" FROM t',
    ],
    [
      'SELECT g, (avg(x)) AS mean, count(*) FILTER (WHERE x > 1) n FROM t GROUP BY 1 ORDER BY n DESC LIMIT 2',
      'group-aggregate',
      'SELECT g, (sum(x)) AS "__scatter_1" , count(*) FILTER (WHERE x > 1) AS "__scatter_2" , (count(x)) AS "__scatter_1_count" FROM t GROUP BY 1',
    ],
    [
      'SELECT a IS DISTINCT FROM b AS d, sum(x) FROM t GROUP BY a IS DISTINCT FROM b',
      'group-aggregate',
      'SELECT a IS DISTINCT FROM b AS d, sum(x) AS "__scatter_1" FROM t GROUP BY a IS DISTINCT FROM b',
    ],
    ['SELECT g FROM t GROUP BY g', 'group-aggregate', 'SELECT g FROM t GROUP BY g'],
    [
      "SELECT 'é' AS label, pg_catalog.sum(x) FROM t WHERE note = 'ü'",
      'aggregate',
      `SELECT 'é' AS label, pg_catalog.sum(x) AS "__scatter_1" FROM t WHERE note = 'ü'`,
    ],
  ])('%s → %s', (sql, shape, shardSql) => {
    // Act
    const plan = planScatter(sql);
    // Assess
    expect(plan.shape).toBe(shape);
    expect(plan.shardSql).toBe(shardSql);
  });
});

describe('planScatter: unsupported shapes', () => {
  it.each([
    ['SELECT count(DISTINCT x) FROM t', 'count(DISTINCT …)'],
    ['SELECT DISTINCT x FROM t', 'DISTINCT would keep duplicates'],
    ['SELECT DISTINCT ON (x) x, y FROM t', 'DISTINCT ON'],
    ['SELECT x, row_number() OVER (ORDER BY x) FROM t', 'window functions'],
    ['SELECT g, count(*) FROM t GROUP BY g HAVING count(*) > 1', 'HAVING'],
    ['SELECT x FROM a UNION SELECT x FROM b', 'set operations'],
    ['WITH c AS (SELECT g, count(*) n FROM t GROUP BY g) SELECT * FROM c', 'a CTE that groups'],
    ['WITH c AS (SELECT max(x) m FROM t) SELECT * FROM c', 'a CTE with the aggregate max()'],
    ['SELECT (SELECT max(x) FROM u), count(*) FROM t', 'subquery with the aggregate max()'],
    ['SELECT x FROM t WHERE x > (SELECT avg(x) FROM t)', 'subquery with the aggregate avg()'],
    ['SELECT x FROM t FOR UPDATE', 'FOR UPDATE'],
    ['UPDATE t SET x = 1', 'only SELECT is scattered (got UpdateStmt)'],
    ['SELECT 1 FROM t; SELECT 2 FROM t', 'exactly one statement (got 2)'],
    ["SELECT string_agg(x, ',') FROM t", 'string_agg() cannot be combined'],
    ['SELECT array_agg(x) FROM t', 'array_agg() cannot be combined'],
    ['SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM t', 'percentile_cont()'],
    ['SELECT x FROM t ORDER BY lower(x) LIMIT 3', 'ORDER BY must name an output column'],
    ['SELECT x FROM t ORDER BY y', 'ORDER BY must name an output column'],
    ['SELECT sum(x) / count(*) FROM t', 'sum() inside an expression'],
    ['SELECT g, count(*) FROM t GROUP BY h', 'every GROUP BY key must also appear'],
    ['SELECT g, count(*) FROM t GROUP BY ROLLUP (g)', 'ROLLUP'],
    ['SELECT *, 1 FROM t GROUP BY id', 'SELECT * with aggregates or GROUP BY'],
    ['SELECT count(*)', 'without FROM'],
    ['SELECT x FROM t ORDER BY x LIMIT $1', 'LIMIT must be a non-negative integer literal'],
    ['SELECT x FROM t ORDER BY x FETCH FIRST 2 ROWS WITH TIES', 'WITH TIES'],
    ['SELECT x INTO n FROM t', 'SELECT INTO'],
    ['SELECT x FROM t ORDER BY x USING <', 'USING'],
  ])('%s', (sql, reason) => {
    // Act
    const act = () => planScatter(sql);
    // Assess
    expect(act).toThrow(expect.objectContaining({ code: 'SCATTER_UNSUPPORTED' }));
    expect(act).toThrow(reason);
  });

  it('reports a syntax error with its position', () => {
    // Act + Assess
    expect(() => planScatter('SELEC x FROM t')).toThrow(
      expect.objectContaining({ code: 'SQL_SYNTAX_ERROR' }),
    );
  });
});

describe('ScatterPlan.merge', () => {
  it('k-way merges ORDER BY DESC (nulls first by default), then applies OFFSET and LIMIT', () => {
    // Prepare
    const plan = planScatter('SELECT id, v FROM t ORDER BY v DESC, id LIMIT 3 OFFSET 1');
    const fields = [
      { name: 'id', dataTypeId: INT4 },
      { name: 'v', dataTypeId: NUMERIC },
    ];
    const shard1 = {
      fields,
      rows: [
        { id: 4, v: null },
        { id: 1, v: '10.5' },
        { id: 7, v: '2' },
      ],
    };
    const shard2 = {
      fields,
      rows: [
        { id: 2, v: '9.75' },
        { id: 5, v: '2' },
      ],
    };
    // Act
    const merged = plan.merge([shard1, shard2]);
    // Assess
    expect(merged.rows.map((r) => r.id)).toEqual([1, 2, 5]);
  });

  it('resolves ORDER BY a name behind SELECT * from the result fields', () => {
    // Prepare
    const plan = planScatter('SELECT * FROM t ORDER BY name LIMIT 2');
    const fields = [
      { name: 'id', dataTypeId: INT4 },
      { name: 'name', dataTypeId: TEXT },
    ];
    // Act
    const merged = plan.merge([
      {
        fields,
        rows: [
          { id: 1, name: 'b' },
          { id: 3, name: 'd' },
        ],
      },
      {
        fields,
        rows: [
          { id: 2, name: 'a' },
          { id: 4, name: 'c' },
        ],
      },
    ]);
    // Assess
    expect(merged.rows.map((r) => r.name)).toEqual(['a', 'b']);
  });

  it('adds counts and sums exactly and recombines avg as PostgreSQL rounds it', () => {
    // Prepare
    const plan = planScatter('SELECT count(*) AS n, sum(p) AS total, avg(i) AS mean FROM t');
    const fields = [
      { name: '__scatter_0', dataTypeId: INT8 },
      { name: '__scatter_1', dataTypeId: NUMERIC },
      { name: '__scatter_2', dataTypeId: INT8 },
      { name: '__scatter_2_count', dataTypeId: INT8 },
    ];
    const row = (n: string, total: string | null, sum: string | null, count: string) => ({
      __scatter_0: n,
      __scatter_1: total,
      __scatter_2: sum,
      __scatter_2_count: count,
    });
    // Act
    const merged = plan.merge([
      { fields, rows: [row('9007199254740993', '0.10', '1', '1')] },
      { fields, rows: [row('1', '0.205', '1', '1')] },
      { fields, rows: [row('0', null, '2', '1')] },
      { fields, rows: [row('0', null, null, '0')] },
    ]);
    // Assess: avg(1, 1, 2) = 1.3333333333333333 (16 significant digits, as SELECT avg() prints).
    expect(merged.rows).toEqual([
      { n: '9007199254740994', total: '0.305', mean: '1.3333333333333333' },
    ]);
    expect(merged.fields).toEqual([
      { name: 'n', dataTypeId: INT8 },
      { name: 'total', dataTypeId: NUMERIC },
      { name: 'mean', dataTypeId: NUMERIC },
    ]);
  });

  it('merges groups by key, then orders and limits the merged groups', () => {
    // Prepare
    const plan = planScatter(
      'SELECT g, count(*) AS n, min(v) AS lo FROM t GROUP BY g ORDER BY n DESC, g LIMIT 2',
    );
    const fields = [
      { name: 'g', dataTypeId: TEXT },
      { name: '__scatter_1', dataTypeId: INT8 },
      { name: '__scatter_2', dataTypeId: INT4 },
    ];
    const row = (g: string | null, n: string, lo: number | null) => ({
      g,
      __scatter_1: n,
      __scatter_2: lo,
    });
    // Act
    const merged = plan.merge([
      { fields, rows: [row('a', '2', 5), row(null, '1', null)] },
      { fields, rows: [row('b', '2', 1), row(null, '2', 3)] },
      { fields, rows: [row('a', '1', 2)] },
    ]);
    // Assess
    expect(merged.rows).toEqual([
      { g: 'a', n: '3', lo: 2 },
      { g: null, n: '3', lo: 3 },
    ]);
  });

  it('returns nothing to merge as an empty result', () => {
    // Act + Assess
    expect(planScatter('SELECT count(*) FROM t').merge([])).toEqual({ rows: [], fields: [] });
  });
});
