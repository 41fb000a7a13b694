import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createAlerter, createMemoryAlertStateStore } from '#shared/alerts';
import { DEFAULT_HEALTH_THRESHOLDS } from '#shared/analysis';
import { createDatabase, type Database } from '#shared/db';
import { noMetrics } from '#shared/metrics';
import { createRepository, migrateRepository } from '#shared/repository';
import { createSqlAnalyzer, initSqlParser, type SqlAnalyzer } from '#shared/sql';
import {
  type CollectSlowQueriesDeps,
  collectMetrics,
  collectSlowQueries,
  DEFAULT_FINDING_THRESHOLDS,
  pgStatsTarget,
  readHealthReport,
  SlowQueryMessageSchema,
  type StatsSettings,
  type StatsTarget,
  type TargetMetricsPublisher,
} from '#shared/stats';
import { formatHealthReport } from '../../../local/report-command.ts';
import {
  DEAD_DATABASE_URL,
  TEST_DATABASE_URL,
  testDatabaseOptions,
  testDatabaseUrl,
} from '../support/env.ts';

const DB_NAME = 'dbopt_it_stats_collect';
const NOEXT_DB_NAME = 'dbopt_it_stats_noext';
const urlOf = testDatabaseUrl;
const URL_ = urlOf(DB_NAME);

const BIG_QUERY = 'SELECT count(*) FROM it_big WHERE v = $1';
const SMALL_QUERY = 'SELECT id FROM it_small WHERE id = $1';

const logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

const settings: StatsSettings = {
  readTimeoutMs: 5_000,
  explainTimeoutMs: 2_000,
  historyDays: 14,
  trendWindowMinutes: 60,
  trendMinConfidence: 0.99,
  slowQueries: { topN: 20, minMeanMs: 0, minCalls: 1 },
  findings: { ...DEFAULT_FINDING_THRESHOLDS, seqScanMinRows: 10_000 },
};

const admin = async (sql: string, url = TEST_DATABASE_URL): Promise<void> => {
  const client = new pg.Client(url);
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
};

/** Runs each statement `times` times on a fresh connection, then disconnects (flushes stats). */
const workload = async (runs: [sql: string, times: number][]): Promise<void> => {
  const client = new pg.Client(URL_);
  await client.connect();
  try {
    for (const [sql, times] of runs) {
      for (let i = 0; i < times; i += 1) await client.query(sql, [i]);
    }
  } finally {
    await client.end();
  }
};

const recordingPublisher = () => {
  const published: { target: string; database: string; values: Record<string, number> }[] = [];
  const publisher: TargetMetricsPublisher = {
    publish: (dimensions, values) => published.push({ ...dimensions, values: { ...values } }),
  };
  return { published, publisher };
};

