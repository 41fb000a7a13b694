import { beforeAll, describe, expect, it } from 'vitest';
import { SqlSyntaxError, ValidationError } from '#shared/errors';
import {
  assertSingleStatement,
  createSqlAnalyzer,
  initSqlParser,
  type SqlAnalysis,
  type StatementKind,
  type UncacheableReason,
} from '#shared/sql';

beforeAll(async () => {
  await initSqlParser();
});

interface Case {
  readonly name: string;
  readonly sql: string;
  readonly kind: StatementKind;
  readonly readOnly: boolean;
  readonly read: readonly string[];
  readonly written: readonly string[];
  /** Omitted when the statement is cacheable. */
  readonly reason?: UncacheableReason;
}

const select = (
  name: string,
  sql: string,
  read: readonly string[],
  reason?: UncacheableReason,
): Case => ({ name, sql, kind: 'select', readOnly: true, read, written: [], reason });

const CASES: readonly Case[] = [
  // names: case folding, quoting, qualification
  select(
    'quoted and qualified names',
    'SELECT * FROM "Users" u JOIN public.orders o ON o.user_id = u.id',
    ['Users', 'public.orders'],
  ),
  select('unquoted names are folded to lower case', 'SELECT * FROM Users JOIN ORDERS USING (id)', [
    'orders',
    'users',
  ]),
  select('quoted schema and table keep case and spaces', 'SELECT * FROM "Sales"."Q1 Orders"', [
    'Sales.Q1 Orders',
  ]),
  select(
    'a dot inside a quoted name is quoted to stay unambiguous',
    'SELECT * FROM "odd.name", odd.name',
    ['"odd.name"', 'odd.name'],
  ),
  select('catalog-qualified name', 'SELECT * FROM appdb.public.users', ['appdb.public.users']),
  select(
    'views and tables are both relations',
    'SELECT * FROM active_users_v v JOIN users u ON u.id = v.id',
    ['active_users_v', 'users'],
  ),
  // CTE scoping
  select(
    'CTE name is not a table',
    'WITH recent AS (SELECT * FROM orders WHERE created_at > $1) SELECT * FROM recent',
    ['orders'],
  ),
  select(
    'a CTE sees earlier CTEs',
    'WITH a AS (SELECT * FROM t1), b AS (SELECT * FROM a JOIN t2 USING (id)) SELECT * FROM b',
    ['t1', 't2'],
  ),
  select(
    'non-recursive CTE referencing its own name reads the table',
    'WITH t AS (SELECT * FROM t WHERE x > 0) SELECT * FROM t',
    ['t'],
  ),
  select(
    'a reference to a later CTE is a table',
    'WITH a AS (SELECT * FROM b), b AS (SELECT 1 AS x) SELECT * FROM a, b',
    ['b'],
  ),
  select(
    'recursive CTE references itself',
    'WITH RECURSIVE tree AS (SELECT id, parent_id FROM nodes WHERE id = $1 UNION ALL SELECT n.id, n.parent_id FROM nodes n JOIN tree ON n.parent_id = tree.id) SELECT * FROM tree',
    ['nodes'],
  ),
  select(
    'CTE in a subquery does not hide a table outside it',
    'SELECT * FROM (WITH c AS (SELECT * FROM a) SELECT * FROM c) s JOIN c ON c.id = s.id',
    ['a', 'c'],
  ),
  select(
    'inner WITH shadows an outer CTE of the same name',
    'WITH c AS (SELECT * FROM a) SELECT * FROM c WHERE id IN (WITH c AS (SELECT id FROM b) SELECT id FROM c)',
    ['a', 'b'],
  ),
  select(
    'schema-qualified name never matches a CTE',
    'WITH users AS (SELECT 1 AS id) SELECT * FROM users JOIN public.users pu ON pu.id = users.id',
    ['public.users'],
  ),
  select(
    'WITH on a set-operation branch is scoped to it',
    '(WITH x AS (SELECT * FROM a) SELECT * FROM x) UNION ALL SELECT * FROM x',
    ['a', 'x'],
  ),
  // subqueries, joins, set operations
  select(
    'IN subquery',
    'SELECT * FROM orders WHERE customer_id IN (SELECT id FROM customers WHERE vip)',
    ['customers', 'orders'],
  ),
  select('EXISTS subquery', 'SELECT * FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.a_id = a.id)', [
    'a',
    'b',
  ]),
  select(
    'scalar subquery in the select list',
    'SELECT u.id, (SELECT count(*) FROM orders o WHERE o.user_id = u.id) AS n FROM users u',
    ['orders', 'users'],
  ),
  select(
    'subquery in HAVING and ORDER BY',
    'SELECT k FROM a GROUP BY k HAVING count(*) > (SELECT min(n) FROM b) ORDER BY (SELECT max(n) FROM c)',
    ['a', 'b', 'c'],
  ),
  select(
    'LATERAL subquery',
    'SELECT * FROM users u CROSS JOIN LATERAL (SELECT * FROM orders o WHERE o.user_id = u.id ORDER BY created_at DESC LIMIT 3) recent',
    ['orders', 'users'],
  ),
  select(
    'LATERAL set-returning built-in',
    'SELECT tag FROM users u, LATERAL jsonb_array_elements_text(u.tags) tag',
    ['users'],
  ),
  select(
    'LEFT/RIGHT/FULL joins',
    'SELECT * FROM a LEFT JOIN b ON a.id = b.id RIGHT JOIN c ON c.id = b.id FULL JOIN d USING (id)',
    ['a', 'b', 'c', 'd'],
  ),
  select('UNION', 'SELECT id FROM a UNION SELECT id FROM b', ['a', 'b']),
  select(
    'INTERSECT and EXCEPT',
    '(SELECT id FROM a INTERSECT SELECT id FROM b) EXCEPT SELECT id FROM a',
    ['a', 'b'],
  ),
  select('VALUES reads no table', "VALUES (1, 'a'), (2, 'b')", [], 'no-tables'),
  select('SELECT 1 reads no table', 'SELECT 1', [], 'no-tables'),
  select(
    'aggregates and window functions are cacheable',
    'SELECT customer_id, sum(total), rank() OVER (ORDER BY sum(total) DESC), lag(customer_id) OVER w FROM orders GROUP BY customer_id WINDOW w AS (ORDER BY customer_id)',
    ['orders'],
  ),
  select(
    'jsonb operators',
    `SELECT data->>'name', data #> '{a,b}' FROM docs WHERE data @> '{"x":1}' AND data ? 'k'`,
    ['docs'],
  ),
  select(
    'EXTRACT is cacheable',
    'SELECT EXTRACT(YEAR FROM created_at), count(*) FROM orders GROUP BY 1',
    ['orders'],
  ),
  select('AT TIME ZONE is cacheable', "SELECT created_at AT TIME ZONE 'UTC' FROM orders", [
    'orders',
  ]),
  select(
    'SQL-syntax string functions are cacheable',
    "SELECT substring(name FROM 2 FOR 3), trim(BOTH ' ' FROM name), position('a' IN name) FROM users",
    ['users'],
  ),
  select(
    'COALESCE, NULLIF, GREATEST, CASE',
    'SELECT coalesce(a, 0), nullif(b, 0), greatest(a, b), CASE WHEN a > 0 THEN 1 END FROM t',
    ['t'],
  ),
  select('age(a, b) is cacheable', 'SELECT age(died_at, born_at) FROM people', ['people']),
  select('pg_catalog-qualified built-in', 'SELECT pg_catalog.lower(name) FROM users', ['users']),
  select(
    'TABLESAMPLE with REPEATABLE is cacheable',
    'SELECT * FROM t TABLESAMPLE BERNOULLI (10) REPEATABLE (42)',
    ['t'],
  ),
  // volatile, unknown and session-dependent functions
  select(
    'now()',
    "SELECT * FROM events WHERE created_at > now() - interval '1 hour'",
    ['events'],
    'volatile-function',
  ),
  select(
    'CURRENT_TIMESTAMP (SQLValueFunction)',
    'SELECT * FROM events WHERE created_at > CURRENT_TIMESTAMP',
    ['events'],
    'volatile-function',
  ),
  select(
    'current_date',
    'SELECT * FROM events WHERE day = current_date',
    ['events'],
    'volatile-function',
  ),
  select(
    'current_user',
    'SELECT * FROM docs WHERE owner = current_user',
    ['docs'],
    'volatile-function',
  ),
  select(
    'random()',
    'SELECT * FROM quotes ORDER BY random() LIMIT 1',
    ['quotes'],
    'volatile-function',
  ),
  select('clock_timestamp()', 'SELECT clock_timestamp(), id FROM t', ['t'], 'volatile-function'),
  select('nextval() without tables', "SELECT nextval('order_seq')", [], 'volatile-function'),
  select('gen_random_uuid()', 'SELECT gen_random_uuid(), id FROM t', ['t'], 'volatile-function'),
  select(
    'age(ts) depends on current_date',
    'SELECT age(born_at) FROM people',
    ['people'],
    'volatile-function',
  ),
  select(
    "'now' literal is evaluated at plan time",
    "SELECT * FROM events WHERE created_at > 'now'::timestamptz",
    ['events'],
    'volatile-function',
  ),
  select(
    'TABLESAMPLE without REPEATABLE',
    'SELECT * FROM t TABLESAMPLE SYSTEM (1)',
    ['t'],
    'volatile-function',
  ),
  select('unknown user function', 'SELECT my_func(x) FROM t', ['t'], 'unknown-function'),
  select(
    'schema-qualified user function',
    'SELECT app.score(u.id) FROM users u',
    ['users'],
    'unknown-function',
  ),
  select(
    'built-in name in a user schema is a user function',
    'SELECT app.lower(name) FROM users',
    ['users'],
    'unknown-function',
  ),
  // session-private and system relations
  select(
    'pg_temp-qualified table',
    'SELECT * FROM pg_temp.scratch',
    ['pg_temp.scratch'],
    'temp-table',
  ),
  select(
    'pg_catalog.pg_class',
    "SELECT relname FROM pg_catalog.pg_class WHERE relkind = 'r'",
    ['pg_catalog.pg_class'],
    'system-catalog',
  ),
  select(
    'unqualified pg_stat_activity',
    'SELECT count(*) FROM pg_stat_activity',
    ['pg_stat_activity'],
    'system-catalog',
  ),
  select(
    'information_schema',
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    ['information_schema.tables'],
    'system-catalog',
  ),
  // locking clauses
  {
    name: 'FOR UPDATE',
    sql: 'SELECT * FROM jobs WHERE id = $1 FOR UPDATE',
    kind: 'select',
    readOnly: false,
    read: ['jobs'],
    written: [],
    reason: 'locking-clause',
  },
  {
    name: 'FOR SHARE OF one table',
    sql: 'SELECT * FROM a JOIN b ON a.id = b.a_id FOR SHARE OF a',
    kind: 'select',
    readOnly: false,
    read: ['a', 'b'],
    written: [],
    reason: 'locking-clause',
  },
  {
    name: 'FOR NO KEY UPDATE SKIP LOCKED',
    sql: "SELECT id FROM queue WHERE state = 'ready' LIMIT 10 FOR NO KEY UPDATE SKIP LOCKED",
    kind: 'select',
    readOnly: false,
    read: ['queue'],
    written: [],
    reason: 'locking-clause',
  },
  // writes
  {
    name: 'writable CTE feeding an INSERT',
    sql: 'WITH gone AS (DELETE FROM sessions WHERE expires_at < $1 RETURNING *) INSERT INTO sessions_archive SELECT * FROM gone',
    kind: 'insert',
    readOnly: false,
    read: [],
    written: ['sessions', 'sessions_archive'],
    reason: 'not-read-only',
  },
  {
    name: 'writable CTE under a SELECT',
    sql: 'WITH upd AS (UPDATE counters SET n = n + 1 WHERE id = 1 RETURNING n) SELECT n FROM upd',
    kind: 'select',
    readOnly: false,
    read: [],
    written: ['counters'],
    reason: 'not-read-only',
  },
  {
    name: 'UPDATE … FROM',
    sql: "UPDATE orders o SET status = 'shipped' FROM shipments s WHERE s.order_id = o.id",
    kind: 'update',
    readOnly: false,
    read: ['shipments'],
    written: ['orders'],
    reason: 'not-read-only',
  },
  {
    name: 'UPDATE with a subquery in SET and WHERE',
    sql: 'UPDATE t SET total = (SELECT sum(x) FROM items WHERE items.t_id = t.id) WHERE id IN (SELECT t_id FROM dirty)',
    kind: 'update',
    readOnly: false,
    read: ['dirty', 'items'],
    written: ['t'],
    reason: 'not-read-only',
  },
  {
    name: 'DELETE … USING',
    sql: 'DELETE FROM orders o USING customers c WHERE o.customer_id = c.id AND c.banned',
    kind: 'delete',
    readOnly: false,
    read: ['customers'],
    written: ['orders'],
    reason: 'not-read-only',
  },
  {
    name: 'INSERT … SELECT across schemas',
    sql: 'INSERT INTO archive.orders SELECT * FROM public.orders WHERE created_at < $1',
    kind: 'insert',
    readOnly: false,
    read: ['public.orders'],
    written: ['archive.orders'],
    reason: 'not-read-only',
  },
  {
    name: 'INSERT … ON CONFLICT DO UPDATE',
    sql: 'INSERT INTO counters (id, n) VALUES ($1, 1) ON CONFLICT (id) DO UPDATE SET n = counters.n + 1',
    kind: 'insert',
    readOnly: false,
    read: [],
    written: ['counters'],
    reason: 'not-read-only',
  },
  {
    name: 'INSERT reading its own target',
    sql: 'INSERT INTO t SELECT * FROM t',
    kind: 'insert',
    readOnly: false,
    read: ['t'],
    written: ['t'],
    reason: 'not-read-only',
  },
  {
    name: 'a CTE does not hide a DML target',
    sql: 'WITH t AS (SELECT 1) DELETE FROM t',
    kind: 'delete',
    readOnly: false,
    read: [],
    written: ['t'],
    reason: 'not-read-only',
  },
  {
    name: 'MERGE',
    sql: 'MERGE INTO inventory i USING deliveries d ON i.sku = d.sku WHEN MATCHED THEN UPDATE SET qty = i.qty + d.qty WHEN NOT MATCHED THEN INSERT (sku, qty) VALUES (d.sku, d.qty)',
    kind: 'merge',
    readOnly: false,
    read: ['deliveries'],
    written: ['inventory'],
    reason: 'not-read-only',
  },
  {
    name: 'SELECT INTO creates a table',
    sql: 'SELECT * INTO backup_users FROM users',
    kind: 'ddl',
    readOnly: false,
    read: ['users'],
    written: ['backup_users'],
    reason: 'not-read-only',
  },
  // DDL
  {
    name: 'CREATE INDEX',
    sql: 'CREATE INDEX CONCURRENTLY orders_created_idx ON orders (created_at)',
    kind: 'ddl',
    readOnly: false,
    read: [],
    written: ['orders'],
    reason: 'not-read-only',
  },
  {
    name: 'DROP TABLE',
    sql: 'DROP TABLE IF EXISTS old_orders, archive.old_items',
    kind: 'ddl',
    readOnly: false,
    read: [],
    written: ['archive.old_items', 'old_orders'],
    reason: 'not-read-only',
  },
  {
    name: 'ALTER TABLE adding a foreign key',
    sql: 'ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)',
    kind: 'ddl',
    readOnly: false,
    read: ['customers'],
    written: ['orders'],
    reason: 'not-read-only',
  },
  {
    name: 'CREATE TABLE AS',
    sql: 'CREATE TABLE summary AS SELECT customer_id, count(*) FROM orders GROUP BY 1',
    kind: 'ddl',
    readOnly: false,
    read: ['orders'],
    written: ['summary'],
    reason: 'not-read-only',
  },
  {
    name: 'CREATE VIEW',
    sql: 'CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100',
    kind: 'ddl',
    readOnly: false,
    read: ['orders'],
    written: ['big_orders'],
    reason: 'not-read-only',
  },
  // utility, transaction, EXPLAIN
  {
    name: 'SET',
    sql: 'SET statement_timeout = 5000',
    kind: 'utility',
    readOnly: false,
    read: [],
    written: [],
    reason: 'not-read-only',
  },
  {
    name: 'SHOW',
    sql: 'SHOW search_path',
    kind: 'utility',
    readOnly: false,
    read: [],
    written: [],
    reason: 'not-read-only',
  },
  {
    name: 'VACUUM',
    sql: 'VACUUM (ANALYZE) orders',
    kind: 'utility',
    readOnly: false,
    read: ['orders'],
    written: [],
    reason: 'not-read-only',
  },
  {
    name: 'COPY … FROM writes',
    sql: 'COPY orders FROM STDIN',
    kind: 'utility',
    readOnly: false,
    read: [],
    written: ['orders'],
    reason: 'not-read-only',
  },
  {
    name: 'COPY (query) TO reads',
    sql: 'COPY (SELECT * FROM orders) TO STDOUT',
    kind: 'utility',
    readOnly: false,
    read: ['orders'],
    written: [],
    reason: 'not-read-only',
  },
  {
    name: 'TRUNCATE',
    sql: 'TRUNCATE orders, order_items',
    kind: 'utility',
    readOnly: false,
    read: [],
    written: ['order_items', 'orders'],
    reason: 'not-read-only',
  },
  {
    name: 'BEGIN',
    sql: 'BEGIN ISOLATION LEVEL REPEATABLE READ',
    kind: 'transaction',
    readOnly: false,
    read: [],
    written: [],
    reason: 'not-read-only',
  },
  {
    name: 'COMMIT',
    sql: 'COMMIT',
    kind: 'transaction',
    readOnly: false,
    read: [],
    written: [],
    reason: 'not-read-only',
  },
  {
    name: 'EXPLAIN SELECT',
    sql: 'EXPLAIN (FORMAT JSON) SELECT * FROM orders WHERE id = $1',
    kind: 'explain',
    readOnly: false,
    read: ['orders'],
    written: [],
    reason: 'not-read-only',
  },
  {
    name: 'EXPLAIN ANALYZE DELETE',
    sql: 'EXPLAIN ANALYZE DELETE FROM orders',
    kind: 'explain',
    readOnly: false,
    read: [],
    written: ['orders'],
    reason: 'not-read-only',
  },
];

