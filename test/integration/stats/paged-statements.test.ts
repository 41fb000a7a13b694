import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Database, withReadOnlyTransaction } from '#shared/db';
import { noMetrics } from '#shared/metrics';
import { createRepository, migrateRepository } from '#shared/repository';
import { createSqlAnalyzer, initSqlParser } from '#shared/sql';
import {
  collectSlowQueries,
  DEFAULT_FINDING_THRESHOLDS,
  pgStatsTarget,
  readServerInfo,
  readStatementSnapshot,
  type StatsSettings,
  type StatsTarget,
} from '#shared/stats';
import { readStatementTexts, type StatementPaging } from '../../../shared/stats/statements.ts';
import { TEST_DATABASE_URL, testDatabaseOptions, testDatabaseUrl } from '../support/env.ts';

const DB_NAME = 'dbopt_it_dapi_paged';
const url = testDatabaseUrl(DB_NAME);

const logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

const settings: StatsSettings = {
  readTimeoutMs: 5_000,
  explainTimeoutMs: 2_000,
  historyDays: 14,
  trendWindowMinutes: 60,
  trendMinConfidence: 0.99,
  slowQueries: { topN: 3, minMeanMs: 0, minCalls: 1 },
  findings: DEFAULT_FINDING_THRESHOLDS,
};

/** Tiny pages, so a few dozen entries take many pages of both kinds. */
const PAGING: StatementPaging = { counterPageRows: 7, textPageBytes: 300, textMaxChars: 40 };

/** Letters, not digits: the fingerprint ignores digits in table names (partitions). */
const tableSuffix = (i: number): string =>
  String.fromCharCode(97 + Math.floor(i / 26), 97 + (i % 26));

const admin = async (sql: string, target = TEST_DATABASE_URL): Promise<void> => {
  const client = new pg.Client(target);
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
};

/** 30 distinct statements (their shapes differ, so do their queryids), statement i run i+1 times. */
const runWorkload = async (): Promise<void> => {
  const client = new pg.Client(url);
  await client.connect();
  try {
    for (let i = 0; i < 30; i += 1) {
      for (let n = 0; n <= i; n += 1) {
        await client.query(
          `SELECT count(*) FROM items WHERE note <> 'a literal long enough to be cut at forty characters' AND (id > $1${' OR id = $1'.repeat(i)})`,
          [n],
        );
      }
    }
  } finally {
    await client.end();
  }
};

describe('pg_stat_statements read in pages (the Data API path) on PostgreSQL 15', () => {
  let db: Database;

  beforeAll(async () => {
    await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
    await admin(`CREATE DATABASE ${DB_NAME}`);
    await admin('CREATE EXTENSION IF NOT EXISTS pg_stat_statements', url);
    await admin(
      'CREATE TABLE items AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, 2000) AS g',
      url,
    );
    await admin(
      "DO $$ BEGIN FOR i IN 0..29 LOOP EXECUTE format('CREATE TABLE t_%s AS SELECT g AS id FROM generate_series(1, 500) AS g', chr(97 + i / 26) || chr(97 + i % 26)); END LOOP; END $$",
      url,
    );
    db = createDatabase(testDatabaseOptions(url));
    await migrateRepository(db.pool());
    await initSqlParser();
  });

  afterAll(async () => {
    await db?.end();
    await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
  });

  it('reads the same counters as the one-statement read, key by key, and the texts cut server-side', async () => {
    // Prepare
    await runWorkload();
    const read = (paging?: StatementPaging) =>
      withReadOnlyTransaction(db, { timeoutMs: 5_000 }, async (q) => {
        const server = await readServerInfo(q);
        return readStatementSnapshot(q, {
          target: 'primary',
          serverVersionNum: server.serverVersionNum,
          ...(paging ? { paging } : {}),
        });
      });
    // Act
    const whole = await read();
    const paged = await read(PAGING);
    const texts = await withReadOnlyTransaction(db, { timeoutMs: 5_000 }, (q) =>
      readStatementTexts(q, {
        target: 'primary',
        dbId: whole.entries[0]?.dbId ?? '',
        columns: paged.textsPending?.columns ?? {
          execTime: 'exec_time',
          toplevel: true,
          info: true,
          statsSince: false,
        },
        paging: PAGING,
        queryIds: whole.entries.map((e) => e.queryId),
      }),
    );
    // Assess: every workload entry is in the paged read with the same counters (only our own,
    // /* dbopt */-marked reads, which the one-statement read leaves out, differ).
    expect(whole.entries.length).toBeGreaterThan(3 * PAGING.counterPageRows);
    expect(paged.textsPending).toBeDefined();
    const pagedByKey = new Map(paged.entries.map((e) => [e.key, e]));
    expect(pagedByKey.size).toBe(paged.entries.length);
    const workload = whole.entries.filter((e) => e.query.includes('FROM items'));
    expect(workload).toHaveLength(30);
    for (const e of workload) {
      const { query: _q, ...counters } = e;
      expect(pagedByKey.get(e.key)).toMatchObject({ ...counters, query: '' });
    }
    for (const e of whole.entries) expect(texts.get(e.key)).toBe(e.query.slice(0, 40));
  });

  it('ranks the same slow statements through the paged read as through the one-statement read', async () => {
    // Prepare: one target of each kind on the same database, each with its own snapshot; texts
    // long enough to stay whole, in pages of ~300 bytes.
    const whole = pgStatsTarget('whole', DB_NAME, db);
    const paged: StatsTarget = {
      ...pgStatsTarget('paged', DB_NAME, db),
      statementPaging: { ...PAGING, textMaxChars: 2_000 },
    };
    const deps = {
      targets: [whole, paged],
      repository: createRepository(db.pool()),
      sql: createSqlAnalyzer({ cacheEntries: 100 }),
      publisher: { publish: () => undefined },
      metrics: noMetrics,
      logger,
      settings,
      explain: false,
    };
    await collectSlowQueries(deps);
    const client = new pg.Client(url);
    await client.connect();
    try {
      for (let i = 0; i < 30; i += 1) {
        for (let n = 0; n <= i; n += 1) {
          await client.query(`SELECT count(*) FROM t_${tableSuffix(i)} WHERE id > $1`, [n]);
        }
      }
    } finally {
      await client.end();
    }
    // Act
    const run = await collectSlowQueries(deps);
    // Assess: both read the same workload counters (it ran before both reads), so the same
    // top 3, with whole texts and real fingerprints.
    const [w, p] = run.targets;
    expect(w?.status).toBe('collected');
    expect(p?.status).toBe('collected');
    expect(w?.slow).toHaveLength(3);
    expect(p?.slow).toEqual(w?.slow);
    for (const s of p?.slow ?? []) {
      expect(s.query).toMatch(/^SELECT count\(\*\) FROM t_[a-z]{2} WHERE id > \$1$/);
      expect(s.fingerprint).not.toMatch(/^queryid:/);
    }
  });
});
