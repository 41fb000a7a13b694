import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplyError, type ApplyLimits, applyIndex } from '#shared/advisor';
import { createDatabase, type Database } from '#shared/db';
import { initSqlParser } from '#shared/sql';
import { recreateDatabase, runSql } from '../optimizer/scratch-db.ts';
import { testDatabaseOptions } from '../support/env.ts';

const SCHEMA = `
CREATE EXTENSION IF NOT EXISTS hypopg;
CREATE TABLE t (id int PRIMARY KEY, a int NOT NULL, b int NOT NULL, note text);
INSERT INTO t SELECT g, g % 5000, g % 3, 'row ' || g FROM generate_series(1, 50000) g;
ANALYZE t;
`;
const LIMITS: ApplyLimits = { lockTimeoutMs: 300, maxIndexBytes: 100_000_000, maxBuildMs: 20_000 };
const SERVED = [{ sql: 'SELECT id, note FROM t WHERE a = $1', params: [42] }];

let url: string;
let db: Database;

beforeAll(async () => {
  await initSqlParser();
  url = await recreateDatabase('dbopt_it_opt_apply');
  await runSql(url, SCHEMA);
  db = createDatabase(testDatabaseOptions(url, { poolMax: 2 }));
});

afterAll(async () => {
  await db?.end();
});

/** An in-memory stand-in for the repository's setSuggestionStatus. */
const recorder = () => {
  const calls: Array<{ id: number; status: string; outcome?: Record<string, unknown> }> = [];
  return {
    calls,
    setSuggestionStatus: async (id: number, status: string, outcome?: Record<string, unknown>) => {
      calls.push({ id, status, outcome });
    },
  };
};

const indexNames = async (): Promise<string[]> =>
  (await runSql(url, "SELECT indexname FROM pg_indexes WHERE tablename = 't' ORDER BY 1")).rows.map(
    (r) => r.indexname as string,
  );

const deps = (suggestions = recorder()) => ({
  connect: () => db.pool().connect(),
  suggestions,
});