const verdictOf = (a: SqlAnalysis) => ({
  kind: a.kind,
  readOnly: a.readOnly,
  read: a.tablesRead,
  written: a.tablesWritten,
  cacheable: a.cacheable,
  reason: a.uncacheableReason,
});

describe('SqlAnalyzer.analyze', () => {
  it.each(CASES)('$name: $sql', ({ sql, kind, readOnly, read, written, reason }) => {
    // Prepare
    const analyzer = createSqlAnalyzer({ cacheEntries: 10 });

    // Act
    const analysis = analyzer.analyze(sql);

    // Assess
    expect(verdictOf(analysis)).toEqual({
      kind,
      readOnly,
      read,
      written,
      cacheable: reason === undefined,
      reason,
    });
    expect(analysis.statementCount).toBe(1);
  });

  it.each([
    ['SELECT EXTRACT(YEAR FROM ts) FROM t', ['extract']],
    ["SELECT ts AT TIME ZONE 'UTC', substring(s FROM 2) FROM t", ['substring', 'timezone']],
    [
      'SELECT CURRENT_TIMESTAMP, current_user, localtime(2)',
      ['current_timestamp', 'current_user', 'localtime'],
    ],
    [
      'SELECT pg_catalog.lower(a), app.score(b), "MyFunc"(c), count(*) FROM t',
      ['MyFunc', 'app.score', 'count', 'pg_catalog.lower'],
    ],
    ['SELECT * FROM t WHERE a = (SELECT max(b) FROM u)', ['max']],
    ['CALL app.refresh($1)', ['app.refresh']],
  ])('lists the functions of %s', (sql, functions) => {
    // Prepare
    const analyzer = createSqlAnalyzer({ cacheEntries: 10 });

    // Act
    const analysis = analyzer.analyze(sql);

    // Assess
    expect(analysis.functions).toEqual(functions);
  });

  it.each([
    ['SELECT 1', 0],
    ['SELECT * FROM t WHERE a = $1', 1],
    ['SELECT * FROM t WHERE a = $3', 3],
    ['SELECT * FROM t WHERE a = $2 OR b = $1 OR c IN (SELECT x FROM u WHERE y = $10)', 10],
    ['INSERT INTO t (a, b) VALUES ($1, $2) ON CONFLICT (a) DO UPDATE SET b = $4', 4],
  ])('reports maxParamIndex of %s as %i', (sql, maxParamIndex) => {
    // Prepare
    const analyzer = createSqlAnalyzer({ cacheEntries: 10 });

    // Act
    const analysis = analyzer.analyze(sql);

    // Assess
    expect(analysis.maxParamIndex).toBe(maxParamIndex);
  });

  it('describes every statement of a multi-statement text but never calls it cacheable', () => {
    // Prepare
    const analyzer = createSqlAnalyzer({ cacheEntries: 10 });

    // Act
    const analysis = analyzer.analyze('SELECT * FROM a; DELETE FROM b');

    // Assess
    expect(analysis).toMatchObject({
      statementCount: 2,
      kind: 'select',
      readOnly: false,
      tablesRead: ['a'],
      tablesWritten: ['b'],
      cacheable: false,
      uncacheableReason: 'not-single-statement',
    });
  });

  it.each([
    ['SELECT * FORM t', 10, 'syntax error at or near "FORM"'],
    ['FORM t', 1, 'syntax error at or near "FORM"'],
    ['SELECT * FROM', 14, 'syntax error at end of input'],
    ["SELECT 'éé😀' , FROM t", 16, 'syntax error at or near "FROM"'],
    ['SELECT 1;\nSELECT * FORM t', 20, 'syntax error at or near "FORM"'],
    ["SELECT 'abc", 8, 'unterminated quoted string at or near "\'abc"'],
  ])('rejects %j with the 1-based position PostgreSQL reports (%i)', (sql, position, message) => {
    // Prepare
    const analyzer = createSqlAnalyzer({ cacheEntries: 10 });

    // Act
    const act = () => analyzer.analyze(sql);

    // Assess
    expect(act).toThrow(SqlSyntaxError);
    expect(act).toThrow(
      expect.objectContaining({
        code: 'SQL_SYNTAX_ERROR',
        message: `${message} (position ${position})`,
        details: { position },
        cause: expect.any(Error),
      }),
    );
  });

  it.each([
    ['nested subqueries', `SELECT * FROM ${'(SELECT * FROM '.repeat(400)}t${') s'.repeat(400)}`],
    ['nested parentheses around subqueries', `SELECT ${'(SELECT '.repeat(200)}1${')'.repeat(200)}`],
    ['an operator chain', `SELECT ${Array(1000).fill('a').join(' + ')} FROM t`],
    ['a long UNION chain', Array(1000).fill('SELECT 1 FROM t').join(' UNION ')],
  ])('refuses %s too deep for the WASM parser with SQL_TOO_COMPLEX', (_label, sql) => {
    // Prepare
    const analyzer = createSqlAnalyzer({ cacheEntries: 10 });

    // Act
    const act = () => analyzer.analyze(sql);

    // Assess
    expect(act).toThrow(ValidationError);
    expect(act).toThrow(
      expect.objectContaining({
        code: 'SQL_TOO_COMPLEX',
        details: expect.objectContaining({ maxDepth: 300 }),
      }),
    );
    expect(analyzer.analyze('SELECT * FROM t').tablesRead).toEqual(['t']);
  });

  it.each([
    ['a long IN list', `SELECT * FROM t WHERE id IN (${Array(5000).fill('1').join(', ')})`],
    ['a long AND list', `SELECT * FROM t WHERE ${Array(2000).fill('a = 1').join(' AND ')}`],
    [
      'a bulk multi-row INSERT',
      `INSERT INTO t (a, b) VALUES ${Array(2000).fill('($1::int, $2::text)').join(', ')}`,
    ],
    [
      'many CTEs',
      `WITH ${Array.from({ length: 300 }, (_, i) => `c${i} AS (SELECT * FROM t${i})`).join(', ')} SELECT * FROM c299`,
    ],
  ])('accepts %s: wide is not deep', (_label, sql) => {
    // Prepare
    const analyzer = createSqlAnalyzer({ cacheEntries: 10 });

    // Act
    const analysis = analyzer.analyze(sql);

    // Assess
    expect(analysis.statementCount).toBe(1);
    expect(analysis.tablesRead.length + analysis.tablesWritten.length).toBeGreaterThan(0);
  });

  it('does not cache syntax errors', () => {
    // Prepare
    const analyzer = createSqlAnalyzer({ cacheEntries: 10 });
    const catchError = () => {
      try {
        analyzer.analyze('SELECT * FORM t');
      } catch (err) {
        return err;
      }
      return undefined;
    };

    // Act
    const first = catchError();
    const second = catchError();

    // Assess
    expect(first).toBeInstanceOf(SqlSyntaxError);
    expect(second).toBeInstanceOf(SqlSyntaxError);
    expect(second).not.toBe(first);
    expect(analyzer.stats().entries).toBe(0);
  });
});

