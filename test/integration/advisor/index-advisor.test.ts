import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AdvisorOptions,
  type AdvisorReport,
  adviseIndexes,
  DEFAULT_ADVISOR_OPTIONS,
  type WorkloadStatement,
} from '#shared/advisor';
import { createDatabase, type Database } from '#shared/db';
import { TEST_DATABASE_URL, testDatabaseOptions, testDatabaseUrl } from '../support/env.ts';

// One database (non-C collation on purpose: LIKE 'x%' then needs text_pattern_ops) with HypoPG
// and pg_trgm; a second one, owned by a role that may not create HypoPG, for the fallback.
const DB_NAME = 'dbopt_it_advisor_main';
const NOHYPO_DB_NAME = 'dbopt_it_advisor_nohypo';
const NOHYPO_ROLE = 'dbopt_it_advisor_role';

const urlOf = testDatabaseUrl;

const run = async (url: string, sql: string): Promise<void> => {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
};

const SCHEMA = `
CREATE EXTENSION IF NOT EXISTS hypopg;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE hj_orders (id int PRIMARY KEY, customer_id int NOT NULL, created_at timestamptz NOT NULL, total int NOT NULL);
INSERT INTO hj_orders SELECT g, 1 + (g * 7919) % 1000, timestamptz '2024-01-01' + g * interval '1 minute', g % 500
FROM generate_series(1, 50000) g;

CREATE TABLE tiny_codes (id int PRIMARY KEY, code text NOT NULL);
INSERT INTO tiny_codes SELECT g, 'code_' || g FROM generate_series(1, 50) g;

CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, full_name text NOT NULL);
INSERT INTO users SELECT g, 'User.' || g || '@Example.Test', (ARRAY['Ana','Bruno','Carla','Duarte'])[1 + g % 4] || ' ' || md5(g::text)
FROM generate_series(1, 30000) g;

CREATE TABLE jobs (id int PRIMARY KEY, state text NOT NULL, run_at timestamptz NOT NULL);
INSERT INTO jobs SELECT g, CASE WHEN g > 49500 THEN 'queued' ELSE 'done' END, timestamptz '2024-01-01' + g * interval '1 minute'
FROM generate_series(1, 50000) g;

CREATE TABLE docs (id int PRIMARY KEY, attrs jsonb NOT NULL);
INSERT INTO docs SELECT g, jsonb_build_object('color', (ARRAY['red','green','blue','black','white'])[1 + g % 5], 'size', g % 97, 'rare', g % 500 = 0)
FROM generate_series(1, 30000) g;

CREATE TABLE parents (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO parents SELECT g, 'p' || g FROM generate_series(1, 20000) g;
CREATE TABLE children (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parents (id), label text NOT NULL);
INSERT INTO children SELECT g, 1 + (g * 31) % 20000, 'c' || g FROM generate_series(1, 60000) g;

CREATE TABLE events (id int PRIMARY KEY, account_id int NOT NULL, at timestamptz NOT NULL);
INSERT INTO events SELECT g, 1 + g % 2000, timestamptz '2024-01-01' + g * interval '1 second' FROM generate_series(1, 40000) g;
CREATE INDEX events_account_at_idx ON events (account_id, at);

CREATE TABLE memberships (group_id int NOT NULL, user_id int NOT NULL, PRIMARY KEY (group_id, user_id));
INSERT INTO memberships SELECT 1 + g % 200, g FROM generate_series(1, 40000) g;

ANALYZE;
`;

const options: AdvisorOptions = { ...DEFAULT_ADVISOR_OPTIONS, statementTimeoutMs: 20_000 };

const statement = (
  id: string,
  sql: string,
  params: unknown[][],
  weightPerHour = 100,
): WorkloadStatement => ({ id, sql, params, weightPerHour, kind: 'read' });

const shapes = (report: AdvisorReport) =>
  report.proposals.map((p) => ({ table: p.table, method: p.method, keys: p.keys, where: p.where }));

let db: Database;
let nohypo: Database;

