import { beforeAll, describe, expect, it } from 'vitest';
import { detectRewrites, schemaInfoFrom } from '#shared/advisor';
import { initSqlParser, parseStatements } from '#shared/sql';

// A catalog the rules can ask about column types and leading index columns.
const schema = schemaInfoFrom(
  new Map([
    ['orders.id', { type: 'bigint', indexed: true }],
    ['orders.customer_id', { type: 'integer', indexed: true }],
    ['orders.status', { type: 'text', indexed: true }],
    ['orders.created_at', { type: 'timestamp with time zone', indexed: true }],
    ['orders.note', { type: 'character varying(40)', indexed: true }],
    ['orders.total', { type: 'numeric(10,2)', indexed: true }],
    ['events.ts', { type: 'timestamp without time zone', indexed: true }],
    ['events.kind', { type: 'text', indexed: false }],
    ['events.unindexed_ts', { type: 'timestamp without time zone', indexed: false }],
    ['customers.id', { type: 'integer', indexed: true }],
    ['customers.email', { type: 'text', indexed: true }],
  ]),
);

beforeAll(async () => {
  await initSqlParser();
});

const rewritesOf = (sql: string, params?: unknown[]) =>
  detectRewrites(sql, { schema, params }).map((c) => ({ rule: c.rule, sql: c.rewrittenSql }));