describe('assertSingleStatement', () => {
  it('accepts exactly one statement, with or without a trailing semicolon and comments', () => {
    // Prepare
    const analyzer = createSqlAnalyzer({ cacheEntries: 10 });

    // Act
    const act = () => {
      assertSingleStatement(analyzer.analyze('SELECT * FROM t;'));
      assertSingleStatement(analyzer.analyze('-- lead\nSELECT * FROM t /* tail */ ;  '));
    };

    // Assess
    expect(act).not.toThrow();
  });

  it.each([
    ['SELECT 1; SELECT 2', 2],
    ['BEGIN; DELETE FROM t; COMMIT;', 3],
  ])('rejects %j with MULTIPLE_STATEMENTS', (sql, count) => {
    // Prepare
    const analysis = createSqlAnalyzer({ cacheEntries: 10 }).analyze(sql);

    // Act
    const act = () => assertSingleStatement(analysis);

    // Assess
    expect(act).toThrow(ValidationError);
    expect(act).toThrow(
      expect.objectContaining({
        code: 'MULTIPLE_STATEMENTS',
        message: `Send exactly one SQL statement; found ${count}`,
        details: { statementCount: count },
      }),
    );
  });

  it.each(['', '   \n\t', '-- only a comment', '/* block */', ';', ' ; ; '])(
    'rejects %j with EMPTY_STATEMENT',
    (sql) => {
      // Prepare
      const analysis = createSqlAnalyzer({ cacheEntries: 10 }).analyze(sql);

      // Act
      const act = () => assertSingleStatement(analysis);

      // Assess
      expect(analysis).toMatchObject({
        statementCount: 0,
        kind: 'other',
        readOnly: false,
        cacheable: false,
        uncacheableReason: 'not-single-statement',
        fingerprint: '',
      });
      expect(act).toThrow(expect.objectContaining({ code: 'EMPTY_STATEMENT' }));
    },
  );
});