describe('verified apply on PostgreSQL 15', () => {
  it('builds a useful index CONCURRENTLY, verifies it and records applied → verified', async () => {
    // Prepare
    const suggestions = recorder();
    // Act
    const outcome = await applyIndex(deps(suggestions), {
      ddl: 'CREATE INDEX t_a_idx ON t (a)',
      statements: SERVED,
      limits: LIMITS,
      suggestionId: 7,
    });
    // Assess
    expect(outcome).toMatchObject({
      status: 'verified',
      indexName: 't_a_idx',
      ddl: 'CREATE INDEX CONCURRENTLY t_a_idx ON t (a)',
    });
    expect(outcome.statements[0]).toMatchObject({ usesIndex: true });
    expect(outcome.statements[0]?.costAfter).toBeLessThan(outcome.statements[0]?.costBefore ?? 0);
    expect(outcome.estimatedSizeBytes).toBeGreaterThan(0);
    expect(suggestions.calls.map((c) => [c.id, c.status])).toEqual([
      [7, 'applied'],
      [7, 'verified'],
    ]);
    expect(await indexNames()).toContain('t_a_idx');
    await runSql(url, 'DROP INDEX t_a_idx');
  });

  it('drops an index no served statement uses and records rejected', async () => {
    // Prepare
    const suggestions = recorder();
    // Act
    const outcome = await applyIndex(deps(suggestions), {
      ddl: 'CREATE INDEX ON t (b)',
      statements: SERVED,
      limits: LIMITS,
      suggestionId: 8,
    });
    // Assess
    expect(outcome.status).toBe('rejected');
    expect(outcome.reason).toBe('no served statement uses it; the index was dropped');
    expect(outcome.indexName).toBe('dbopt_t_b_idx');
    expect(suggestions.calls.map((c) => c.status)).toEqual(['applied', 'rejected']);
    expect(await indexNames()).toEqual(['t_pkey']);
  });

  it('drops an index that duplicates an existing one (used, but nothing gets cheaper)', async () => {
    // Prepare
    await runSql(url, 'CREATE INDEX t_a_existing_idx ON t (a)');
    // Act
    const outcome = await applyIndex(deps(), {
      ddl: 'CREATE INDEX t_a_copy_idx ON t (a)',
      statements: SERVED,
      limits: LIMITS,
    });
    // Assess
    expect(outcome.status).toBe('rejected');
    expect(outcome.reason).toContain('no cheaper');
    expect(await indexNames()).toEqual(['t_a_existing_idx', 't_pkey']);
    await runSql(url, 'DROP INDEX t_a_existing_idx');
  });

  it('refuses an index whose estimated size exceeds the limit, without building it', async () => {
    // Act
    const outcome = await applyIndex(deps(), {
      ddl: 'CREATE INDEX t_a_idx ON t (a)',
      statements: SERVED,
      limits: { ...LIMITS, maxIndexBytes: 10_000 },
    });
    // Assess
    expect(outcome.status).toBe('rejected');
    expect(outcome.reason).toContain('exceeds APPLY_MAX_INDEX_BYTES (10000); not built');
    expect(await indexNames()).toEqual(['t_pkey']);
  });

  it('surfaces a lock timeout clearly and leaves no invalid index behind', async () => {
    // Prepare: another session writes to t in an open transaction; the concurrent build must
    // wait for it after it has already created the (invalid) index entry.
    const blocker = new pg.Client(url);
    await blocker.connect();
    await blocker.query("BEGIN; INSERT INTO t VALUES (100001, 1, 1, 'blocker')");
    const released = new Promise((resolve) => setTimeout(resolve, 1_500)).then(() =>
      blocker.query('ROLLBACK'),
    );
    const suggestions = recorder();
    // Act
    const attempt = applyIndex(deps(suggestions), {
      ddl: 'CREATE INDEX t_a_idx ON t (a)',
      statements: SERVED,
      limits: LIMITS,
      suggestionId: 9,
    });
    // Assess
    await expect(attempt).rejects.toBeInstanceOf(ApplyError);
    await expect(attempt).rejects.toMatchObject({
      code: 'APPLY_LOCK_TIMEOUT',
      details: { sqlState: '55P03' },
      message: expect.stringContaining('The invalid index it left behind was dropped.'),
    });
    await released;
    await blocker.end();
    expect(await indexNames()).toEqual(['t_pkey']);
    expect(suggestions.calls).toEqual([
      {
        id: 9,
        status: 'proposed',
        outcome: { lastAttempt: expect.objectContaining({ code: 'APPLY_LOCK_TIMEOUT' }) },
      },
    ]);
  });

  it("keeps an index whose build outlasts the pool's client-side query timeout", async () => {
    // Prepare: a pool whose driver gives up on a query after 1 s; a write in an open
    // transaction makes the concurrent build wait ~2 s for it (well within lock_timeout).
    const shortDb = createDatabase(testDatabaseOptions(url, { poolMax: 2, queryTimeoutMs: 1_000 }));
    const blocker = new pg.Client(url);
    await blocker.connect();
    await blocker.query("BEGIN; INSERT INTO t VALUES (100002, 1, 1, 'blocker')");
    const released = new Promise((resolve) => setTimeout(resolve, 2_000)).then(() =>
      blocker.query('ROLLBACK'),
    );
    try {
      // Act
      const outcome = await applyIndex(
        { connect: () => shortDb.pool().connect() },
        {
          ddl: 'CREATE INDEX t_a_slow_idx ON t (a)',
          statements: SERVED,
          limits: { ...LIMITS, lockTimeoutMs: 20_000 },
        },
      );
      // Assess
      expect(outcome).toMatchObject({ status: 'verified', indexName: 't_a_slow_idx' });
      expect(await indexNames()).toEqual(['t_a_slow_idx', 't_pkey']);
    } finally {
      await released;
      await blocker.end();
      await shortDb.end();
      await runSql(url, 'DROP INDEX IF EXISTS t_a_slow_idx');
    }
  });

  it.each([
    ['a DROP', 'DROP TABLE t'],
    ['two statements', 'CREATE INDEX x1 ON t (a); CREATE INDEX x2 ON t (b)'],
    ['text that does not parse', 'CREATE INDEX ON'],
  ])('refuses %s', async (_name, ddl) => {
    // Act
    const attempt = applyIndex(deps(), { ddl, statements: SERVED, limits: LIMITS });
    // Assess
    await expect(attempt).rejects.toMatchObject({ code: 'APPLY_INVALID_DDL' });
    expect(await indexNames()).toEqual(['t_pkey']);
  });

  it.each([
    [
      'two statements (the second would run outside the read-only transaction)',
      'SELECT id FROM t WHERE a = 1; COMMIT; DROP TABLE victim',
    ],
    ['a utility statement', 'VACUUM victim'],
  ])('refuses a served statement that is %s, before running anything', async (_name, sql) => {
    // Prepare
    await runSql(url, 'CREATE TABLE IF NOT EXISTS victim (id int)');
    // Act
    const attempt = applyIndex(deps(), {
      ddl: 'CREATE INDEX t_b_idx ON t (b)',
      statements: [{ sql }],
      limits: LIMITS,
    });
    // Assess
    await expect(attempt).rejects.toMatchObject({ code: 'APPLY_INVALID_STATEMENT' });
    expect((await runSql(url, "SELECT to_regclass('victim')::text AS t")).rows).toEqual([
      { t: 'victim' },
    ]);
    expect(await indexNames()).toEqual(['t_pkey']);
  });

  it('refuses to reuse the name of an existing index', async () => {
    // Act
    const attempt = applyIndex(deps(), {
      ddl: 'CREATE INDEX t_pkey ON t (a)',
      statements: SERVED,
      limits: LIMITS,
    });
    // Assess
    await expect(attempt).rejects.toMatchObject({ code: 'APPLY_INDEX_EXISTS' });
  });
});
