import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  adviseRewrites,
  detectRewrites,
  loadSchemaInfo,
  type RewriteSuggestion,
} from '#shared/advisor';
import { createDatabase, type Database } from '#shared/db';
import { initSqlParser } from '#shared/sql';
import { recreateDatabase, runSql } from '../optimizer/scratch-db.ts';
import { testDatabaseOptions } from '../support/env.ts';

// A small shop: 20k customers, 60k orders, 30k events, analysed, with the usual indexes.
const SCHEMA = `
CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL, region int NOT NULL);
INSERT INTO customers SELECT g, 'user' || g || '@example.com', g % 50 FROM generate_series(1, 20000) g;
CREATE INDEX customers_email_idx ON customers (email);
CREATE TABLE orders (
  id bigint PRIMARY KEY,
  customer_id int,
  status text NOT NULL,
  created_at timestamptz NOT NULL,
  total numeric(10,2) NOT NULL
);
INSERT INTO orders
SELECT g, 1 + (g * 7919) % 15000,
  CASE WHEN g % 6000 = 0 THEN 'rare' WHEN g % 3 = 0 THEN 'paid' ELSE 'new' END,
  timestamptz '2026-01-01 00:00+00' + (g || ' minutes')::interval,
  (g % 500) + 0.99
FROM generate_series(1, 60000) g;
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE INDEX orders_status_idx ON orders (status);
CREATE INDEX orders_created_idx ON orders (created_at, id);
ANALYZE;
`;

let url: string;
let db: Database;

beforeAll(async () => {
  await initSqlParser();
  url = await recreateDatabase('dbopt_it_opt_rewrites');
  await runSql(url, SCHEMA);
  db = createDatabase(testDatabaseOptions(url));
});

afterAll(async () => {
  await db?.end();
});

/** Rows of a statement as sorted JSON lines, to compare results of original and rewrite. */
const rowsOf = async (sql: string, params: unknown[] = []): Promise<string[]> =>
  (await runSql(url, sql, params)).rows.map((r) => JSON.stringify(r)).sort();

const only = (suggestions: RewriteSuggestion[], rule: string) => {
  const found = suggestions.filter((s) => s.rule === rule);
  expect(found).toHaveLength(1);
  return found[0] as RewriteSuggestion;
};

