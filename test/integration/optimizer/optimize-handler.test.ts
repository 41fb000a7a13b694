import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRepository, type Suggestion } from '#shared/repository';
import { lambdaContext, loadHandler } from '../support/lambda.ts';
import { recreateDatabase, runSql } from './scratch-db.ts';

const SCHEMA = `
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE EXTENSION IF NOT EXISTS hypopg;
CREATE TABLE orders (
  id bigint PRIMARY KEY,
  customer_id int NOT NULL,
  status text NOT NULL,
  created_at timestamptz NOT NULL,
  note text
);
INSERT INTO orders
SELECT g, 1 + (g * 7919) % 20000, CASE WHEN g % 3 = 0 THEN 'paid' ELSE 'new' END,
  timestamptz '2026-01-01 00:00+00' + (g || ' minutes')::interval, 'n' || g
FROM generate_series(1, 60000) g;
CREATE INDEX orders_created_idx ON orders (created_at);
CREATE INDEX orders_note_idx ON orders (note);
ANALYZE orders;
`;

const TOPIC = 'arn:aws:sns:us-east-1:000000000000:dbopt-suggestions';
const sns = mockClient(SNSClient);

type SqsHandler = (event: SQSEvent, context: unknown) => Promise<SQSBatchResponse>;
let url: string;
let loaded: { handler: SqsHandler; shutdown: () => Promise<void> };

const message = (overrides: Record<string, unknown>) =>
  JSON.stringify({
    version: 1,
    target: 'primary',
    database: 'dbopt_it_opt_lambda',
    queryId: '1',
    fingerprint: 'fp1',
    query: 'SELECT 1',
    calls: 120,
    totalExecTimeMs: 2400,
    meanExecTimeMs: 20,
    stddevExecTimeMs: 2,
    rows: 120,
    sharedBlksHit: 1000,
    sharedBlksRead: 10,
    tempBlksWritten: 0,
    intervalSeconds: 300,
    observedAt: '2026-11-27T10:00:00.000Z',
    findings: [],
    ...overrides,
  });

const event = (records: Array<{ id: string; body: string }>): SQSEvent => ({
  Records: records.map(({ id, body }) => ({
    messageId: id,
    receiptHandle: `rh-${id}`,
    body,
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: '0',
      SenderId: 'test',
      ApproximateFirstReceiveTimestamp: '0',
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:dbopt-slow-queries',
    awsRegion: 'us-east-1',
  })),
});

const EVENT = event([
  {
    id: 'm-index',
    body: message({
      queryId: '101',
      fingerprint: 'fp-index',
      query: 'SELECT id, status FROM orders WHERE customer_id = $1',
    }),
  },
  {
    id: 'm-rewrite',
    body: message({
      queryId: '102',
      fingerprint: 'fp-rewrite',
      query: 'SELECT id FROM orders WHERE created_at::date = $1',
    }),
  },
  { id: 'm-bad', body: JSON.stringify({ version: 1, target: 'primary', queryId: 7 }) },
]);

const suggestions = async (): Promise<Suggestion[]> => {
  const client = new pg.Client(url);
  await client.connect();
  try {
    return await createRepository(client).listSuggestions({ target: 'primary' });
  } finally {
    await client.end();
  }
};

beforeAll(async () => {
  url = await recreateDatabase('dbopt_it_opt_lambda');
  await runSql(url, SCHEMA);
  // The target's workload, as pg_stat_statements records it.
  for (let i = 1; i <= 20; i++) {
    await runSql(url, 'SELECT id, status FROM orders WHERE customer_id = $1', [i * 37]);
  }
  sns.reset();
  sns.on(PublishCommand).resolves({ MessageId: 'mid' });
  loaded = (await loadHandler('../../../functions/optimize/handler.ts', {
    DATABASE_URL: url,
    DB_SSL_MODE: 'disable',
    AWS_REGION: 'us-east-1',
    SUGGESTION_TOPIC_ARN: TOPIC,
    HYGIENE_MIN_INDEX_AGE_DAYS: '0',
  })) as unknown as typeof loaded;
});

afterAll(async () => {
  await loaded?.shutdown();
  sns.restore();
});

