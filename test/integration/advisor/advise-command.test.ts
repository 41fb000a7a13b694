import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  adviseIndexes,
  DEFAULT_ADVISOR_OPTIONS,
  workloadFromStatStatements,
} from '#shared/advisor';
import { createDatabase, type Database } from '#shared/db';
import { runAdviseCommand } from '../../../local/advise-command.ts';
import {
  DEAD_DATABASE_URL,
  TEST_DATABASE_URL,
  testDatabaseOptions,
  testDatabaseUrl,
} from '../support/env.ts';

const DB_NAME = 'dbopt_it_advisor_cli';
const NOEXT_DB_NAME = 'dbopt_it_advisor_cli_noext';

const urlOf = testDatabaseUrl;

const run = async (url: string, sql: string, params?: unknown[]): Promise<void> => {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql, params);
  } finally {
    await client.end();
  }
};

const QUERY =
  'SELECT id, total FROM orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 10';

let db: Database;

beforeAll(async () => {
  for (const name of [DB_NAME, NOEXT_DB_NAME]) {
    await run(TEST_DATABASE_URL, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await run(TEST_DATABASE_URL, `CREATE DATABASE ${name} TEMPLATE template0 LOCALE 'C.UTF-8'`);
  }
  await run(
    urlOf(DB_NAME),
    `CREATE EXTENSION IF NOT EXISTS hypopg;
     CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
     CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, created_at timestamptz NOT NULL, total int NOT NULL);
     INSERT INTO orders SELECT g, 1 + (g * 7919) % 1000, timestamptz '2024-01-01' + g * interval '1 minute', g % 500
     FROM generate_series(1, 50000) g;
     ANALYZE orders;`,
  );
  await run(urlOf(NOEXT_DB_NAME), 'CREATE TABLE t (id int PRIMARY KEY)');
  // Only this database's statistics are reset (other suites share the cluster).
  await run(
    urlOf(DB_NAME),
    'SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)',
  );
  const client = new pg.Client({ connectionString: urlOf(DB_NAME) });
  await client.connect();
  try {
    for (const customer of [3, 17, 256, 999, 3]) await client.query(QUERY, [customer]);
  } finally {
    await client.end();
  }
  db = createDatabase(testDatabaseOptions(urlOf(DB_NAME), { queryTimeoutMs: 60_000 }));
});

afterAll(async () => {
  await db?.end();
  await run(TEST_DATABASE_URL, `DROP DATABASE IF EXISTS ${NOEXT_DB_NAME} WITH (FORCE)`);
});

const capture = () => {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } };
};

describe('workloadFromStatStatements', () => {
  it('reads the statement with calls as weight and real example values sampled from pg_stats', async () => {
    // Prepare: the statement ran 5 times (beforeAll)

    // Act
    const workload = await workloadFromStatStatements(db, { limit: 20, minCalls: 2 });

    // Assess
    const entry = workload.find((w) => w.sql.includes('FROM orders WHERE customer_id = $1'));
    expect(entry).toMatchObject({ kind: 'read' });
    expect(entry?.weightPerHour).toBeGreaterThan(0);
    expect(entry?.params.length).toBeGreaterThan(0);
    for (const set of entry?.params ?? []) {
      expect(set).toHaveLength(2);
      expect(Number(set[0])).toBeGreaterThanOrEqual(1); // a real customer id from the histogram
      expect(set[1]).toBe('10'); // the normalised LIMIT
    }
    const report = await adviseIndexes({ db }, entry ? [entry] : [], DEFAULT_ADVISOR_OPTIONS);
    expect(report.proposals.map((p) => p.keys)).toEqual([['customer_id', 'created_at']]);
  });
});

describe('dbopt advise', () => {
  it('--format sql prints exactly one CREATE INDEX statement per line and nothing else', async () => {
    // Prepare
    const { out, err, io } = capture();

    // Act
    const code = await runAdviseCommand({ databaseUrl: urlOf(DB_NAME), format: 'sql' }, {}, io);

    // Assess
    expect(code).toBe(0);
    expect(out).toEqual([
      'CREATE INDEX CONCURRENTLY orders_customer_id_created_at_idx ON public.orders USING btree (customer_id, created_at);',
    ]);
    expect(err).toEqual([]);
  });

  it('--format sql keeps stdout to the CREATE INDEX lines and puts warnings on stderr', async () => {
    // Prepare: one statement the advisor must skip (its table does not exist)
    const { out, err, io } = capture();
    const workload = JSON.stringify({
      templates: [
        {
          id: 'good',
          kind: 'read',
          weight_per_hour: 100,
          sql: QUERY,
          params: [[3], [256]],
        },
        { id: 'broken', kind: 'read', weight_per_hour: 10, sql: 'SELECT 1 FROM no_such_table' },
      ],
    });

    // Act
    const code = await runAdviseCommand(
      { databaseUrl: urlOf(DB_NAME), format: 'sql', workload },
      {},
      io,
    );

    // Assess
    expect(code).toBe(0);
    expect(out).toEqual([
      'CREATE INDEX CONCURRENTLY orders_customer_id_created_at_idx ON public.orders USING btree (customer_id, created_at);',
    ]);
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(/^warning: broken: skipped \(.*no_such_table/);
  });

  it('--format text reports the proposal and shows progress on stderr', async () => {
    // Prepare
    const { out, err, io } = capture();

    // Act
    await runAdviseCommand({ databaseUrl: urlOf(DB_NAME), format: 'text' }, {}, io);

    // Assess
    const text = out.join('\n');
    expect(text).toContain('1. CREATE INDEX CONCURRENTLY orders_customer_id_created_at_idx');
    expect(text).toMatch(/serves\s+-?\d+/); // the pg_stat_statements queryid
    expect(text).toContain('Rejected candidates');
    expect(err.join('\n')).toContain('reading statements from pg_stat_statements');
  });

  it('marks every statement it runs with /* dbopt */ so collectors skip them', async () => {
    // Prepare
    const reset =
      'SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)';
    await run(urlOf(DB_NAME), reset);
    for (const customer of [3, 17]) await run(urlOf(DB_NAME), QUERY, [customer]);

    // Act
    await runAdviseCommand({ databaseUrl: urlOf(DB_NAME), format: 'json' }, {}, capture().io);

    // Assess
    const client = new pg.Client({ connectionString: urlOf(DB_NAME) });
    await client.connect();
    try {
      const { rows } = await client.query<{ query: string }>(
        `SELECT query FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND query NOT LIKE '%/* dbopt */%'`,
      );
      expect(
        rows
          .map((r) => r.query)
          // The test's own statements, and HypoPG's internal catalog lookup (not ours to mark).
          .filter(
            (q) =>
              !q.includes('FROM orders WHERE customer_id') &&
              !q.includes('pg_stat_statements_reset') &&
              !q.includes('FROM pg_catalog.pg_class WHERE oid <'),
          ),
      ).toEqual([]);
    } finally {
      await client.end();
    }
  });

  it.each([
    ['not-a-url', /--database-url must be a postgres/],
    [DEAD_DATABASE_URL, /cannot connect to --database-url/],
    [urlOf(NOEXT_DB_NAME), /pg_stat_statements is not available .*--workload FILE/],
  ])('fails clearly for %s', async (databaseUrl, message) => {
    // Prepare
    const { io } = capture();

    // Act
    const result = runAdviseCommand({ databaseUrl, format: 'sql' }, {}, io);

    // Assess
    await expect(result).rejects.toThrow(message);
  });
});
