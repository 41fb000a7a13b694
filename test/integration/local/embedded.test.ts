import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countDemoRows, loadDemo } from '../../../local/demo/seed.ts';
import { readWorkloadFile, runWorkload } from '../../../local/demo/workload.ts';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../../../local/embedded-postgres.ts';

// One embedded PostgreSQL (PGlite in a worker thread) for the whole file: starting it takes
// several seconds. The demo is loaded at scale 0.02 (400 customers, 2 000 orders).
const SCALE = 0.02;

let embedded: EmbeddedPostgres;
let client: pg.Client;

const connect = async (options: pg.ClientConfig = {}): Promise<pg.Client> => {
  const c = new pg.Client({ connectionString: embedded.url, ...options });
  await c.connect();
  return c;
};

beforeAll(async () => {
  embedded = await startEmbeddedPostgres({ port: 0 });
  client = await connect();
}, 120_000);

afterAll(async () => {
  await client?.end();
  await embedded?.stop();
});

describe('startEmbeddedPostgres', () => {
  it('serves PGlite to the pg driver on a free port', async () => {
    // Act
    const { rows } = await client.query<{ v: number; s: string }>(
      'SELECT $1::int * 2 AS v, $2::text AS s',
      [21, 'ok'],
    );

    // Assess
    expect(embedded.url).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
    expect(embedded.port).toBeGreaterThan(0);
    expect(embedded.serverVersion).toMatch(/^\d+\.\d+/);
    expect(rows).toEqual([{ v: 42, s: 'ok' }]);
  });

  it.each([
    ['SELECT * FROM no_such_table', '42P01'],
    ['SELEC 1', '42601'],
    ["SELECT 'abc'::int", '22P02'],
  ])('reports %s with SQLSTATE %s and stays usable', async (sql, sqlState) => {
    // Act
    const failure = client.query(sql);

    // Assess
    await expect(failure).rejects.toMatchObject({ code: sqlState });
    expect((await client.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
  });

  it('enforces BEGIN READ ONLY (25006) and runs a pipelined read-only transaction', async () => {
    // Prepare
    const pipelined = await connect({ pipeline: true } as pg.ClientConfig);

    // Act
    const [begin, select, commit] = await Promise.all([
      pipelined.query('BEGIN READ ONLY'),
      pipelined.query('SELECT $1::int AS v', [7]),
      pipelined.query('COMMIT'),
    ]);
    const write = Promise.all([
      pipelined.query('BEGIN READ ONLY'),
      pipelined.query('CREATE TABLE should_not_exist (id int)'),
      pipelined.query('COMMIT'),
    ]);

    // Assess
    expect([begin.command, select.rows, commit.command]).toEqual(['BEGIN', [{ v: 7 }], 'COMMIT']);
    await expect(write).rejects.toMatchObject({ code: '25006' });
    await pipelined.end();
  });

  it('records statements in pg_stat_statements', async () => {
    // Prepare
    const sql = 'SELECT count(*) FROM pg_class WHERE relpages >= $1';

    // Act
    for (const pages of [0, 1, 2]) await client.query(sql, [pages]);
    const { rows } = await client.query<{ calls: string }>(
      'SELECT calls FROM pg_stat_statements WHERE query = $1',
      [sql],
    );

    // Assess
    expect(Number(rows[0]?.calls)).toBeGreaterThanOrEqual(3);
  });

  it('keeps the main thread responsive during a long statement, so client timeouts fire on time', async () => {
    // Prepare
    const timed = await connect({ query_timeout: 200 });
    let ticks = 0;
    const interval = setInterval(() => ticks++, 20);
    const startedAt = Date.now();

    // Act
    const failure = timed.query('SELECT pg_sleep(1)');

    // Assess
    await expect(failure).rejects.toThrow('Query read timeout');
    expect(Date.now() - startedAt).toBeLessThan(800);
    clearInterval(interval);
    expect(ticks).toBeGreaterThanOrEqual(4);
    await timed.end();
    // pg_sleep keeps the single backend busy until it is done; later queries simply wait.
    expect((await client.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
  });

  it('fails fast with PORT_IN_USE when the port is taken', async () => {
    // Prepare
    const startedAt = Date.now();

    // Act
    const attempt = startEmbeddedPostgres({ port: embedded.port });

    // Assess
    await expect(attempt).rejects.toMatchObject({ code: 'PORT_IN_USE' });
    expect(Date.now() - startedAt).toBeLessThan(2_000);
  });
});

describe('loadDemo', () => {
  it('refuses to load over tables that are not from the demo, and writes nothing', async () => {
    // Prepare
    await client.query('CREATE TABLE customers (id int PRIMARY KEY)');

    // Act
    const attempt = loadDemo(embedded.url, { scale: SCALE });

    // Assess
    await expect(attempt).rejects.toMatchObject({ code: 'DEMO_CONFLICT' });
    const { rows } = await client.query(`SELECT to_regnamespace('dbopt_demo') AS schema`);
    expect(rows).toEqual([{ schema: null }]);
    await client.query('DROP TABLE customers');
  });

  it('loads the demo deterministically, then recognizes it', async () => {
    // Act
    const first = await loadDemo(embedded.url, { scale: SCALE });
    const second = await loadDemo(client, { scale: SCALE });

    // Assess
    expect(first.status).toBe('loaded');
    // Same numbers as on PostgreSQL 15: the generators use hashint8extended, not random().
    expect(first.counts).toEqual({
      customers: 400,
      products: 40,
      orders: 2_000,
      order_items: 4_767,
      events: 2_000,
    });
    expect(second.status).toBe('already-loaded');
    expect(second.counts).toEqual(first.counts);
    expect(await countDemoRows(client)).toEqual(first.counts);
    const { rows } = await client.query('SELECT email FROM customers WHERE id = 42');
    expect(rows).toEqual([{ email: 'umar.okafor42@mail.test' }]);
  });

  it('declares primary and foreign keys but no secondary indexes', async () => {
    // Act
    const { rows } = await client.query<{ indexname: string }>(
      `SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname`,
    );
    const fks = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace`,
    );

    // Assess
    expect(rows.map((r) => r.indexname)).toEqual([
      'customers_pkey',
      'events_pkey',
      'order_items_pkey',
      'orders_pkey',
      'products_pkey',
    ]);
    expect(fks.rows[0]?.n).toBe(4);
  });

  it('lets the application insert after the load (identities moved past the generated ids)', async () => {
    // Act
    const { rows } = await client.query<{ id: string }>(
      `INSERT INTO events (customer_id, kind) VALUES (1, 'login') RETURNING id`,
    );
    await client.query('DELETE FROM events WHERE id = $1', [rows[0]?.id]);

    // Assess
    expect(Number(rows[0]?.id)).toBe(2_001);
  });
});

describe('runWorkload', () => {
  it('replays every workload query without errors and feeds pg_stat_statements', async () => {
    // Prepare
    const workload = await readWorkloadFile();

    // Act
    const report = await runWorkload(client, workload, {
      rounds: 1,
      executionsPerRound: 40,
      resetStats: true,
    });
    const { rows } = await client.query<{ calls: string }>(
      `SELECT calls FROM pg_stat_statements WHERE query LIKE 'SELECT id, status, total_cents, created_at FROM orders WHERE customer_id = $1%'`,
    );

    // Assess
    expect(report.errors).toBe(0);
    expect(report.queries.map((q) => q.id).sort()).toEqual(
      workload.queries.map((q) => q.id).sort(),
    );
    expect(report.executions).toBeGreaterThanOrEqual(workload.queries.length);
    const ordersByCustomer = report.queries.find((q) => q.id === 'orders_by_customer');
    expect(Number(rows[0]?.calls)).toBe(ordersByCustomer?.calls);
  });
});
