import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Database, withReadOnlyTransaction } from '#shared/db';
import { PRIMARY_REPLICATION_SQL } from '../../../shared/stats/catalog.ts';
import { readDatabaseSnapshot } from '../../../shared/stats/database.ts';
import { recreateDatabase } from '../support/databases.ts';
import { TEST_DATABASE_URL, testDatabaseOptions } from '../support/env.ts';

/** The catalog SQL with pg_stat_replication replaced by rows we choose (no replica here). */
const withRows = (values: string): string => {
  const view = 'pg_catalog.pg_stat_replication AS r';
  expect(PRIMARY_REPLICATION_SQL).toContain(view);
  return PRIMARY_REPLICATION_SQL.replace(view, `(VALUES ${values}) AS r (state, replay_lag)`);
};

describe('PRIMARY_REPLICATION_SQL on PostgreSQL 15', () => {
  let client: pg.Client;

  beforeAll(async () => {
    client = new pg.Client(TEST_DATABASE_URL);
    await client.connect();
  });

  afterAll(async () => {
    await client.end();
  });

  it.each<[string, string, number, number | null]>([
    ['no replicas', `(NULL::text, NULL::interval) LIMIT 0`, 0, null],
    ['a lagging streaming replica', `('streaming', interval '12 seconds')`, 1, 12],
    // replay_lag turns NULL once a streaming standby caught up and no WAL flows.
    ['a caught-up idle streaming replica', `('streaming', NULL::interval)`, 1, 0],
    ['a replica still in catch-up', `('catchup', NULL::interval)`, 1, null],
    [
      'the worst of several',
      `('streaming', NULL::interval), ('streaming', interval '3 seconds')`,
      2,
      3,
    ],
  ])('reports %s', async (_name, values, replicas, lagSeconds) => {
    // Act
    const { rows } = await client.query(withRows(values));
    // Assess
    expect(rows[0]).toEqual({ replicas, lag_seconds: lagSeconds });
  });
});

/**
 * Aurora readers never appear in pg_stat_replication. A stand-in `aurora_replica_status()`
 * with the documented columns (writer row `MASTER_SESSION_ID`, readers' replica_lag_in_msec)
 * lets the snapshot prove it takes Aurora's lag when the function exists.
 */
describe('replication lag on Aurora PostgreSQL', () => {
  let url: string;
  let db: Database;

  beforeAll(async () => {
    url = await recreateDatabase('dbopt_it_stats_aurora');
    db = createDatabase(testDatabaseOptions(url));
  });

  afterAll(async () => {
    await db.end();
  });

  const snapshot = () =>
    withReadOnlyTransaction(db, { timeoutMs: 5_000 }, (q) => readDatabaseSnapshot(q));

  it('reports no replicas without the function (plain PostgreSQL, no standbys)', async () => {
    // Act
    const { replication } = await snapshot();

    // Assess
    expect(replication).toEqual({ replicas: 0, lagSeconds: null });
  });

  it("takes the worst reader's replica_lag_in_msec, leaving out the writer", async () => {
    // Prepare
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`
      CREATE FUNCTION aurora_replica_status()
      RETURNS TABLE (server_id text, session_id text, replica_lag_in_msec real)
      LANGUAGE sql AS $$
        VALUES ('writer-1', 'MASTER_SESSION_ID', NULL::real),
               ('reader-1', 'a3b1c2d4-0000-4000-8000-000000000001', 120::real),
               ('reader-2', 'a3b1c2d4-0000-4000-8000-000000000002', 250::real)
      $$`);
    await admin.end();

    // Act
    const { replication } = await snapshot();

    // Assess
    expect(replication).toEqual({ replicas: 2, lagSeconds: 0.25 });
  });
});
