import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDatabase,
  type Database,
  executeStatement,
  withReadOnlyTransaction,
} from '#shared/db';
import {
  ConstraintViolationError,
  DatabaseUnavailableError,
  DataError,
  QueryTimeoutError,
  ReadOnlyViolationError,
  ResultTooLargeError,
  SqlSyntaxError,
} from '#shared/errors';
import { DEAD_DATABASE_URL, TEST_DATABASE_URL, testDatabaseOptions } from './support/env.ts';

const optionsFor = testDatabaseOptions;

const read = (
  sql: string,
  params: unknown[] = [],
  extra: { maxRows?: number; timeoutMs?: number } = {},
) => ({
  sql,
  params,
  readOnly: true,
  timeoutMs: extra.timeoutMs ?? 5_000,
  maxRows: extra.maxRows ?? 100,
});

describe('shared/db against PostgreSQL', () => {
  let db: Database;
  let admin: pg.Client;

  beforeAll(async () => {
    admin = new pg.Client(TEST_DATABASE_URL);
    await admin.connect();
    await admin.query(`
      DROP SCHEMA IF EXISTS db_it CASCADE;
      CREATE SCHEMA db_it;
      CREATE TABLE db_it.items (id int PRIMARY KEY, name text NOT NULL, at timestamptz, born date, blob bytea);
      INSERT INTO db_it.items SELECT g, 'item ' || g, '2026-01-02 03:04:05+00', '2000-02-29', '\\xdeadbeef'
        FROM generate_series(1, 50) g;
      CREATE FUNCTION db_it.sneaky_write() RETURNS int LANGUAGE sql AS
        $$ INSERT INTO db_it.items VALUES (1000, 'sneaky') RETURNING id $$;
    `);
    db = createDatabase(optionsFor(TEST_DATABASE_URL));
  });

  afterAll(async () => {
    await db.end();
    await admin.query('DROP SCHEMA IF EXISTS db_it CASCADE');
    await admin.end();
  });

  it('creates the pool lazily, on first use', async () => {
    // Prepare
    const lazy = createDatabase(optionsFor(DEAD_DATABASE_URL));
    // Act + Assess
    expect(lazy.started).toBe(false);
    await lazy.end();
    expect(lazy.started).toBe(false);
  });

  it('binds parameters and returns rows with JSON-safe values and field types', async () => {
    // Act
    const result = await executeStatement(
      db,
      read('SELECT id, name, at, born, blob, id::int8 AS big FROM db_it.items WHERE id = $1', [7]),
    );
    // Assess
    expect(result.command).toBe('SELECT');
    expect(result.rowCount).toBe(1);
    expect(result.rows).toEqual([
      {
        id: 7,
        name: 'item 7',
        at: '2026-01-02 03:04:05+00',
        born: '2000-02-29',
        blob: '\\xdeadbeef',
        big: '7',
      },
    ]);
    expect(result.fields.map((f) => f.dataTypeId)).toEqual([23, 25, 1184, 1082, 17, 20]);
  });

  it('treats a parameter that looks like SQL as a plain value', async () => {
    const result = await executeStatement(
      db,
      read('SELECT count(*)::int AS n FROM db_it.items WHERE name = $1', ["x' OR '1'='1"]),
    );
    expect(result.rows).toEqual([{ n: 0 }]);
  });

  it('returns exactly maxRows rows and refuses one more', async () => {
    // Act
    const exact = await executeStatement(
      db,
      read('SELECT id FROM db_it.items ORDER BY id LIMIT 10', [], { maxRows: 10 }),
    );
    const over = executeStatement(
      db,
      read('SELECT id FROM db_it.items ORDER BY id LIMIT 11', [], { maxRows: 10 }),
    );
    // Assess
    expect(exact.rowCount).toBe(10);
    await expect(over).rejects.toMatchObject({ code: 'ROW_LIMIT_EXCEEDED' });
    await expect(over).rejects.toBeInstanceOf(ResultTooLargeError);
  });

  it('cancels a statement past its time limit on the server (57014) and keeps the pool usable', async () => {
    // Act
    const slow = executeStatement(db, read('SELECT pg_sleep(2)', [], { timeoutMs: 200 }));
    // Assess
    await expect(slow).rejects.toBeInstanceOf(QueryTimeoutError);
    await expect(slow).rejects.toMatchObject({ details: { sqlState: '57014' } });
    const after = await executeStatement(db, read('SELECT 1 AS ok'));
    expect(after.rows).toEqual([{ ok: 1 }]);
  });

  it('gives up on the client side when the server does not answer, and destroys that connection', async () => {
    // Prepare: client deadline (timeoutMs + grace) = 300 ms, before the 2 s server limit.
    const own = createDatabase(optionsFor(TEST_DATABASE_URL));
    const pool = own.pool();
    // Act
    const stalled = executeStatement(
      own,
      read('SELECT pg_sleep(1.5)', [], { timeoutMs: 2_000 }),
      -1_700,
    );
    // Assess
    await expect(stalled).rejects.toBeInstanceOf(QueryTimeoutError);
    expect(pool.totalCount).toBe(0);
    const after = await executeStatement(own, read('SELECT 2 AS ok'));
    expect(after.rows).toEqual([{ ok: 2 }]);
    await own.end();
  });

  it('leaves no session state behind: no statement_timeout, no read-only flag on the connection', async () => {
    // Prepare
    await executeStatement(db, read('SELECT 1', [], { timeoutMs: 1_234 }));
    // Act: pool max is 1, so this is the same physical connection.
    const client = await db.pool().connect();
    const { rows } = await client.query<{ t: string; ro: string }>(
      "SELECT current_setting('statement_timeout') AS t, current_setting('transaction_read_only') AS ro",
    );
    client.release();
    // Assess
    expect(rows).toEqual([{ t: '0', ro: 'off' }]);
  });

  it('rejects a write hidden in a function inside a read-only statement (25006)', async () => {
    const sneaky = executeStatement(db, read('SELECT db_it.sneaky_write()'));
    await expect(sneaky).rejects.toBeInstanceOf(ReadOnlyViolationError);
    await expect(sneaky).rejects.toMatchObject({ details: { sqlState: '25006' } });
    const { rows } = await admin.query('SELECT 1 FROM db_it.items WHERE id = 1000');
    expect(rows).toHaveLength(0);
  });

  it('commits a write, and rolls back a write whose RETURNING rows exceed the cap', async () => {
    // Act
    const inserted = await executeStatement(db, {
      ...read("INSERT INTO db_it.items (id, name) VALUES ($1, 'new')", [500]),
      readOnly: false,
    });
    const tooMany = executeStatement(db, {
      ...read(
        "INSERT INTO db_it.items (id, name) SELECT g, 'bulk' FROM generate_series(600, 620) g RETURNING id",
      ),
      readOnly: false,
      maxRows: 5,
    });
    // Assess
    expect(inserted).toMatchObject({ command: 'INSERT', rowCount: 1 });
    await expect(tooMany).rejects.toMatchObject({ code: 'ROW_LIMIT_EXCEEDED' });
    const { rows } = await admin.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM db_it.items WHERE id >= 500',
    );
    expect(rows).toEqual([{ n: 1 }]);
  });

  it.each([
    [
      'syntax error (42601) with its position',
      'SELECT * FORM db_it.items',
      SqlSyntaxError,
      '42601',
      'SQL_SYNTAX_ERROR',
    ],
    [
      'undefined table (42P01)',
      'SELECT * FROM db_it.nope',
      SqlSyntaxError,
      '42P01',
      'SQL_UNDEFINED_OBJECT',
    ],
    [
      'undefined column (42703)',
      'SELECT nope FROM db_it.items',
      SqlSyntaxError,
      '42703',
      'SQL_UNDEFINED_OBJECT',
    ],
    ['bad value for a type (22P02)', "SELECT 'abc'::int", DataError, '22P02', 'INVALID_DATA'],
  ])(
    'maps %s to a typed error that keeps the SQLSTATE',
    async (_name, sql, type, sqlState, code) => {
      const failing = executeStatement(db, read(sql));
      await expect(failing).rejects.toBeInstanceOf(type);
      await expect(failing).rejects.toMatchObject({ code, details: { sqlState } });
    },
  );

  it('reports the position of a syntax error', async () => {
    await expect(executeStatement(db, read('SELECT * FORM db_it.items'))).rejects.toMatchObject({
      details: { position: 10 },
    });
  });

  it('maps a unique violation (23505) with its constraint and table', async () => {
    const dup = executeStatement(db, {
      ...read("INSERT INTO db_it.items (id, name) VALUES (1, 'dup')"),
      readOnly: false,
    });
    await expect(dup).rejects.toBeInstanceOf(ConstraintViolationError);
    await expect(dup).rejects.toMatchObject({
      details: { sqlState: '23505', constraint: 'items_pkey', table: 'items' },
    });
  });

  it('maps a refused connection to DatabaseUnavailableError', async () => {
    const dead = createDatabase(optionsFor(DEAD_DATABASE_URL));
    await expect(executeStatement(dead, read('SELECT 1'))).rejects.toBeInstanceOf(
      DatabaseUnavailableError,
    );
    await dead.end();
  });

  it('maps a connection the server terminates mid-statement to DatabaseUnavailableError', async () => {
    // Prepare
    const own = createDatabase(optionsFor(TEST_DATABASE_URL));
    const running = executeStatement(own, read('SELECT pg_sleep(5) /* terminate-me */'));
    // Attach the expectation now: the rejection may arrive while the termination is awaited.
    const assertion = expect(running).rejects.toBeInstanceOf(DatabaseUnavailableError);
    await new Promise((r) => setTimeout(r, 300));
    // Act
    await admin.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%terminate-me%' AND pid <> pg_backend_pid()",
    );
    // Assess
    await assertion;
    await own.end();
  });

  describe('withReadOnlyTransaction', () => {
    it('runs several statements in one read-only transaction and commits', async () => {
      const result = await withReadOnlyTransaction(db, { timeoutMs: 1_000 }, async (tx) => {
        const a = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM db_it.items');
        const b = await tx.query<{ t: string }>("SELECT current_setting('statement_timeout') AS t");
        return { n: a.rows[0]?.n, t: b.rows[0]?.t };
      });
      expect(result).toEqual({ n: 51, t: '1s' });
    });

    it('refuses writes and rolls back', async () => {
      const attempt = withReadOnlyTransaction(db, { timeoutMs: 1_000 }, (tx) =>
        tx.query("INSERT INTO db_it.items (id, name) VALUES (2000, 'no')"),
      );
      await expect(attempt).rejects.toBeInstanceOf(ReadOnlyViolationError);
      const ok = await executeStatement(db, read('SELECT 1 AS ok'));
      expect(ok.rows).toEqual([{ ok: 1 }]);
    });
  });
});
