import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PRIMARY_REPLICATION_SQL } from '../../../shared/stats/catalog.ts';
import { TEST_DATABASE_URL } from '../support/env.ts';

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