describe('collectors against PostgreSQL 15 (pg_stat_statements)', () => {
  let repoDb: Database;
  let targetDb: Database;
  let noExtDb: Database;
  let deadDb: Database;
  let target: StatsTarget;
  let sql: SqlAnalyzer;
  let dbid: number;
  const sqsMock = mockClient(SQSClient);
  const sqs = new SQSClient({ region: 'us-east-1' });
  const queueUrl = 'https://sqs.us-east-1.amazonaws.com/000000000000/dbopt-slow-queries';

  beforeAll(async () => {
    await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
    await admin(`DROP DATABASE IF EXISTS ${NOEXT_DB_NAME} WITH (FORCE)`);
    await admin(`CREATE DATABASE ${DB_NAME}`);
    await admin(`CREATE DATABASE ${NOEXT_DB_NAME}`);
    await admin(
      `CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
       CREATE TABLE it_big (id int PRIMARY KEY, v int NOT NULL, pad text NOT NULL);
       INSERT INTO it_big SELECT g, g % 1000, repeat('x', 40) FROM generate_series(1, 50000) g;
       CREATE TABLE it_small (id int PRIMARY KEY);
       INSERT INTO it_small SELECT generate_series(1, 100);
       CREATE INDEX it_big_pad_idx ON it_big (pad);
       CREATE TABLE it_churn (id int PRIMARY KEY) WITH (autovacuum_enabled = off);
       INSERT INTO it_churn SELECT generate_series(1, 20000);
       DELETE FROM it_churn WHERE id % 2 = 0;
       ANALYZE it_big;
       ANALYZE it_small;`,
      URL_,
    );
    repoDb = createDatabase(testDatabaseOptions(URL_));
    await migrateRepository(repoDb.pool());
    targetDb = createDatabase(testDatabaseOptions(URL_));
    noExtDb = createDatabase(testDatabaseOptions(urlOf(NOEXT_DB_NAME)));
    deadDb = createDatabase(testDatabaseOptions(DEAD_DATABASE_URL));
    target = pgStatsTarget('primary', DB_NAME, targetDb);
    await initSqlParser();
    sql = createSqlAnalyzer({ cacheEntries: 100 });
    const { rows } = await repoDb
      .pool()
      .query<{ oid: number }>('SELECT oid FROM pg_database WHERE datname = $1', [DB_NAME]);
    dbid = Number(rows[0]?.oid);
  });

  beforeEach(() => {
    sqsMock.reset();
    sqsMock.on(SendMessageBatchCommand).callsFake((input: SendMessageBatchCommand['input']) => ({
      Successful: (input.Entries ?? []).map((e) => ({
        Id: e.Id,
        MessageId: `m-${e.Id}`,
        MD5OfMessageBody: 'x',
      })),
      Failed: [],
    }));
  });

  afterAll(async () => {
    sqsMock.restore();
    await Promise.all([repoDb, targetDb, noExtDb, deadDb].map((db) => db?.end()));
    await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
    await admin(`DROP DATABASE IF EXISTS ${NOEXT_DB_NAME} WITH (FORCE)`);
  });

  const slowDeps = (
    targets: StatsTarget[],
    publisher: TargetMetricsPublisher,
  ): CollectSlowQueriesDeps => ({
    targets,
    repository: createRepository(repoDb.pool()),
    sql,
    sqs,
    queueUrl,
    publisher,
    metrics: noMetrics,
    logger,
    settings,
  });

  it('stores a baseline first, then reports the exact interval calls, a seq-scan finding and one SQS message per fingerprint', async () => {
    // Prepare
    await admin(`SELECT pg_stat_statements_reset(0, ${dbid}, 0)`);
    const { publisher, published } = recordingPublisher();
    const first = await collectSlowQueries(slowDeps([target], publisher));
    // Act
    await workload([
      [BIG_QUERY, 7],
      [SMALL_QUERY, 3],
    ]);
    const second = await collectSlowQueries(slowDeps([target], publisher));
    // Assess
    expect(first.targets[0]?.status).toBe('baseline');
    const result = second.targets[0];
    expect(result?.status).toBe('collected');
    expect(result?.diff?.baseline).toBe(false);
    const big = result?.slow.find((s) => s.query === BIG_QUERY);
    const small = result?.slow.find((s) => s.query === SMALL_QUERY);
    expect(big?.calls).toBe(7);
    expect(small?.calls).toBe(3);
    expect(big?.rows).toBe(7);
    expect(result?.slow.some((s) => s.query.includes('/* dbopt */'))).toBe(false);
    const bigMessage = result?.messages.find((m) => m.query === BIG_QUERY);
    expect(bigMessage?.findings).toContainEqual(
      expect.objectContaining({ kind: 'seq_scan', relation: 'public.it_big' }),
    );
    expect(result?.messages.find((m) => m.query === SMALL_QUERY)?.findings).not.toContainEqual(
      expect.objectContaining({ kind: 'seq_scan' }),
    );
    const calls = sqsMock.commandCalls(SendMessageBatchCommand);
    expect(calls).toHaveLength(1);
    const entries = calls[0]?.args[0].input.Entries ?? [];
    const bodies = entries.map((e) =>
      SlowQueryMessageSchema.parse(JSON.parse(e.MessageBody ?? '')),
    );
    expect(bodies.map((b) => b.fingerprint)).toEqual([
      ...new Set(bodies.map((b) => b.fingerprint)),
    ]);
    expect(bodies.find((b) => b.query === BIG_QUERY)).toMatchObject({
      version: 1,
      target: 'primary',
      database: DB_NAME,
      calls: 7,
      fingerprint: sql.analyze(BIG_QUERY).fingerprint,
    });
    expect(result?.sent).toBe(entries.length);
    expect(published.at(-1)).toMatchObject({
      target: 'primary',
      database: DB_NAME,
      values: { SlowQueries: result?.slow.length },
    });
  });

  it('after pg_stat_statements_reset of our database: no negative deltas, reset flagged, re-entered entries counted fully', async () => {
    // Prepare: one interval with 7 calls of BIG_QUERY, then a reset and 2 calls.
    await collectSlowQueries(slowDeps([target], recordingPublisher().publisher));
    await workload([[BIG_QUERY, 7]]);
    await collectSlowQueries(slowDeps([target], recordingPublisher().publisher));
    await admin(`SELECT pg_stat_statements_reset(0, ${dbid}, 0)`);
    await workload([[BIG_QUERY, 2]]);
    // Act
    const run = await collectSlowQueries(slowDeps([target], recordingPublisher().publisher));
    // Assess
    const result = run.targets[0];
    expect(result?.diff?.reset).toBe(true);
    expect(result?.diff?.wentBackwards).toBeGreaterThan(0);
    expect(result?.slow.find((s) => s.query === BIG_QUERY)?.calls).toBe(2);
    for (const s of result?.slow ?? []) {
      expect(s.calls).toBeGreaterThan(0);
      expect(s.totalExecTimeMs).toBeGreaterThanOrEqual(0);
      expect(s.rows).toBeGreaterThanOrEqual(0);
    }
  });

  it('skips EXPLAIN past the invocation deadline and says so on each statement', async () => {
    // Prepare
    await collectSlowQueries(slowDeps([target], recordingPublisher().publisher));
    await workload([[BIG_QUERY, 3]]);
    // Act
    const run = await collectSlowQueries({
      ...slowDeps([target], recordingPublisher().publisher),
      explainDeadlineMs: Date.now(),
    });
    // Assess
    const big = run.targets[0]?.messages.find((m) => m.query === BIG_QUERY);
    expect(big?.calls).toBe(3);
    expect(big?.findings).toContainEqual(
      expect.objectContaining({
        kind: 'plan_unavailable',
        detail: expect.stringMatching(/^EXPLAIN skipped/),
      }),
    );
    expect(big?.findings).not.toContainEqual(expect.objectContaining({ kind: 'seq_scan' }));
  });

  it('builds the dbopt report: slow statements with findings, unused indexes, dead tuples, a verdict', async () => {
    // Prepare
    await workload([[BIG_QUERY, 2]]);
    // Act
    const report = await readHealthReport(target, {
      thresholds: DEFAULT_HEALTH_THRESHOLDS,
      sql,
      timeoutMs: 5_000,
      topN: 5,
    });
    // Assess
    expect(report.database).toBe(DB_NAME);
    const big = report.slowQueries.find((s) => s.query === BIG_QUERY);
    expect(big?.findings).toContainEqual(
      expect.objectContaining({ kind: 'seq_scan', relation: 'public.it_big' }),
    );
    expect(report.unusedIndexes).toContainEqual(
      expect.objectContaining({ schema: 'public', table: 'it_big', index: 'it_big_pad_idx' }),
    );
    expect(report.deadTupleTables).toContainEqual(
      expect.objectContaining({ table: 'it_churn', deadTuples: 10_000, liveTuples: 10_000 }),
    );
    expect(report.health.checks.find((c) => c.kind === 'dead_tuples')?.value).toBeCloseTo(0.5, 5);
    const text = formatHealthReport(report).join('\n');
    expect(text).toContain(`Verdict: ${report.health.status}`);
    expect(text).toContain('public.it_big_pad_idx on it_big');
  });

  it('reports how to enable pg_stat_statements when the extension is not created', async () => {
    // Prepare
    const noExt = pgStatsTarget('noext', NOEXT_DB_NAME, noExtDb);
    // Act
    const run = await collectSlowQueries(slowDeps([noExt, target], recordingPublisher().publisher));
    // Assess
    expect(run.targets[0]?.status).toBe('pg_stat_statements_missing');
    expect(run.targets[0]?.error?.message).toBe(
      'pg_stat_statements is not enabled on noext: add it to shared_preload_libraries (on RDS/Aurora: in the DB parameter group, then reboot) and run CREATE EXTENSION pg_stat_statements',
    );
    expect(run.targets[1]?.status).toBe('collected');
  });

  it('collects database metrics with rates on the second run and a health verdict', async () => {
    // Prepare
    const { publisher, published } = recordingPublisher();
    const deps = {
      targets: [target],
      repository: createRepository(repoDb.pool()),
      publisher,
      metrics: noMetrics,
      logger,
      thresholds: DEFAULT_HEALTH_THRESHOLDS,
      settings,
    };
    const first = await collectMetrics(deps);
    await workload([[BIG_QUERY, 5]]);
    // Act
    const second = await collectMetrics(deps);
    // Assess
    expect(first.targets[0]?.diff?.baseline).toBe(true);
    const result = second.targets[0];
    expect(result?.status).toBe('collected');
    expect(result?.diff?.baseline).toBe(false);
    expect(result?.diff?.rates?.commitsPerSecond).toBeGreaterThan(0);
    expect(result?.diff?.meanQueryTimeMs).toBeGreaterThan(0);
    expect(result?.snapshot?.server.database).toBe(DB_NAME);
    expect(result?.health?.status).toMatch(/^(HEALTHY|WARNING|DEGRADED|CRITICAL)$/);
    expect(published.at(-1)).toMatchObject({
      target: 'primary',
      database: DB_NAME,
      values: { TargetUp: 1 },
    });
    const history = await createRepository(repoDb.pool()).metricSeries(
      'primary',
      'CommitsPerSecond',
      new Date(Date.now() - 60_000),
    );
    expect(history.length).toBeGreaterThanOrEqual(1);
  });

  it('raises a CRITICAL unreachable alert and TargetUp 0 for a dead target while still collecting the others', async () => {
    // Prepare
    const { publisher, published } = recordingPublisher();
    const alerter = createAlerter({
      sns: { send: () => Promise.reject(new Error('not used without a topic')) },
      store: createMemoryAlertStateStore(),
      cooldownMs: 60_000,
      logger,
    });
    const dead = pgStatsTarget('dead', 'dbopt_test', deadDb);
    // Act
    const run = await collectMetrics({
      targets: [dead, target],
      repository: createRepository(repoDb.pool()),
      alerter,
      publisher,
      metrics: noMetrics,
      logger,
      thresholds: DEFAULT_HEALTH_THRESHOLDS,
      settings,
    });
    // Assess
    const [deadResult, liveResult] = run.targets;
    expect(deadResult?.status).toBe('unreachable');
    expect(deadResult?.conditions).toEqual([
      expect.objectContaining({ kind: 'unreachable', severity: 'CRITICAL' }),
    ]);
    expect(deadResult?.alerts).toEqual([
      expect.objectContaining({ kind: 'unreachable', event: 'opened', severity: 'CRITICAL' }),
    ]);
    expect(published.find((p) => p.target === 'dead')?.values).toEqual({ TargetUp: 0 });
    expect(liveResult?.status).toBe('collected');
    expect(published.find((p) => p.target === 'primary')?.values.TargetUp).toBe(1);
  });
});
