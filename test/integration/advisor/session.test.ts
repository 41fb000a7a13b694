import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adviseIndexes, DEFAULT_ADVISOR_OPTIONS } from '#shared/advisor';
import { createDatabase, type Database } from '#shared/db';
import type { Candidate } from '../../../shared/advisor/candidates.ts';
import { AdvisorSession, itemKey } from '../../../shared/advisor/session.ts';
import { TEST_DATABASE_URL, testDatabaseOptions, testDatabaseUrl } from '../support/env.ts';

// What the advisor leaves on the target after its what-if work: nothing (no hypothetical
// index past a transaction, no built index), and a rolled-back build gives up on a busy table
// after lock_timeout instead of queueing writers for the whole statement_timeout.
const DB_NAME = 'dbopt_it_rev4_session';

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

const candidate = (method: 'btree' | 'gin', column: string, opclass = ''): Candidate => ({
  id: `${method}:${column}`,
  table: 'public.items',
  method,
  keys: [
    {
      sql: `${column}${opclass}`,
      signature: column,
      columns: [column],
      expression: false,
    } as Candidate['keys'][number],
  ],
  include: [],
  where: null,
  whereColumns: [],
  origins: new Set(['s1']),
  reasons: new Set(['test']),
});

const BTREE = candidate('btree', 'owner_id');
const GIN = candidate('gin', 'attrs', ' jsonb_path_ops');

describe('AdvisorSession cleanup and limits', () => {
  let db: Database;

  beforeAll(async () => {
    await run(TEST_DATABASE_URL, `DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
    await run(TEST_DATABASE_URL, `CREATE DATABASE ${DB_NAME}`);
    await run(
      urlOf(DB_NAME),
      `CREATE EXTENSION IF NOT EXISTS hypopg;
       CREATE TABLE items (id int PRIMARY KEY, owner_id int NOT NULL, attrs jsonb NOT NULL);
       INSERT INTO items SELECT g, g % 3000, jsonb_build_object('k', g % 50) FROM generate_series(1, 30000) g;
       CREATE TABLE readings (at date NOT NULL, sensor int NOT NULL, v int) PARTITION BY RANGE (at);
       CREATE TABLE readings_a PARTITION OF readings FOR VALUES FROM ('2024-01-01') TO ('2024-07-01');
       CREATE TABLE readings_b PARTITION OF readings FOR VALUES FROM ('2024-07-01') TO ('2025-01-01');
       INSERT INTO readings SELECT date '2024-01-01' + g % 360, g % 5000, g FROM generate_series(1, 60000) g;
       ANALYZE items;
       ANALYZE readings;`,
    );
    db = createDatabase(testDatabaseOptions(urlOf(DB_NAME), { queryTimeoutMs: 60_000 }));
  });

  afterAll(async () => {
    await db?.end();
    await run(TEST_DATABASE_URL, `DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
  });

  it('plans with the whole set in place, then leaves no hypothetical or built index behind', async () => {
    // Prepare
    const session = await AdvisorSession.open(
      db,
      { statementTimeoutMs: 20_000, useHypopg: 'auto' },
      [],
    );
    try {
      const ref = await session.prepare('SELECT id FROM items WHERE owner_id = $1', [[42]]);

      // Act
      const { plans, names } = await session.evaluateSet(
        [ref],
        [BTREE, GIN],
        [{ statement: 0, paramSet: 0 }],
      );
      const left = await session.readOnly(async (q) => ({
        hypothetical: (await q.query('SELECT /* dbopt */ * FROM hypopg_list_indexes')).rows,
        built: (
          await q.query(
            "SELECT /* dbopt */ relname FROM pg_class WHERE relkind = 'i' AND relname LIKE 'dbopt%'",
          )
        ).rows,
      }));

      // Assess
      const used = plans.get(itemKey({ statement: 0, paramSet: 0 }))?.uses.map((u) => u.indexName);
      expect(used).toEqual([names.get(BTREE.id)]);
      expect(left).toEqual({ hypothetical: [], built: [] });
    } finally {
      session.close();
    }
  });

  it('proposes no CREATE INDEX CONCURRENTLY on a partitioned table (PostgreSQL 15 refuses it) and says what to do', async () => {
    // Act
    const report = await adviseIndexes(
      { db },
      [
        {
          id: 'by_sensor',
          sql: 'SELECT v FROM readings WHERE sensor = $1',
          params: [[3], [256]],
          weightPerHour: 100,
          kind: 'read',
        },
      ],
      { ...DEFAULT_ADVISOR_OPTIONS, statementTimeoutMs: 20_000 },
    );
    // Assess
    expect(report.proposals).toEqual([]);
    const reasons = report.rejected
      .filter((r) => r.candidate.ddl.includes('ON public.readings '))
      .map((r) => r.reason);
    expect(reasons.length).toBeGreaterThan(0);
    for (const reason of reasons) {
      expect(reason).toMatch(/^public\.readings is partitioned: .* ON ONLY public\.readings/);
    }
  });

  it('gives up a rolled-back build after lock_timeout when writers hold the table', async () => {
    // Prepare: another session holds ROW EXCLUSIVE (a pending write) on the table
    const blocker = new pg.Client({ connectionString: urlOf(DB_NAME) });
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE items IN ROW EXCLUSIVE MODE');
    const session = await AdvisorSession.open(
      db,
      { statementTimeoutMs: 30_000, useHypopg: 'never' },
      [],
    );
    try {
      const ref = await session.prepare('SELECT id FROM items WHERE owner_id = $1', [[42]]);

      // Act
      const evaluated = await session.evaluateEach([ref], [BTREE], () => [
        { statement: 0, paramSet: 0 },
      ]);

      // Assess
      expect(evaluated.get(BTREE.id)?.error).toMatch(/lock timeout/);
      const { rows } = await session.readOnly((q) =>
        q.query("SELECT /* dbopt */ 1 FROM pg_class WHERE relname LIKE 'dbopt%'"),
      );
      expect(rows).toEqual([]);
    } finally {
      session.close();
      await blocker.query('ROLLBACK');
      await blocker.end();
    }
  });
});