describe('fingerprint and normalized text', () => {
  it('groups statements that differ only in constants and layout', () => {
    // Prepare
    const analyzer = createSqlAnalyzer({ cacheEntries: 10 });

    // Act
    const one = analyzer.analyze('SELECT * FROM t WHERE id = 1');
    const two = analyzer.analyze('select *\n  from t\n where id = 2');
    const param = analyzer.analyze('SELECT * FROM t WHERE id = $1');

    // Assess
    expect(one.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    expect(two.fingerprint).toBe(one.fingerprint);
    expect(param.fingerprint).toBe(one.fingerprint);
    expect(one.normalized).toBe('SELECT * FROM t WHERE id = $1');
  });

  it('separates statements on different tables or columns', () => {
    // Prepare
    const analyzer = createSqlAnalyzer({ cacheEntries: 10 });

    // Act
    const base = analyzer.analyze('SELECT * FROM t WHERE id = 1');
    const otherTable = analyzer.analyze('SELECT * FROM u WHERE id = 1');
    const otherColumn = analyzer.analyze('SELECT * FROM t WHERE code = 1');

    // Assess
    expect(otherTable.fingerprint).not.toBe(base.fingerprint);
    expect(otherColumn.fingerprint).not.toBe(base.fingerprint);
  });
});

describe('parse cache', () => {
  it('returns the same deeply frozen object for the same text', () => {
    // Prepare
    const analyzer = createSqlAnalyzer({ cacheEntries: 10 });
    const sql = 'SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = $1';

    // Act
    const first = analyzer.analyze(sql);
    const second = analyzer.analyze(sql);

    // Assess
    expect(second).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(Object.isFrozen(first.tablesRead)).toBe(true);
    expect(Object.isFrozen(first.tablesWritten)).toBe(true);
    expect(Object.isFrozen(first.functions)).toBe(true);
    expect(() => (first.tablesRead as string[]).push('evil')).toThrow(TypeError);
    expect(analyzer.stats()).toEqual({ entries: 1, maxEntries: 10, hits: 1, misses: 1 });
  });

  it('keys by exact text: a different spelling is a separate entry', () => {
    // Prepare
    const analyzer = createSqlAnalyzer({ cacheEntries: 10 });

    // Act
    const upper = analyzer.analyze('SELECT * FROM t');
    const lower = analyzer.analyze('select * from t');

    // Assess
    expect(lower).not.toBe(upper);
    expect(lower.fingerprint).toBe(upper.fingerprint);
    expect(analyzer.stats().entries).toBe(2);
  });

  it('is bounded: the least recently used text is evicted', () => {
    // Prepare
    const cacheEntries = 3;
    const analyzer = createSqlAnalyzer({ cacheEntries });
    const texts = Array.from({ length: cacheEntries + 1 }, (_, i) => `SELECT * FROM t${i}`);
    const first = analyzer.analyze(texts[0] ?? '');

    // Act
    for (const sql of texts.slice(1)) analyzer.analyze(sql);
    const again = analyzer.analyze(texts[0] ?? '');

    // Assess
    expect(again).not.toBe(first);
    expect(again).toEqual(first);
    expect(analyzer.stats()).toEqual({
      entries: cacheEntries,
      maxEntries: cacheEntries,
      hits: 0,
      misses: 5,
    });
  });

  it('keeps caches per analyzer instance', () => {
    // Prepare
    const a = createSqlAnalyzer({ cacheEntries: 10 });
    const b = createSqlAnalyzer({ cacheEntries: 10 });

    // Act
    a.analyze('SELECT * FROM t');

    // Assess
    expect(a.stats().entries).toBe(1);
    expect(b.stats().entries).toBe(0);
    expect(Object.isFrozen(a)).toBe(true);
  });

  it.each([0, -1, 1.5, Number.NaN])('rejects cacheEntries %d', (cacheEntries) => {
    // Prepare
    const options = { cacheEntries };

    // Act
    const act = () => createSqlAnalyzer(options);

    // Assess
    expect(act).toThrow(RangeError);
  });
});

describe('initSqlParser', () => {
  it('loads the parser once and shares the promise', async () => {
    // Prepare
    const first = initSqlParser();

    // Act
    const second = initSqlParser();

    // Assess
    expect(second).toBe(first);
    await expect(second).resolves.toBeUndefined();
  });
});