describe('rewrite rules', () => {
  it.each([
    [
      'NOT IN (subquery) → NOT EXISTS, references qualified',
      'SELECT id FROM customers WHERE id NOT IN (SELECT customer_id FROM orders)',
      'not_in_subquery',
      'SELECT id FROM customers WHERE NOT EXISTS (SELECT 1 FROM orders WHERE orders.customer_id = customers.id)',
    ],
    [
      'NOT IN keeps the subquery WHERE',
      'SELECT c.id FROM customers c WHERE c.id NOT IN (SELECT o.customer_id FROM orders o WHERE o.status = $1)',
      'not_in_subquery',
      'SELECT c.id FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE (o.status = $1) AND o.customer_id = c.id)',
    ],
    [
      'OR across joined tables → UNION ALL without duplicates',
      'SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.status = $1 OR c.email = $2',
      'or_across_tables',
      'SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE (o.status = $1)\nUNION ALL\nSELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE (c.email = $2) AND (o.status = $1) IS NOT TRUE',
    ],
    [
      'deep OFFSET → keyset with a row comparison',
      'SELECT id, created_at FROM orders WHERE status = $1 ORDER BY created_at, id LIMIT 20 OFFSET 5000',
      'deep_offset',
      'SELECT id, created_at FROM orders WHERE (status = $1) AND (created_at, id) > ($2, $3) ORDER BY created_at, id LIMIT 20 ',
    ],
    [
      'deep OFFSET without WHERE, descending, offset as a known parameter',
      'SELECT id FROM orders ORDER BY id DESC LIMIT 50 OFFSET $1',
      'deep_offset',
      'SELECT id FROM orders WHERE id < $1\nORDER BY id DESC LIMIT 50 ',
    ],
    [
      'cast of a timestamp column to date → one-day range',
      'SELECT id FROM orders WHERE created_at::date = $1',
      'non_sargable_predicate',
      "SELECT id FROM orders WHERE (created_at >= CAST($1 AS date) AND created_at < CAST($1 AS date) + interval '1 day')",
    ],
    [
      "date_trunc('day', col) = v → [v, v + 1 day)",
      "SELECT kind FROM events WHERE date_trunc('day', ts) = '2024-03-01'",
      'non_sargable_predicate',
      "SELECT kind FROM events WHERE (ts >= CAST('2024-03-01' AS timestamp without time zone) AND ts < CAST('2024-03-01' AS timestamp without time zone) + interval '1 day' AND date_trunc('day', CAST('2024-03-01' AS timestamp without time zone)) = CAST('2024-03-01' AS timestamp without time zone))",
    ],
    [
      "date_trunc('quarter', col) = $1 → [v, v + 3 months)",
      "SELECT id FROM orders WHERE date_trunc('quarter', created_at) = $1",
      'non_sargable_predicate',
      "SELECT id FROM orders WHERE (created_at >= CAST($1 AS timestamp with time zone) AND created_at < CAST($1 AS timestamp with time zone) + interval '3 months' AND date_trunc('quarter', CAST($1 AS timestamp with time zone)) = CAST($1 AS timestamp with time zone))",
    ],
    [
      'extract(year from col) = N → one year',
      'SELECT kind FROM events WHERE extract(year from ts) = 2024',
      'non_sargable_predicate',
      "SELECT kind FROM events WHERE (ts >= '2024-01-01' AND ts < '2025-01-01')",
    ],
    [
      'numeric literal on a bigint column → integer literal',
      'SELECT status FROM orders WHERE id = 42.0',
      'mismatched_literal',
      'SELECT status FROM orders WHERE id = 42',
    ],
    [
      'numeric literals in an IN list on an integer column',
      'SELECT id FROM orders WHERE customer_id IN (1.0, 2.00)',
      'mismatched_literal',
      'SELECT id FROM orders WHERE customer_id IN (1, 2)',
    ],
    [
      'a number cast to numeric or float on an integer column',
      'SELECT id FROM orders WHERE customer_id = 7::numeric AND id > CAST(100 AS double precision)',
      'mismatched_literal',
      'SELECT id FROM orders WHERE customer_id = 7 AND id > 100',
    ],
    [
      '(SELECT count(*) …) > 0 → EXISTS',
      'SELECT c.id FROM customers c WHERE (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) > 0',
      'count_gt_zero',
      'SELECT c.id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)',
    ],
    [
      '0 = (SELECT count(1) …) → NOT EXISTS',
      'SELECT c.id FROM customers c WHERE 0 = (SELECT count(1) FROM orders o WHERE o.customer_id = c.id)',
      'count_gt_zero',
      'SELECT c.id FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)',
    ],
    [
      'OR list of three on one column → IN',
      "SELECT id FROM orders WHERE status = 'new' OR status = 'paid' OR status = 'sent'",
      'or_list',
      "SELECT id FROM orders WHERE status IN ('new', 'paid', 'sent')",
    ],
    [
      'OR list of parameters inside an AND',
      'SELECT id FROM orders WHERE total > 5 AND (customer_id = $1 OR $2 = customer_id OR customer_id = $3)',
      'or_list',
      'SELECT id FROM orders WHERE total > 5 AND (customer_id IN ($1, $2, $3))',
    ],
  ])('%s', (_name, sql, rule, expected) => {
    // Prepare
    const params = sql.includes('OFFSET $1') ? [10_000] : undefined;
    // Act
    const found = rewritesOf(sql, params);
    // Assess
    expect(found).toEqual([{ rule, sql: expected }]);
    expect(parseStatements(expected)).toHaveLength(1);
  });

  it('marks NOT IN as a correctness fix and explains the NULL trap', () => {
    // Act
    const [found] = detectRewrites(
      'SELECT id FROM customers WHERE id NOT IN (SELECT customer_id FROM orders)',
    );
    // Assess
    expect(found?.correctnessFix).toBe(true);
    expect(found?.rationale).toContain('NULL');
  });

  it.each([
    [
      'both columns NOT NULL',
      'SELECT id FROM customers WHERE id NOT IN (SELECT customer_id FROM orders)',
      false,
    ],
    [
      'a nullable outer column',
      'SELECT id FROM customers WHERE email NOT IN (SELECT status FROM orders)',
      true,
    ],
    [
      'an outer join inside the subquery',
      'SELECT c.id FROM customers c WHERE c.id NOT IN (SELECT o.customer_id FROM orders o LEFT JOIN events e ON e.kind = o.status)',
      true,
    ],
  ])('NOT IN with %s: correctness fix = %s', (_name, sql, fix) => {
    // Prepare
    const notNull = schemaInfoFrom(
      new Map([
        ['customers.id', { type: 'integer', indexed: true, notNull: true }],
        ['customers.email', { type: 'text', indexed: true }],
        ['orders.customer_id', { type: 'integer', indexed: true, notNull: true }],
        ['orders.status', { type: 'text', indexed: true, notNull: true }],
        ['events.kind', { type: 'text', indexed: false }],
      ]),
    );
    // Act
    const found = detectRewrites(sql, { schema: notNull }).find(
      (c) => c.rule === 'not_in_subquery',
    );
    // Assess
    expect(found?.correctnessFix).toBe(fix);
    expect(found?.rationale).toContain(fix ? 'IS NOT NULL' : 'same rows');
  });

  it('gives the keyset rewrite a probe for its new parameters', () => {
    // Act
    const [found] = detectRewrites(
      'SELECT id FROM orders ORDER BY created_at, id LIMIT 20 OFFSET 5000',
    );
    // Assess
    expect(found?.extraParams).toEqual({
      numbers: [1, 2],
      probeSql: 'SELECT created_at, id FROM orders ORDER BY created_at, id LIMIT 1 ',
    });
  });

  it.each([
    [
      'SELECT id FROM orders ORDER BY created_at, id LIMIT 20 OFFSET 5000',
      'Add created_at to the select list',
    ],
    ['SELECT * FROM orders ORDER BY created_at, id LIMIT 20 OFFSET 5000', undefined],
    [
      'SELECT o.id, o.created_at FROM orders o ORDER BY o.created_at, o.id LIMIT 20 OFFSET 5000',
      undefined,
    ],
  ])('keyset for %s says which keys to select', (sql, advice) => {
    // Act
    const [found] = detectRewrites(sql);
    // Assess
    expect(found?.rule).toBe('deep_offset');
    if (advice) expect(found?.rationale).toContain(advice);
    else expect(found?.rationale).not.toContain('to the select list');
  });

  it('drops a trailing semicolon before splicing a UNION', () => {
    // Act
    const [found] = detectRewrites(
      'SELECT o.id FROM orders o, customers c WHERE c.id = o.customer_id AND (o.status = $1 OR c.email = $2);',
    );
    // Assess
    expect(found?.rule).toBe('or_across_tables');
    expect(found?.rewrittenSql).not.toContain(';');
  });
});

