import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Database, type DatabaseOptions, executeStatement } from '#shared/db';
import { type ScatterShard, ShardsUnavailableError, scatterGather } from '#shared/scatter';
import { initSqlParser } from '#shared/sql';
import { DEAD_DATABASE_URL, TEST_DATABASE_URL, testDatabaseOptions } from '../support/env.ts';

const SHARD_DATABASES = ['scatter_it_s1', 'scatter_it_s2', 'scatter_it_s3'] as const;
const ALL_DATABASE = 'scatter_it_all';

const urlFor = (database: string): string => {
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${database}`;
  return url.toString();
};

const optionsFor = (url: string): DatabaseOptions => testDatabaseOptions(url, { poolMax: 2 });

// 90 rows: integers, a nullable numeric with decimals, a nullable text group, a timestamptz.
const SCHEMA_SQL = `
  DROP SCHEMA IF EXISTS scatter_it CASCADE;
  CREATE SCHEMA scatter_it;
  CREATE TABLE scatter_it.items (
    id int PRIMARY KEY,
    grp text,
    qty int,
    price numeric(10, 3),
    score float8,
    big bigint NOT NULL,
    at timestamptz NOT NULL
  );
  CREATE TABLE scatter_it.empty (id int PRIMARY KEY, grp text, qty int);
`;
const rowsFor = (shard: number | undefined): string => `
  INSERT INTO scatter_it.items
  SELECT g,
         CASE WHEN g % 7 = 0 THEN NULL ELSE (ARRAY['red', 'green', 'blue', 'Black'])[g % 4 + 1] END,
         CASE WHEN g % 5 = 0 THEN NULL ELSE (g * 37) % 23 END,
         CASE WHEN g % 6 = 0 THEN NULL ELSE ((g * 7919) % 1000) / 8.0 END,
         (g % 9) * 0.5,
         9007199254740000 + g,
         timestamptz '2026-01-01 00:00:00+00' + g * interval '97 minutes 13.000123 seconds'
  FROM generate_series(1, 90) g
  ${shard === undefined ? '' : `WHERE g % 3 = ${shard}`};
`;

interface Case {
  readonly sql: string;
  /** The query has no total order: compare as multisets. */
  readonly unordered?: boolean;
}

const CASES: readonly Case[] = [
  { sql: 'SELECT id, grp, qty FROM scatter_it.items', unordered: true },
  { sql: 'SELECT * FROM scatter_it.items WHERE qty > $1', unordered: true },
  { sql: 'SELECT id, price FROM scatter_it.items ORDER BY id' },
  { sql: 'SELECT id, qty FROM scatter_it.items ORDER BY qty, id LIMIT 10' },
  { sql: 'SELECT id, qty FROM scatter_it.items ORDER BY qty DESC, id LIMIT 7 OFFSET 5' },
  { sql: 'SELECT id, qty FROM scatter_it.items ORDER BY qty DESC NULLS LAST, id DESC LIMIT 12' },
  { sql: 'SELECT id, price FROM scatter_it.items ORDER BY price ASC NULLS FIRST, id LIMIT 9' },
  { sql: 'SELECT id, price FROM scatter_it.items ORDER BY 2 DESC, 1 LIMIT 6 OFFSET 20' },
  { sql: 'SELECT id, grp AS colour FROM scatter_it.items ORDER BY colour, id OFFSET 80' },
  { sql: 'SELECT * FROM scatter_it.items ORDER BY at DESC LIMIT 5' },
  { sql: 'SELECT id, big FROM scatter_it.items ORDER BY big DESC LIMIT 4' },
  { sql: 'SELECT id FROM scatter_it.items ORDER BY id LIMIT 0' },
  { sql: 'SELECT count(*) FROM scatter_it.items' },
  { sql: 'SELECT count(qty) AS n, count(price) FROM scatter_it.items' },
  { sql: 'SELECT sum(qty), sum(price) AS total, sum(big) FROM scatter_it.items' },
  { sql: 'SELECT min(price), max(price), min(grp), max(at) FROM scatter_it.items' },
  { sql: 'SELECT avg(qty), avg(price) AS mean_price, avg(big) FROM scatter_it.items' },
  { sql: 'SELECT avg(score), sum(score) FROM scatter_it.items' },
  { sql: 'SELECT avg(qty) FROM scatter_it.items WHERE id % 3 = 1' },
  { sql: 'SELECT count(*), sum(qty), avg(qty), min(qty), max(qty) FROM scatter_it.empty' },
  { sql: 'SELECT count(*) FILTER (WHERE qty > 10) AS many FROM scatter_it.items' },
  {
    sql: 'SELECT grp, count(*), sum(qty), avg(price), min(id), max(id) FROM scatter_it.items GROUP BY grp ORDER BY grp',
  },
  {
    sql: 'SELECT grp, count(*) AS n FROM scatter_it.items GROUP BY grp',
    unordered: true,
  },
  {
    sql: 'SELECT grp, qty % 2 AS odd, avg(qty) FROM scatter_it.items GROUP BY 1, 2 ORDER BY 1, 2',
  },
  {
    sql: 'SELECT grp, count(*) AS n FROM scatter_it.items GROUP BY grp ORDER BY n DESC, grp LIMIT 2 OFFSET 1',
  },
  { sql: 'SELECT qty FROM scatter_it.items GROUP BY qty ORDER BY qty NULLS FIRST' },
  { sql: 'SELECT grp, sum(qty) FROM scatter_it.empty GROUP BY grp' },
  {
    sql: 'SELECT grp, avg(qty) AS a FROM scatter_it.items WHERE id > 80 GROUP BY grp ORDER BY a DESC NULLS LAST, grp',
  },
  { sql: "SELECT 'all' AS label, avg(id) FROM scatter_it.items" },
  {
    sql: 'SELECT grp, max(price) FROM scatter_it.items WHERE price IS NULL GROUP BY grp ORDER BY grp',
  },
];

const sortedJson = (rows: readonly unknown[]): string[] =>
  rows.map((r) => JSON.stringify(r)).sort();

describe('scatterGather against three shard databases', () => {
  let admin: pg.Client;
  let all: Database;
  let shards: ScatterShard[];
  const dbs: Database[] = [];

  beforeAll(async () => {
    await initSqlParser();
    admin = new pg.Client(TEST_DATABASE_URL);
    await admin.connect();
    for (const name of [...SHARD_DATABASES, ALL_DATABASE]) {
      const existing = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      if (existing.rowCount === 0) await admin.query(`CREATE DATABASE ${name}`);
    }
    const seed = async (database: string, shard: number | undefined) => {
      const client = new pg.Client(urlFor(database));
      await client.connect();
      try {
        await client.query(SCHEMA_SQL + rowsFor(shard));
      } finally {
        await client.end();
      }
    };
    await Promise.all([
      ...SHARD_DATABASES.map((name, i) => seed(name, i)),
      seed(ALL_DATABASE, undefined),
    ]);
    shards = SHARD_DATABASES.map((name) => {
      const db = createDatabase(optionsFor(urlFor(name)));
      dbs.push(db);
      return { name, db };
    });
    all = createDatabase(optionsFor(urlFor(ALL_DATABASE)));
    dbs.push(all);
  });

  afterAll(async () => {
    await Promise.all(dbs.map((db) => db.end()));
    for (const name of [...SHARD_DATABASES, ALL_DATABASE]) {
      const client = new pg.Client(urlFor(name));
      await client.connect();
      await client.query('DROP SCHEMA IF EXISTS scatter_it CASCADE');
      await client.end();
    }
    await admin.end();
  });

  it.each(CASES)('$sql equals the single-database answer', async ({ sql, unordered }) => {
    // Prepare
    const params = sql.includes('$1') ? [10] : [];
    const expected = await executeStatement(all, {
      sql,
      params,
      readOnly: true,
      timeoutMs: 5_000,
      maxRows: 1_000,
    });
    // Act
    const merged = await scatterGather({
      shards,
      sql,
      params,
      deadlineMs: 5_000,
      maxRows: 1_000,
      failurePolicy: 'fail',
    });
    // Assess
    expect(merged.missingShards).toEqual([]);
    expect(merged.fields).toEqual(expected.fields);
    if (unordered) {
      expect(sortedJson(merged.rows)).toEqual(sortedJson(expected.rows));
    } else {
      expect(JSON.stringify(merged.rows)).toBe(JSON.stringify(expected.rows));
    }
  });

  describe('with one shard unreachable', () => {
    let dead: Database;
    let withDead: ScatterShard[];

    beforeAll(() => {
      dead = createDatabase({ ...optionsFor(DEAD_DATABASE_URL), connectTimeoutMs: 500 });
      dbs.push(dead);
      withDead = [...shards.slice(0, 2), { name: 'scatter_it_dead', db: dead }];
    });

    it('fails with SHARDS_UNAVAILABLE naming the shard under the fail policy', async () => {
      // Act
      const act = scatterGather({
        shards: withDead,
        sql: 'SELECT count(*) FROM scatter_it.items',
        params: [],
        deadlineMs: 3_000,
        maxRows: 100,
        failurePolicy: 'fail',
      });
      // Assess
      await expect(act).rejects.toBeInstanceOf(ShardsUnavailableError);
      await expect(act).rejects.toMatchObject({
        code: 'SHARDS_UNAVAILABLE',
        details: { failedShards: ['scatter_it_dead'] },
        message: expect.stringContaining('scatter_it_dead'),
      });
    });

    it('merges the shards that answered and lists the missing one under the partial policy', async () => {
      // Act
      const result = await scatterGather({
        shards: withDead,
        sql: 'SELECT count(*) FROM scatter_it.items',
        params: [],
        deadlineMs: 3_000,
        maxRows: 100,
        failurePolicy: 'partial',
      });
      // Assess: shards 0 and 1 (id % 3 = 0 and 1) hold 30 rows each.
      expect(result.missingShards).toEqual(['scatter_it_dead']);
      expect(result.rows).toEqual([{ count: '60' }]);
    });

    it('rethrows an error in the query itself instead of treating shards as missing', async () => {
      // Act
      const act = scatterGather({
        shards,
        sql: 'SELECT count(*) FROM scatter_it.no_such_table',
        params: [],
        deadlineMs: 3_000,
        maxRows: 100,
        failurePolicy: 'partial',
      });
      // Assess
      await expect(act).rejects.toMatchObject({ code: 'SQL_UNDEFINED_OBJECT' });
    });

    it('treats a shard that misses the deadline as unavailable', async () => {
      // Act
      const act = scatterGather({
        shards,
        sql: 'SELECT count(*) FROM scatter_it.items, pg_sleep(0.5)',
        params: [],
        deadlineMs: 150,
        maxRows: 100,
        failurePolicy: 'fail',
      });
      // Assess
      await expect(act).rejects.toMatchObject({
        code: 'SHARDS_UNAVAILABLE',
        details: { failedShards: [...SHARD_DATABASES] },
      });
    });
  });
});
