import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AdvisorOptions,
  adviseIndexes,
  DEFAULT_ADVISOR_OPTIONS,
  type WorkloadStatement,
} from '#shared/advisor';
import { createDatabase, type Database } from '#shared/db';
import { quoteLiteral, toSqlLiteral } from '../../../shared/advisor/sql-text.ts';
import { TEST_DATABASE_URL, testDatabaseOptions, testDatabaseUrl } from '../support/env.ts';

// Example values (from a workload file or sampled from pg_stats, i.e. from the data) are
// rendered into EXPLAIN EXECUTE text; under standard_conforming_strings = off a backslash
// in a plain '…' literal is an escape character.
const DB_NAME = 'dbopt_it_rev4_literals';

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

// Ends the literal early when backslashes escape, then commits and creates a table.
const HOSTILE = "x\\'; COMMIT; CREATE TABLE dbopt_pwned (); --";
const VALUES = [HOSTILE, 'C:\\temp\\', "it's", 'two\nlines\ttab', 'plain'];

describe('example values rendered as SQL literals', () => {
  let db: Database;

  beforeAll(async () => {
    await run(TEST_DATABASE_URL, `DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
    await run(TEST_DATABASE_URL, `CREATE DATABASE ${DB_NAME}`);
    await run(TEST_DATABASE_URL, `ALTER DATABASE ${DB_NAME} SET standard_conforming_strings = off`);
    await run(TEST_DATABASE_URL, `ALTER DATABASE ${DB_NAME} SET escape_string_warning = off`);
    await run(
      urlOf(DB_NAME),
      `CREATE TABLE notes (id int PRIMARY KEY, label text NOT NULL);
       INSERT INTO notes SELECT g, 'label ' || g FROM generate_series(1, 30000) g;
       ANALYZE notes;`,
    );
    db = createDatabase(testDatabaseOptions(urlOf(DB_NAME), { queryTimeoutMs: 30_000 }));
  });

  afterAll(async () => {
    await db?.end();
    await run(TEST_DATABASE_URL, `DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
  });

  it.each(VALUES)('%j reads back unchanged with standard_conforming_strings off', async (value) => {
    // Prepare
    const sql = `SELECT ${toSqlLiteral(value)}::text AS v, ${quoteLiteral(value)} AS w`;

    // Act
    const { rows } = await db.pool().query<{ v: string; w: string }>(sql);

    // Assess
    expect(rows).toEqual([{ v: value, w: value }]);
  });

  it('plans a statement with a hostile example value without running any of it', async () => {
    // Prepare
    const options: AdvisorOptions = {
      ...DEFAULT_ADVISOR_OPTIONS,
      statementTimeoutMs: 20_000,
      // Real builds in write transactions, the path where a COMMIT would persist most.
      useHypopg: 'never',
    };
    const workload: WorkloadStatement[] = [
      {
        id: 'by_label',
        sql: 'SELECT id FROM notes WHERE label = $1',
        params: [[HOSTILE], ['label 42']],
        weightPerHour: 1000,
        kind: 'read',
      },
    ];

    // Act
    const report = await adviseIndexes({ db }, workload, options);

    // Assess
    const { rows } = await db
      .pool()
      .query<{ t: string | null }>("SELECT to_regclass('dbopt_pwned')::text AS t");
    expect(rows).toEqual([{ t: null }]);
    expect(report.warnings.filter((w) => w.includes('could not be planned'))).toEqual([]);
    expect(report.proposals.map((p) => p.ddl)).toEqual([
      'CREATE INDEX CONCURRENTLY notes_label_idx ON public.notes USING btree (label);',
    ]);
  });
});