describe('rewrite rules: no suggestion', () => {
  it.each([
    [
      'IN (subquery): already a semi-join',
      'SELECT id FROM customers WHERE id IN (SELECT customer_id FROM orders)',
    ],
    [
      'EXISTS: already a semi-join',
      'SELECT id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)',
    ],
    [
      'NOT EXISTS: already an anti-join',
      'SELECT id FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)',
    ],
    [
      'LEFT JOIN … IS NULL: already an anti-join',
      'SELECT c.id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id WHERE o.id IS NULL',
    ],
    [
      'a plain CTE: inlined by the planner',
      'WITH recent AS (SELECT id FROM orders WHERE status = $1) SELECT id FROM recent',
    ],
    ['NOT IN of a constant list', 'SELECT id FROM orders WHERE customer_id NOT IN (1, 2, 3)'],
    [
      'NOT IN whose references would be ambiguous (same table inside)',
      'SELECT id FROM orders WHERE id NOT IN (SELECT customer_id FROM orders)',
    ],
    [
      'OR within one table (a BitmapOr already)',
      'SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.status = $1 OR o.customer_id = $2',
    ],
    [
      'OR across tables in an aggregate query',
      'SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.status = $1 OR c.email = $2',
    ],
    ['a shallow OFFSET', 'SELECT id FROM orders ORDER BY id LIMIT 20 OFFSET 40'],
    ['a deep OFFSET without ORDER BY', 'SELECT id FROM orders LIMIT 20 OFFSET 50000'],
    [
      'a deep OFFSET with mixed directions',
      'SELECT id FROM orders ORDER BY created_at DESC, id LIMIT 20 OFFSET 50000',
    ],
    [
      'a deep OFFSET given as an unknown parameter',
      'SELECT id FROM orders ORDER BY id LIMIT 20 OFFSET $1',
    ],
    [
      'a range on the bare column',
      'SELECT id FROM orders WHERE created_at >= $1 AND created_at < $2',
    ],
    ['a cast of an unindexed column', 'SELECT kind FROM events WHERE unindexed_ts::date = $1'],
    ['a cast of the value, not the column', 'SELECT kind FROM events WHERE ts = $1::timestamp'],
    ['an integer literal on an integer column', 'SELECT id FROM orders WHERE id = 42'],
    ['a numeric literal on a numeric column', 'SELECT id FROM orders WHERE total = 42.0'],
    [
      'an integer cast to bigint on an integer column',
      'SELECT id FROM orders WHERE customer_id = 7::bigint',
    ],
    ['a numeric cast on a numeric column', 'SELECT id FROM orders WHERE total = 7::numeric'],
    ['varchar compared with text', "SELECT id FROM orders WHERE note = 'x'::text"],
    [
      'a fractional literal on an integer column (a bug, not a rewrite)',
      'SELECT id FROM orders WHERE id = 1.5',
    ],
    [
      'count(*) compared with another number',
      'SELECT c.id FROM customers c WHERE (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) > 5',
    ],
    [
      'count of a nullable column',
      'SELECT c.id FROM customers c WHERE (SELECT count(o.note) FROM orders o WHERE o.customer_id = c.id) > 0',
    ],
    ['an OR list of two', 'SELECT id FROM orders WHERE status = $1 OR status = $2'],
    [
      'an OR list over two columns',
      'SELECT id FROM orders WHERE status = $1 OR status = $2 OR customer_id = $3',
    ],
    ['IN (…) already', 'SELECT id FROM orders WHERE status IN ($1, $2, $3)'],
    ['= ANY($1) already', 'SELECT id FROM orders WHERE status = ANY($1)'],
    [
      'not a query',
      "UPDATE orders SET status = 'x' WHERE id NOT IN (SELECT customer_id FROM orders)",
    ],
  ])('%s', (_name, sql) => {
    // Act
    const found = rewritesOf(sql);
    // Assess
    expect(found).toEqual([]);
  });
});