beforeAll(async () => {
  await run(TEST_DATABASE_URL, `DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
  await run(TEST_DATABASE_URL, `DROP DATABASE IF EXISTS ${NOHYPO_DB_NAME} WITH (FORCE)`);
  await run(TEST_DATABASE_URL, `DROP ROLE IF EXISTS ${NOHYPO_ROLE}`);
  await run(TEST_DATABASE_URL, `CREATE ROLE ${NOHYPO_ROLE} LOGIN NOSUPERUSER`);
  await run(TEST_DATABASE_URL, `CREATE DATABASE ${DB_NAME} TEMPLATE template0 LOCALE 'C.UTF-8'`);
  await run(
    TEST_DATABASE_URL,
    `CREATE DATABASE ${NOHYPO_DB_NAME} TEMPLATE template0 LOCALE 'C.UTF-8' OWNER ${NOHYPO_ROLE}`,
  );
  await run(urlOf(DB_NAME), SCHEMA);
  await run(
    urlOf(NOHYPO_DB_NAME, NOHYPO_ROLE),
    `CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL);
     INSERT INTO users SELECT g, 'User.' || g || '@Example.Test' FROM generate_series(1, 30000) g;
     ANALYZE users;`,
  );
  db = createDatabase(testDatabaseOptions(urlOf(DB_NAME), { queryTimeoutMs: 60_000 }));
  nohypo = createDatabase(
    testDatabaseOptions(urlOf(NOHYPO_DB_NAME, NOHYPO_ROLE), {
      user: NOHYPO_ROLE,
      queryTimeoutMs: 60_000,
    }),
  );
});

afterAll(async () => {
  await db?.end();
  await nohypo?.end();
  await run(TEST_DATABASE_URL, `DROP DATABASE IF EXISTS ${NOHYPO_DB_NAME} WITH (FORCE)`);
  await run(TEST_DATABASE_URL, `DROP ROLE IF EXISTS ${NOHYPO_ROLE}`);
});

describe('adviseIndexes on PostgreSQL with HypoPG', () => {
  it('proposes the (equality, ORDER BY) composite for WHERE … ORDER BY … LIMIT, never the ORDER BY column alone', async () => {
    // Prepare
    const workload = [
      statement(
        'recent_orders',
        'SELECT id, total FROM hj_orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 10',
        [[1], [500], [999]],
      ),
    ];

    // Act
    const report = await adviseIndexes({ db }, workload, options);

    // Assess
    expect(shapes(report)).toEqual([
      {
        table: 'public.hj_orders',
        method: 'btree',
        keys: ['customer_id', 'created_at'],
        where: null,
      },
    ]);
    expect(report.proposals[0]?.evaluatedWith).toBe('hypopg');
    expect(report.proposals[0]?.serves).toEqual(['recent_orders']);
    expect(report.proposals[0]?.ddl).toBe(
      'CREATE INDEX CONCURRENTLY hj_orders_customer_id_created_at_idx ON public.hj_orders USING btree (customer_id, created_at);',
    );
    expect(report.method).toBe('hypopg');
  });

  it('never counts a lone range/ORDER BY index the plan would walk under LIMIT while filtering the equality', async () => {
    // Prepare
    const workload = [
      statement(
        'next_orders',
        'SELECT id FROM hj_orders WHERE customer_id = $1 AND created_at >= $2 ORDER BY created_at LIMIT 5',
        [
          [7, '2024-01-10'],
          [900, '2024-01-02'],
        ],
      ),
    ];

    // Act
    const report = await adviseIndexes({ db }, workload, options);

    // Assess
    expect(shapes(report)).toEqual([
      {
        table: 'public.hj_orders',
        method: 'btree',
        keys: ['customer_id', 'created_at'],
        where: null,
      },
    ]);
    const lone = report.rejected.find((r) => r.candidate.keys.join() === 'created_at');
    expect(lone?.reason).toContain('in order under LIMIT');
  });

  it('proposes nothing for a tiny table and says why', async () => {
    // Prepare
    const workload = [
      statement('code', 'SELECT id FROM tiny_codes WHERE code = $1', [['code_7']], 10_000),
    ];

    // Act
    const report = await adviseIndexes({ db }, workload, options);

    // Assess
    expect(report.proposals).toEqual([]);
    expect(report.rejected.map((r) => r.reason).join(' ')).toContain('ADVISOR_MIN_TABLE_ROWS');
  });

  it('proposes the expression index for lower(email), not a plain email index', async () => {
    // Prepare
    const workload = [
      statement('login', 'SELECT id FROM users WHERE lower(email) = lower($1)', [
        ['user.17@example.test'],
        ['USER.29999@EXAMPLE.TEST'],
      ]),
    ];

    // Act
    const report = await adviseIndexes({ db }, workload, options);

    // Assess
    expect(shapes(report)).toEqual([
      { table: 'public.users', method: 'btree', keys: ['lower(email)'], where: null },
    ]);
    expect(report.proposals[0]?.ddl).toContain('USING btree ((lower(email)))');
  });

  it('proposes a partial index for a rare hard-coded literal', async () => {
    // Prepare
    const workload = [
      statement(
        'due_jobs',
        "SELECT id FROM jobs WHERE state = 'queued' AND run_at < $1 ORDER BY run_at LIMIT 100",
        [['2024-02-20'], ['2024-02-25']],
      ),
    ];

    // Act
    const report = await adviseIndexes({ db }, workload, options);

    // Assess
    expect(shapes(report)).toEqual([
      { table: 'public.jobs', method: 'btree', keys: ['run_at'], where: "state = 'queued'" },
    ]);
  });

  it('proposes a GIN index for jsonb containment, evaluated by a rolled-back build', async () => {
    // Prepare
    const workload = [
      statement('rare_docs', 'SELECT id FROM docs WHERE attrs @> $1::jsonb', [
        ['{"rare": true}'],
        ['{"color": "red", "size": 3}'],
      ]),
    ];

    // Act
    const report = await adviseIndexes({ db }, workload, options);

    // Assess
    expect(shapes(report)).toEqual([
      { table: 'public.docs', method: 'gin', keys: ['attrs'], where: null },
    ]);
    expect(report.proposals[0]?.evaluatedWith).toBe('rollback-build');
    const left = await db
      .pool()
      .query("SELECT count(*)::int AS n FROM pg_indexes WHERE tablename = 'docs'");
    expect(left.rows[0]?.n).toBe(1); // only the primary key: the build was rolled back
  });

  it('proposes text_pattern_ops for LIKE prefix under a non-C database collation', async () => {
    // Prepare
    const workload = [
      statement('name_prefix', 'SELECT id FROM users WHERE full_name LIKE $1', [
        ['Carla 7f%'],
        ['Ana 1c%'],
      ]),
    ];

    // Act
    const report = await adviseIndexes({ db }, workload, options);

    // Assess
    expect(shapes(report)).toEqual([
      { table: 'public.users', method: 'btree', keys: ['full_name text_pattern_ops'], where: null },
    ]);
  });

  it('proposes the join column of an unindexed foreign key', async () => {
    // Prepare
    const workload = [
      statement(
        'children_of',
        'SELECT c.id, c.label FROM parents p JOIN children c ON c.parent_id = p.id WHERE p.id = $1',
        [[10], [19999]],
      ),
    ];

    // Act
    const report = await adviseIndexes({ db }, workload, options);

    // Assess
    expect(shapes(report)).toEqual([
      { table: 'public.children', method: 'btree', keys: ['parent_id'], where: null },
    ]);
    expect(report.proposals[0]?.rationale).toContain('foreign key');
  });

  it('respects existing indexes: no prefix-redundant proposal, but the second column of a composite primary key alone', async () => {
    // Prepare
    const workload = [
      statement('by_account', 'SELECT id FROM events WHERE account_id = $1', [[5], [1500]]),
      statement('groups_of', 'SELECT group_id FROM memberships WHERE user_id = $1', [
        [77],
        [30000],
      ]),
    ];

    // Act
    const report = await adviseIndexes({ db }, workload, options);

    // Assess
    expect(shapes(report)).toEqual([
      { table: 'public.memberships', method: 'btree', keys: ['user_id'], where: null },
    ]);
    expect(report.rejected).toContainEqual(
      expect.objectContaining({
        candidate: expect.objectContaining({ table: 'public.events', keys: ['account_id'] }),
        reason: expect.stringContaining('events_account_at_idx'),
      }),
    );
  });

  it('falls back to rolled-back builds when HypoPG cannot be created, and says so', async () => {
    // Prepare
    const workload = [
      statement('login', 'SELECT id FROM users WHERE lower(email) = lower($1)', [
        ['user.5@example.test'],
      ]),
    ];

    // Act
    const report = await adviseIndexes({ db: nohypo }, workload, options);

    // Assess
    expect(shapes(report)).toEqual([
      { table: 'public.users', method: 'btree', keys: ['lower(email)'], where: null },
    ]);
    expect(report.method).toBe('rollback-build');
    expect(report.proposals[0]?.evaluatedWith).toBe('rollback-build');
    expect(report.warnings.join(' ')).toContain('CREATE EXTENSION hypopg');
  });

  it('charges lost HOT updates and skips a statement it cannot plan, reporting both', async () => {
    // Prepare
    const workload: WorkloadStatement[] = [
      statement(
        'due_jobs',
        "SELECT id FROM jobs WHERE state = 'queued' AND run_at < $1 ORDER BY run_at LIMIT 100",
        [['2024-02-20']],
      ),
      {
        id: 'finish',
        sql: 'UPDATE jobs SET state = $2 WHERE id = $1',
        params: [[49990, 'done']],
        weightPerHour: 50,
        kind: 'write',
      },
      statement('broken', 'SELECT * FROM no_such_table WHERE a = $1', [[1]]),
    ];

    // Act
    const report = await adviseIndexes({ db }, workload, options);

    // Assess
    expect(report.proposals[0]?.writeOverhead).toMatchObject({
      statements: ['finish'],
      updatedColumns: ['state'],
      hotUpdatesLost: true,
    });
    expect(report.statements.find((s) => s.id === 'broken')?.error).toBeTruthy();
    expect(report.warnings.join(' ')).toContain('broken');
  });
});