describe('rewrite advisor on PostgreSQL 15 (measured)', () => {
  it.each([
    [
      'or_across_tables',
      "SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.status = 'rare' OR c.email = 'user42@example.com'",
      [],
    ],
    ['non_sargable_predicate', 'SELECT id FROM orders WHERE created_at::date = $1', ['2026-01-15']],
    ['mismatched_literal', 'SELECT status FROM orders WHERE id = 4242.0', []],
    [
      'non_sargable_predicate',
      "SELECT id FROM orders WHERE date_trunc('day', created_at) = '2026-01-15'",
      [],
    ],

    [
      'count_gt_zero',
      'SELECT c.id FROM customers c WHERE (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) > 0',
      [],
    ],
  ])('%s: cheaper plan, same rows', async (rule, sql, params) => {
    // Act
    const advice = await adviseRewrites(db, [{ sql, params }]);
    // Assess
    expect(advice.errors).toEqual([]);
    const s = only(advice.suggestions, rule);
    expect(s.costAfter).toBeLessThan(s.costBefore * 0.95);
    expect(s.planMode).toBe('custom');
    expect(await rowsOf(s.rewrittenSql, params)).toEqual(await rowsOf(sql, params));
  });

  it('deep OFFSET: the keyset page costs a fraction of the offset page', async () => {
    // Prepare
    const sql = 'SELECT id, created_at FROM orders ORDER BY created_at, id LIMIT 20 OFFSET 40000';
    // Act
    const advice = await adviseRewrites(db, [{ sql }]);
    // Assess
    const s = only(advice.suggestions, 'deep_offset');
    expect(s.rewrittenSql).toContain('(created_at, id) > ($1, $2)');
    expect(s.costAfter).toBeLessThan(s.costBefore / 10);
  });

  it.each([
    ['unknown (normalised pg_stat_statements text)', undefined, 'generic'],
    ['known', ['new', 20, 30000], 'custom'],
  ])(
    'deep OFFSET as a parameter, values %s: keyset reuses the freed $3 and is cheaper',
    async (_name, params, planMode) => {
      // Prepare
      const sql =
        'SELECT id, created_at FROM orders WHERE status = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3';
      // Act
      const advice = await adviseRewrites(db, [{ sql, ...(params ? { params } : {}) }], {
        unknownOffsetIsCandidate: true,
      });
      // Assess
      expect(advice.errors).toEqual([]);
      const s = only(advice.suggestions, 'deep_offset');
      expect(s.rewrittenSql).toBe(
        'SELECT id, created_at FROM orders WHERE (status = $1) AND (created_at, id) > ($3, $4) ORDER BY created_at, id LIMIT $2 ',
      );
      expect(s.planMode).toBe(planMode);
      expect(s.costAfter).toBeLessThan(s.costBefore / 2);
    },
  );

  it('NOT IN → NOT EXISTS is kept as a NULL-correctness fix and returns the same rows without NULLs', async () => {
    // Prepare
    const sql = 'SELECT id FROM customers WHERE id NOT IN (SELECT customer_id FROM orders)';
    // Act
    const advice = await adviseRewrites(db, [{ sql }]);
    // Assess
    const s = only(advice.suggestions, 'not_in_subquery');
    expect(s.correctnessFix).toBe(true);
    expect(await rowsOf(s.rewrittenSql)).toEqual(await rowsOf(sql));
    expect((await rowsOf(s.rewrittenSql)).length).toBe(5000);
  });

  it.each([
    [
      'a nullable subquery column',
      'SELECT id FROM customers WHERE id NOT IN (SELECT customer_id FROM orders)',
      true,
    ],
    [
      'two NOT NULL columns',
      'SELECT id FROM customers WHERE region NOT IN (SELECT id FROM orders)',
      false,
    ],
  ])(
    'NOT IN over %s: correctness fix = %s (NOT NULL read from the catalog)',
    async (_name, sql, fix) => {
      // Prepare
      const schema = await loadSchemaInfo(db.pool(), ['customers', 'orders']);
      // Act
      const found = detectRewrites(sql, { schema }).find((c) => c.rule === 'not_in_subquery');
      // Assess
      expect(found?.correctnessFix).toBe(fix);
    },
  );

  it.each([
    [
      "date_trunc('quarter', …) = $1",
      "SELECT id FROM orders WHERE date_trunc('quarter', created_at) = $1",
      ['2026-01-01 00:00+00'],
    ],
    [
      "date_trunc('day', …) = $1 off the unit start",
      "SELECT id FROM orders WHERE date_trunc('day', created_at) = $1",
      ['2026-01-15 10:00+00'],
    ],
    [
      "date_trunc('month', …) = literal",
      "SELECT id FROM orders WHERE date_trunc('month', created_at) = '2026-02-01'",
      [],
    ],
  ])('%s: the range rewrite runs and returns the same rows', async (_name, sql, params) => {
    // Prepare
    const schema = await loadSchemaInfo(db.pool(), ['orders']);
    const found = detectRewrites(sql, { schema }).find((c) => c.rule === 'non_sargable_predicate');
    // Act
    const rewritten = await rowsOf(found?.rewrittenSql ?? 'SELECT 1', params);
    // Assess
    expect(rewritten).toEqual(await rowsOf(sql, params));
  });

  it('plans a statement without parameter values as the generic plan', async () => {
    // Act
    const advice = await adviseRewrites(db, [
      { sql: 'SELECT id FROM orders WHERE created_at::date = $1' },
    ]);
    // Assess
    const s = only(advice.suggestions, 'non_sargable_predicate');
    expect(s.planMode).toBe('generic');
    expect(s.costAfter).toBeLessThan(s.costBefore);
  });

  it('reports the measured OR-list rewrite only when it is cheaper', async () => {
    // Prepare
    const sql =
      'SELECT id FROM orders WHERE customer_id = 1 OR customer_id = 2 OR customer_id = 3 OR customer_id = 4';
    // Act
    const advice = await adviseRewrites(db, [{ sql }], { minCostReduction: 0 });
    // Assess
    for (const s of advice.suggestions) expect(s.costAfter).toBeLessThan(s.costBefore);
    const s = advice.suggestions.find((x) => x.rule === 'or_list');
    if (s) expect(await rowsOf(s.rewrittenSql)).toEqual(await rowsOf(sql));
  });

  it.each([
    ['IN (subquery)', 'SELECT id FROM customers WHERE id IN (SELECT customer_id FROM orders)'],
    [
      'LEFT JOIN … IS NULL',
      'SELECT c.id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id WHERE o.id IS NULL',
    ],
    ['a plain CTE', "WITH r AS (SELECT id FROM orders WHERE status = 'rare') SELECT id FROM r"],
    [
      'an already sargable range',
      "SELECT id FROM orders WHERE created_at >= '2026-01-15' AND created_at < '2026-01-16'",
    ],
  ])('suggests nothing for %s', async (_name, sql) => {
    // Act
    const advice = await adviseRewrites(db, [{ sql }]);
    // Assess
    expect(advice).toEqual({ suggestions: [], errors: [] });
  });
});
