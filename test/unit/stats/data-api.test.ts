import {
  BadRequestException,
  BeginTransactionCommand,
  CommitTransactionCommand,
  DatabaseUnavailableException,
  ExecuteStatementCommand,
  RDSDataClient,
  RollbackTransactionCommand,
  StatementTimeoutException,
} from '@aws-sdk/client-rds-data';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { createDataApiQueryable } from '#shared/db';
import { DatabaseUnavailableError, QueryTimeoutError, SqlSyntaxError } from '#shared/errors';
import {
  DataApiResponseTooLargeError,
  toNamedPlaceholders,
  toSqlParameter,
} from '../../../shared/db/data-api.ts';

const ARNS = {
  resourceArn: 'arn:aws:rds:eu-west-1:000000000000:cluster:app',
  secretArn: 'arn:aws:secretsmanager:eu-west-1:000000000000:secret:app-ro',
  database: 'app',
};

describe('RDS Data API Queryable', () => {
  const rdsMock = mockClient(RDSDataClient);
  const client = new RDSDataClient({ region: 'eu-west-1' });
  const q = createDataApiQueryable({ client, ...ARNS });
  beforeEach(() => rdsMock.reset());
  afterAll(() => rdsMock.restore());

  it('sends ExecuteStatement with JSON records and named parameters, and decodes the rows', async () => {
    // Prepare
    rdsMock.on(ExecuteStatementCommand).resolves({
      formattedRecords: JSON.stringify([{ relname: 'orders', n_live_tup: 42, last_vacuum: null }]),
    });
    // Act
    const { rows } = await q.query(
      'SELECT /* dbopt */ relname, n_live_tup, last_vacuum FROM pg_stat_user_tables WHERE relname = $1 AND n_live_tup > $2 AND schemaname = ANY ($3::text[])',
      ['orders', 10, ['public', 'a"b']],
    );
    // Assess
    expect(rows).toEqual([{ relname: 'orders', n_live_tup: 42, last_vacuum: null }]);
    expect(rdsMock.commandCalls(ExecuteStatementCommand)[0]?.args[0].input).toEqual({
      ...ARNS,
      sql: 'SELECT /* dbopt */ relname, n_live_tup, last_vacuum FROM pg_stat_user_tables WHERE relname = :p1 AND n_live_tup > :p2 AND schemaname = ANY (:p3::text[])',
      parameters: [
        { name: 'p1', value: { stringValue: 'orders' } },
        { name: 'p2', value: { longValue: 10 } },
        { name: 'p3', value: { stringValue: '{"public","a\\"b"}' } },
      ],
      formatRecordsAs: 'JSON',
    });
  });

  it('returns no rows for a statement without a result set', async () => {
    // Prepare
    rdsMock.on(ExecuteStatementCommand).resolves({ numberOfRecordsUpdated: 0 });
    // Act / Assess
    expect(await q.query('SET LOCAL statement_timeout = 100')).toEqual({ rows: [] });
  });

  it.each<[string, unknown, object]>([
    ['null', null, { name: 'p1', value: { isNull: true } }],
    ['a boolean', true, { name: 'p1', value: { booleanValue: true } }],
    ['a fraction', 1.5, { name: 'p1', value: { doubleValue: 1.5 } }],
    [
      'a date',
      new Date('2026-11-27T10:00:00.123Z'),
      { name: 'p1', value: { stringValue: '2026-11-27 10:00:00.123' }, typeHint: 'TIMESTAMP' },
    ],
    ['an object', { a: 1 }, { name: 'p1', value: { stringValue: '{"a":1}' }, typeHint: 'JSON' }],
  ])('binds %s as a typed SqlParameter', (_name, value, expected) => {
    // Act / Assess
    expect(toSqlParameter(value, 0)).toEqual(expected);
  });

  it.each<[string, string]>([
    ["SELECT '$1', $1", "SELECT '$1', :p1"],
    ['SELECT "$1" FROM t WHERE a = $12', 'SELECT "$1" FROM t WHERE a = :p12'],
    ['SELECT $1 -- $2\n, $3', 'SELECT :p1 -- $2\n, :p3'],
    ['SELECT /* $1 /* $2 */ */ $3', 'SELECT /* $1 /* $2 */ */ :p3'],
    ['SELECT $tag$ $1 $tag$, $$ $2 $$, $3', 'SELECT $tag$ $1 $tag$, $$ $2 $$, :p3'],
    ["SELECT E'\\' $1', $2", "SELECT E'\\' $1', :p2"],
    ['SELECT a$1 FROM t WHERE b = $1', 'SELECT a$1 FROM t WHERE b = :p1'],
  ])('rewrites placeholders only outside literals and comments: %s', (sql, expected) => {
    // Act / Assess
    expect(toNamedPlaceholders(sql)).toBe(expected);
  });

  it.each<[string, Error, new (...args: never[]) => Error, string | undefined]>([
    [
      'a SQL error with its SQLSTATE',
      new BadRequestException({
        $metadata: {},
        message: 'ERROR: relation "nope" does not exist\n  Position: 15; SQLState: 42P01',
      }),
      SqlSyntaxError,
      'SQL_UNDEFINED_OBJECT',
    ],
    [
      'a statement timeout',
      new StatementTimeoutException({ $metadata: {}, message: 'timed out' }),
      QueryTimeoutError,
      'QUERY_TIMEOUT',
    ],
    [
      'an unavailable cluster',
      new DatabaseUnavailableException({ $metadata: {}, message: 'resuming' }),
      DatabaseUnavailableError,
      'DATABASE_UNAVAILABLE',
    ],
    [
      'a response over 1 MiB',
      new BadRequestException({
        $metadata: {},
        message: 'Database returned more than the allowed response size limit',
      }),
      DataApiResponseTooLargeError,
      'DATA_API_RESPONSE_TOO_LARGE',
    ],
  ])('maps %s to the typed error pg errors map to', async (_name, err, type, code) => {
    // Prepare
    rdsMock.on(ExecuteStatementCommand).rejects(err);
    // Act
    const failure = await q.query('SELECT 1 FROM nope').catch((e: unknown) => e);
    // Assess
    expect(failure).toBeInstanceOf(type);
    expect((failure as { code?: string }).code).toBe(code);
    expect((failure as Error).cause).toBe(err);
  });

  it('runs read-only transactions: BEGIN, READ ONLY + SET LOCAL statement_timeout, work, COMMIT', async () => {
    // Prepare
    rdsMock.on(BeginTransactionCommand).resolves({ transactionId: 'tx-1' });
    rdsMock.on(ExecuteStatementCommand).resolves({ formattedRecords: '[{"n":1}]' });
    rdsMock.on(CommitTransactionCommand).resolves({ transactionStatus: 'Transaction Committed' });
    // Act
    const rows = await q.withReadOnlyTransaction(
      1_500,
      async (tx) => (await tx.query('SELECT 1 AS n')).rows,
    );
    // Assess
    expect(rows).toEqual([{ n: 1 }]);
    expect(rdsMock.commandCalls(BeginTransactionCommand)[0]?.args[0].input).toEqual(ARNS);
    expect(
      rdsMock
        .commandCalls(ExecuteStatementCommand)
        .map((c) => [c.args[0].input.sql, c.args[0].input.transactionId]),
    ).toEqual([
      ['SET /* dbopt */ TRANSACTION READ ONLY', 'tx-1'],
      ['SET /* dbopt */ LOCAL statement_timeout = 1500', 'tx-1'],
      ['SELECT 1 AS n', 'tx-1'],
    ]);
    expect(rdsMock.commandCalls(CommitTransactionCommand)[0]?.args[0].input).toEqual({
      resourceArn: ARNS.resourceArn,
      secretArn: ARNS.secretArn,
      transactionId: 'tx-1',
    });
  });

  it('rolls the transaction back and rethrows the typed error when the work fails', async () => {
    // Prepare
    rdsMock.on(BeginTransactionCommand).resolves({ transactionId: 'tx-2' });
    rdsMock
      .on(ExecuteStatementCommand)
      .resolvesOnce({})
      .resolvesOnce({})
      .rejects(new StatementTimeoutException({ $metadata: {}, message: 'timed out' }));
    rdsMock.on(RollbackTransactionCommand).resolves({});
    // Act
    const failure = await q
      .withReadOnlyTransaction(100, (tx) => tx.query('SELECT pg_sleep(1)'))
      .catch((e: unknown) => e);
    // Assess
    expect(failure).toBeInstanceOf(QueryTimeoutError);
    expect(rdsMock.commandCalls(RollbackTransactionCommand)).toHaveLength(1);
    expect(rdsMock.commandCalls(CommitTransactionCommand)).toHaveLength(0);
  });
});
