import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEAD_DATABASE_URL, TEST_DATABASE_URL } from './support/env.ts';
import { invoke, type LoadedHandler, loadHandler } from './support/lambda.ts';

const HANDLER = new URL('../../functions/query/handler.ts', import.meta.url).href;
const baseEnv = { DATABASE_URL: TEST_DATABASE_URL, DB_SSL_MODE: 'disable' };

const expectError = (
  response: { status: number; body: Record<string, unknown>; raw: string },
  status: number,
  code: string,
  messagePart?: string,
) => {
  expect(response.status).toBe(status);
  const error = response.body.error as { code: string; message: string };
  expect(error.code).toBe(code);
  if (messagePart) expect(error.message).toContain(messagePart);
  // Never a stack trace or a source path to the caller.
  expect(response.raw).not.toMatch(/\s+at\s+\S+\s+\(|\.ts:\d+|node_modules/);
};

describe('query API handler (read-only) against PostgreSQL', () => {
  let api: LoadedHandler;
  let admin: pg.Client;

  beforeAll(async () => {
    admin = new pg.Client(TEST_DATABASE_URL);
    await admin.connect();
    await admin.query(`
      DROP SCHEMA IF EXISTS api_it CASCADE;
      CREATE SCHEMA api_it;
      CREATE TABLE api_it.accounts (id int PRIMARY KEY, email text NOT NULL, balance numeric(12,2), tags text[], meta jsonb);
      INSERT INTO api_it.accounts
        SELECT g, 'user' || g || '@example.com', g * 10.5, ARRAY['a', 'b'], jsonb_build_object('n', g)
        FROM generate_series(1, 2000) g;
    `);
    api = await loadHandler(HANDLER, {
      ...baseEnv,
      QUERY_DEFAULT_MAX_ROWS: '500',
      QUERY_MAX_RESPONSE_BYTES: '100000',
    });
  });

  afterAll(async () => {
    await api.shutdown();
    await admin.query('DROP SCHEMA IF EXISTS api_it CASCADE');
    await admin.end();
  });

  it('runs a parameterized SELECT and returns rows, rowCount, fields and durationMs', async () => {
    // Act
    const response = await invoke(api.handler, {
      sql: 'SELECT id, email, balance, tags, meta FROM api_it.accounts WHERE id = $1',
      params: [42],
    });
    // Assess
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({
      rows: [
        {
          id: 42,
          email: 'user42@example.com',
          balance: '441.00',
          tags: ['a', 'b'],
          meta: { n: 42 },
        },
      ],
      rowCount: 1,
      fields: [
        { name: 'id', dataType: 'int4' },
        { name: 'email', dataType: 'text' },
        { name: 'balance', dataType: 'numeric' },
        { name: 'tags', dataType: '_text' },
        { name: 'meta', dataType: 'jsonb' },
      ],
    });
    expect(response.body.durationMs).toEqual(expect.any(Number));
  });

  it('accepts maxRows and timeoutMs within the limits', async () => {
    const response = await invoke(api.handler, {
      sql: 'SELECT id FROM api_it.accounts ORDER BY id LIMIT 3',
      maxRows: 3,
      timeoutMs: 1000,
    });
    expect(response.status).toBe(200);
    expect(response.body.rows).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }]);
  });

  it('rejects invalid JSON', async () => {
    expectError(
      await invoke(api.handler, '{"sql": "SELECT 1"', { raw: true }),
      400,
      'INVALID_JSON',
    );
  });

  it('rejects an empty body', async () => {
    expectError(await invoke(api.handler, null, { raw: true }), 400, 'INVALID_JSON', 'empty');
  });

  it.each([
    ['missing sql', {}, 'sql: is required'],
    ['empty sql', { sql: '   ' }, 'sql: must not be empty'],
    ['sql not a string', { sql: 42 }, 'sql: must be a string'],
    ['params not an array', { sql: 'SELECT $1', params: 'x' }, 'params: must be an array'],
    [
      'timeoutMs not a number',
      { sql: 'SELECT 1', timeoutMs: '100' },
      'timeoutMs: must be a number',
    ],
    [
      'timeoutMs over the limit',
      { sql: 'SELECT 1', timeoutMs: 999_999 },
      'timeoutMs: must be at most',
    ],
    ['maxRows not an integer', { sql: 'SELECT 1', maxRows: 1.5 }, 'maxRows: must be an integer'],
    ['unknown field', { sql: 'SELECT 1', sqll: 'x' }, 'unknown field(s): sqll'],
    ['an array body', [1, 2], 'must be a JSON object'],
  ])('rejects %s with a message naming the field', async (_name, body, message) => {
    expectError(await invoke(api.handler, body), 400, 'INVALID_REQUEST', message);
  });

  it('rejects several statements', async () => {
    expectError(
      await invoke(api.handler, { sql: 'SELECT 1; DELETE FROM api_it.accounts' }),
      400,
      'MULTIPLE_STATEMENTS',
    );
    const { rows } = await admin.query('SELECT count(*)::int AS n FROM api_it.accounts');
    expect(rows).toEqual([{ n: 2000 }]);
  });

  it.each([
    ['UPDATE', 'UPDATE api_it.accounts SET balance = 0'],
    ['DELETE', 'DELETE FROM api_it.accounts'],
    [
      'a writable CTE',
      'WITH d AS (DELETE FROM api_it.accounts RETURNING id) SELECT count(*) FROM d',
    ],
    ['SELECT FOR UPDATE', 'SELECT id FROM api_it.accounts WHERE id = 1 FOR UPDATE'],
  ])('rejects a write (%s) in read-only mode with 403', async (_name, sql) => {
    expectError(await invoke(api.handler, { sql }), 403, 'WRITE_NOT_ALLOWED', 'QUERY_ALLOW_WRITES');
  });

  it.each([
    ['DDL', 'DROP TABLE api_it.accounts'],
    ['a session SET', 'SET statement_timeout = 0'],
    ['transaction control', 'BEGIN'],
    ['COPY', 'COPY api_it.accounts TO STDOUT'],
  ])('refuses %s', async (_name, sql) => {
    expectError(await invoke(api.handler, { sql }), 403, 'STATEMENT_NOT_ALLOWED');
  });

  it.each([
    ["SELECT set_config('search_path', 'evil, public', false)"],
    ['SELECT pg_advisory_lock(4242)'],
    ['SELECT pg_catalog.pg_terminate_backend(1)'],
  ])('refuses session-altering or out-of-statement functions: %s', async (sql) => {
    expectError(await invoke(api.handler, { sql }), 403, 'FUNCTION_NOT_ALLOWED');
  });

  it('rejects a parameter count mismatch', async () => {
    expectError(
      await invoke(api.handler, {
        sql: 'SELECT * FROM api_it.accounts WHERE id = $1 AND email = $2',
        params: [1],
      }),
      400,
      'PARAM_COUNT_MISMATCH',
      'uses 2 parameter(s)',
    );
  });

  it('reports a syntax error with its position', async () => {
    const response = await invoke(api.handler, { sql: 'SELECT * FORM api_it.accounts' });
    expectError(response, 400, 'SQL_SYNTAX_ERROR', 'syntax error at or near "FORM"');
    expect((response.body.error as { position: number }).position).toBe(10);
  });

  it('reports an unknown table as a 400', async () => {
    expectError(
      await invoke(api.handler, { sql: 'SELECT * FROM api_it.nope' }),
      400,
      'SQL_UNDEFINED_OBJECT',
      'nope',
    );
  });

  it('refuses a result over the row cap', async () => {
    expectError(
      await invoke(api.handler, { sql: 'SELECT id FROM api_it.accounts', maxRows: 100 }),
      422,
      'ROW_LIMIT_EXCEEDED',
      'maxRows (100)',
    );
  });

  it('applies the default row cap when the request has none', async () => {
    expectError(
      await invoke(api.handler, { sql: 'SELECT id FROM api_it.accounts' }),
      422,
      'ROW_LIMIT_EXCEEDED',
      '500',
    );
  });

  it('refuses a response over the byte cap', async () => {
    expectError(
      await invoke(api.handler, { sql: "SELECT repeat('x', 200000) AS big" }),
      422,
      'RESPONSE_TOO_LARGE',
      '100000 bytes',
    );
  });

  it('returns 504 when the statement runs past timeoutMs', async () => {
    const started = Date.now();
    expectError(
      await invoke(api.handler, { sql: 'SELECT pg_sleep(3)', timeoutMs: 300 }),
      504,
      'QUERY_TIMEOUT',
    );
    expect(Date.now() - started).toBeLessThan(2_500);
  });

  it('never lets a statement outlive the Lambda invocation', async () => {
    // Prepare: 2.5 s left in the invocation, 20 s asked for.
    const started = Date.now();
    // Act
    const response = await invoke(
      api.handler,
      { sql: 'SELECT pg_sleep(5)', timeoutMs: 20_000 },
      { remainingMs: 2_500 },
    );
    // Assess
    expectError(response, 504, 'QUERY_TIMEOUT');
    expect(Date.now() - started).toBeLessThan(2_500);
  });

  it('returns 405 for a method other than POST', async () => {
    expectError(
      await invoke(api.handler, { sql: 'SELECT 1' }, { method: 'GET' }),
      405,
      'METHOD_NOT_ALLOWED',
    );
  });
});