describe('optimize Lambda (SQS → advisor → repository → SNS)', () => {
  it('reports only the bad record as a batch item failure, stores suggestions and announces each new one', async () => {
    // Act
    const response = await loaded.handler(EVENT, lambdaContext(60_000));
    // Assess
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'm-bad' }] });
    const stored = await suggestions();
    const index = stored.find((s) => s.kind === 'create_index');
    expect(index?.ddl).toMatch(/^CREATE INDEX CONCURRENTLY .* ON public\.orders .*\(customer_id/);
    expect(index?.status).toBe('proposed');
    expect(stored.find((s) => s.kind === 'rewrite')?.payload).toMatchObject({
      rule: 'non_sargable_predicate',
      queryId: '102',
    });
    // orders_created_idx is unused too, but the suggested rewrite's plan reads it.
    expect(stored.filter((s) => s.kind === 'drop_index').map((s) => [s.ddl, s.status])).toEqual([
      ['DROP INDEX CONCURRENTLY "public"."orders_created_idx";', 'rejected'],
      ['DROP INDEX CONCURRENTLY "public"."orders_note_idx";', 'proposed'],
    ]);
    const published = sns.commandCalls(PublishCommand).map((c) => c.args[0].input);
    expect(published).toHaveLength(stored.length);
    expect(published.map((p) => p.MessageAttributes?.kind?.StringValue).sort()).toEqual(
      stored
        .map(
          (s) =>
            ({
              create_index: 'index_suggested',
              rewrite: 'rewrite_suggested',
              drop_index: 'index_unused',
            })[s.kind],
        )
        .sort(),
    );
    for (const p of published) {
      expect(p).toMatchObject({
        TopicArn: TOPIC,
        MessageAttributes: {
          target: { DataType: 'String', StringValue: 'primary' },
          severity: { DataType: 'String', StringValue: 'INFO' },
        },
      });
      expect(p.Subject?.length).toBeLessThanOrEqual(100);
    }
    expect(
      published.find((p) => p.MessageAttributes?.kind?.StringValue === 'index_suggested')?.Message,
    ).toContain(index?.ddl ?? '?');
  });

  it('announces nothing when the same messages come again (suggestions are deduplicated)', async () => {
    // Prepare
    const before = (await suggestions()).length;
    sns.resetHistory();
    // Act
    const response = await loaded.handler(EVENT, lambdaContext(60_000));
    // Assess
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: 'm-bad' }]);
    expect(await suggestions()).toHaveLength(before);
    expect(sns.commandCalls(PublishCommand)).toHaveLength(0);
  });

  it('announces a new suggestion in a later run when SNS refused it the first time', async () => {
    // Prepare: one new suggestion (a NOT IN rewrite over a nullable column, kept at any cost:
    // a correctness fix).
    const notIn = event([
      {
        id: 'm-not-in',
        body: message({
          queryId: '103',
          fingerprint: 'fp-not-in',
          query:
            "SELECT o.id FROM orders o WHERE o.note NOT IN (SELECT p.status FROM orders p WHERE p.status = 'x')",
        }),
      },
    ]);
    sns.reset();
    sns
      .on(PublishCommand)
      .rejects(Object.assign(new Error('not authorised'), { name: 'AuthorizationErrorException' }));
    const refused = await loaded.handler(notIn, lambdaContext(60_000));
    const refusedCalls = sns.commandCalls(PublishCommand).length;
    sns.reset();
    sns.on(PublishCommand).resolves({ MessageId: 'mid' });

    // Act
    const retried = await loaded.handler(notIn, lambdaContext(60_000));
    const retriedKinds = sns
      .commandCalls(PublishCommand)
      .map((c) => c.args[0].input.MessageAttributes?.kind?.StringValue);
    sns.resetHistory();
    await loaded.handler(notIn, lambdaContext(60_000));

    // Assess
    expect(refused.batchItemFailures).toEqual([]);
    expect(refusedCalls).toBe(1);
    expect(retried.batchItemFailures).toEqual([]);
    expect(retriedKinds).toEqual(['rewrite_suggested']);
    expect(sns.commandCalls(PublishCommand)).toHaveLength(0);
    const stored = (await suggestions()).find((s) => s.key === 'rewrite:fp-not-in:not_in_subquery');
    expect(stored?.status).toBe('proposed');
    expect(stored?.outcome?.announcePending).toBeUndefined();
  });
});
