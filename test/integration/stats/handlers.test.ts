import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SlowQueryMessageSchema } from '#shared/stats';
import { DEAD_DATABASE_URL, TEST_DATABASE_URL, testDatabaseUrl } from '../support/env.ts';
import { lambdaContext } from '../support/lambda.ts';

const DB_NAME = 'dbopt_it_stats_handler';
const URL_ = testDatabaseUrl(DB_NAME);
const QUEUE_URL = 'https://sqs.us-east-1.amazonaws.com/000000000000/dbopt-slow-queries';
const QUERY = 'SELECT count(*) FROM h_big WHERE v = $1';

type CollectorHandler = (event: unknown, context: unknown) => Promise<Record<string, unknown>[]>;
interface CollectorModule {
  handler: CollectorHandler;
  shutdown: () => Promise<void>;
}

const run = async (sql: string, target = TEST_DATABASE_URL, params: unknown[] = []) => {
  const client = new pg.Client(target);
  await client.connect();
  try {
    return await client.query(sql, params);
  } finally {
    await client.end();
  }
};

/** Imports a fresh handler module with `env`, as a cold start would. */
const load = async (path: string, env: Record<string, string>): Promise<CollectorModule> => {
  vi.resetModules();
  const saved = { ...process.env };
  Object.assign(
    process.env,
    { POWERTOOLS_METRICS_DISABLED: 'true', LOG_LEVEL: 'SILENT', AWS_REGION: 'us-east-1' },
    env,
  );
  try {
    return (await import(path)) as CollectorModule;
  } finally {
    process.env = saved;
  }
};

describe('collector Lambda handlers', () => {
  const sqsMock = mockClient(SQSClient);
  const env = {
    DATABASE_URL: URL_,
    DB_SSL_MODE: 'disable',
    SLOW_QUERY_QUEUE_URL: QUEUE_URL,
    SLOW_QUERY_MIN_MEAN_MS: '0',
  };
  const loaded: CollectorModule[] = [];

  beforeAll(async () => {
    await run(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
    await run(`CREATE DATABASE ${DB_NAME}`);
    await run(
      `CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
       CREATE TABLE h_big (id int PRIMARY KEY, v int NOT NULL);
       INSERT INTO h_big SELECT g, g % 100 FROM generate_series(1, 20000) g;
       ANALYZE h_big;`,
      URL_,
    );
    sqsMock.on(SendMessageBatchCommand).callsFake((input: SendMessageBatchCommand['input']) => ({
      Successful: (input.Entries ?? []).map((e) => ({
        Id: e.Id,
        MessageId: 'm',
        MD5OfMessageBody: 'x',
      })),
      Failed: [],
    }));
  });

  afterAll(async () => {
    sqsMock.restore();
    await Promise.all(loaded.map((m) => m.shutdown()));
    await run(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
  });

  it('collect-slow-queries migrates the repository on first use and queues the interval’s slow statements', async () => {
    // Prepare
    const mod = await load('../../../functions/collect-slow-queries/handler.ts', env);
    loaded.push(mod);
    const first = await mod.handler({}, lambdaContext());
    for (let i = 0; i < 4; i += 1) await run(QUERY, URL_, [i]);
    // Act
    const second = await mod.handler({}, lambdaContext());
    // Assess
    expect(first).toEqual([expect.objectContaining({ target: 'primary', status: 'baseline' })]);
    expect(second).toEqual([expect.objectContaining({ target: 'primary', status: 'collected' })]);
    const bodies = sqsMock
      .commandCalls(SendMessageBatchCommand)
      .flatMap((c) => c.args[0].input.Entries ?? [])
      .map((e) => SlowQueryMessageSchema.parse(JSON.parse(e.MessageBody ?? '')));
    expect(bodies.find((b) => b.query === QUERY)).toMatchObject({ calls: 4, database: DB_NAME });
    const { rows } = await run(
      "SELECT count(*)::int AS n FROM dbopt.snapshots WHERE kind = 'statements'",
      URL_,
    );
    expect(rows[0]?.n).toBe(1);
  });

  it('collect-metrics reports an unreachable shard and still collects the primary', async () => {
    // Prepare
    const mod = await load('../../../functions/collect-metrics/handler.ts', {
      ...env,
      SHARD_MAP: '{"version":1,"shards":[{"name":"s1"}]}',
      SHARD_URLS: JSON.stringify({ s1: DEAD_DATABASE_URL }),
    });
    loaded.push(mod);
    // Act
    const result = await mod.handler({}, lambdaContext());
    // Assess
    expect(result).toEqual([
      expect.objectContaining({ target: 'primary', status: 'collected' }),
      expect.objectContaining({
        target: 's1',
        status: 'unreachable',
        alerts: ['opened:unreachable'],
      }),
    ]);
  });

  it.each<[string, unknown, RegExp]>([
    ['targets that are not a list', { targets: 'primary' }, /Invalid collector event/],
    ['an unknown target', { targets: ['nope'] }, /Unknown target\(s\) nope; configured: primary/],
  ])('collect-metrics refuses a scheduler event with %s', async (_name, event, message) => {
    // Prepare
    const mod = await load('../../../functions/collect-metrics/handler.ts', env);
    loaded.push(mod);
    // Act / Assess
    await expect(mod.handler(event, lambdaContext())).rejects.toThrow(message);
  });
});