describe('query API handler when writes are allowed', () => {
  let api: LoadedHandler;
  let admin: pg.Client;

  beforeAll(async () => {
    admin = new pg.Client(TEST_DATABASE_URL);
    await admin.connect();
    await admin.query(`
      DROP SCHEMA IF EXISTS api_write_it CASCADE;
      CREATE SCHEMA api_write_it;
      CREATE TABLE api_write_it.notes (id int PRIMARY KEY, body text NOT NULL);
    `);
    api = await loadHandler(HANDLER, { ...baseEnv, QUERY_ALLOW_WRITES: 'true' });
  });

  afterAll(async () => {
    await api.shutdown();
    await admin.query('DROP SCHEMA IF EXISTS api_write_it CASCADE');
    await admin.end();
  });

  it('commits an INSERT … RETURNING and reports the rows', async () => {
    // Act
    const response = await invoke(api.handler, {
      sql: 'INSERT INTO api_write_it.notes (id, body) VALUES ($1, $2) RETURNING id',
      params: [1, 'hello'],
    });
    // Assess
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ rows: [{ id: 1 }], rowCount: 1 });
    const { rows } = await admin.query('SELECT body FROM api_write_it.notes WHERE id = 1');
    expect(rows).toEqual([{ body: 'hello' }]);
  });

  it('maps a unique violation to 409', async () => {
    expectError(
      await invoke(api.handler, { sql: "INSERT INTO api_write_it.notes VALUES (1, 'again')" }),
      409,
      'CONSTRAINT_VIOLATION',
    );
  });

  it('rolls back a write whose RETURNING result is over the byte cap, and says so', async () => {
    // Prepare: an instance whose responses may be at most 1,000 bytes.
    const small = await loadHandler(HANDLER, {
      ...baseEnv,
      QUERY_ALLOW_WRITES: 'true',
      QUERY_MAX_RESPONSE_BYTES: '1000',
    });
    // Act
    const response = await invoke(small.handler, {
      sql: "INSERT INTO api_write_it.notes (id, body) VALUES (77, repeat('x', 2000)) RETURNING body",
    });
    await small.shutdown();
    // Assess
    expectError(response, 422, 'RESPONSE_TOO_LARGE');
    const { rows } = await admin.query('SELECT 1 FROM api_write_it.notes WHERE id = 77');
    expect(rows).toEqual([]);
  });

  it('still refuses DDL', async () => {
    expectError(
      await invoke(api.handler, { sql: 'DROP TABLE api_write_it.notes' }),
      403,
      'STATEMENT_NOT_ALLOWED',
    );
  });
});

describe('query API handler when the database is down', () => {
  let api: LoadedHandler;

  beforeAll(async () => {
    api = await loadHandler(HANDLER, { ...baseEnv, DATABASE_URL: DEAD_DATABASE_URL });
  });

  afterAll(() => api.shutdown());

  it('returns 503 with a request id and no stack trace', async () => {
    const response = await invoke(api.handler, { sql: 'SELECT 1' });
    expectError(response, 503, 'DATABASE_UNAVAILABLE');
    expect((response.body.error as { requestId: string }).requestId).toEqual(expect.any(String));
  });

  it('still answers bad input with a 4xx without touching the database', async () => {
    expectError(
      await invoke(api.handler, { sql: 'SELECT 1; SELECT 2' }),
      400,
      'MULTIPLE_STATEMENTS',
    );
  });
});
