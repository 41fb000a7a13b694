import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_HEALTH_THRESHOLDS } from '#shared/analysis';
import { createDatabase, type Database } from '#shared/db';
import { noMetrics } from '#shared/metrics';
import { createRepository, migrateRepository } from '#shared/repository';
import {
  collectMetrics,
  DEFAULT_FINDING_THRESHOLDS,
  pgStatsTarget,
  type StatsSettings,
} from '#shared/stats';
import { TEST_DATABASE_URL, testDatabaseOptions, testDatabaseUrl } from '../support/env.ts';

const DB_NAME = 'dbopt_it_rev3_own';
const url = testDatabaseUrl(DB_NAME);

const logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

const settings: StatsSettings = {
  readTimeoutMs: 5_000,
  explainTimeoutMs: 2_000,
  historyDays: 14,
  trendWindowMinutes: 60,
  trendMinConfidence: 0.99,
  slowQueries: { topN: 20, minMeanMs: 0, minCalls: 1 },
  findings: DEFAULT_FINDING_THRESHOLDS,
};

const admin = async (sql: string, target = TEST_DATABASE_URL): Promise<void> => {
  const client = new pg.Client(target);
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
};

describe('collect-metrics mean statement time (PostgreSQL 15)', () => {
  let db: Database;

  beforeAll(async () => {
    await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
    await admin(`CREATE DATABASE ${DB_NAME}`);
    await admin('CREATE EXTENSION IF NOT EXISTS pg_stat_statements', url);
    db = createDatabase(testDatabaseOptions(url));
    // The repository lives in the watched database, as by default (the primary).
    await migrateRepository(db.pool());
  });

  afterAll(async () => {
    await db?.end();
    await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
  });

  it("leaves dbopt's own statements (marked /* dbopt */) out of MeanQueryTimeMs", async () => {
    // Prepare: a baseline, then a fast workload and one slow statement of our own.
    const target = pgStatsTarget('primary', DB_NAME, db);
    const published: Record<string, number>[] = [];
    const deps = {
      targets: [target],
      repository: createRepository(db.pool()),
      publisher: {
        publish: (_d: unknown, values: Record<string, number>) => published.push(values),
      },
      metrics: noMetrics,
      logger,
      thresholds: DEFAULT_HEALTH_THRESHOLDS,
      settings,
    };
    await collectMetrics(deps);
    const client = new pg.Client(url);
    await client.connect();
    try {
      for (let i = 0; i < 20; i += 1) await client.query('SELECT $1::int AS n', [i]);
      await client.query('SELECT /* dbopt */ pg_sleep(0.5)');
    } finally {
      await client.end();
    }
    // Act
    const run = await collectMetrics(deps);
    // Assess: 20 sub-millisecond statements; with the 500 ms sleep counted the mean is ≥ 20 ms.
    expect(run.targets[0]?.status).toBe('collected');
    const mean = run.targets[0]?.diff?.meanQueryTimeMs;
    expect(mean).not.toBeNull();
    expect(mean).toBeLessThan(5);
    expect(published.at(-1)?.MeanQueryTimeMs).toBe(mean);
  });
});
