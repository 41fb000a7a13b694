import { parseArgs } from 'node:util';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import pg from 'pg';
import { type Handler, lambdaContext, median, percentile, queryEvent } from './support.ts';

const { values: args } = parseArgs({
  options: {
    'database-url': { type: 'string' },
    rounds: { type: 'string', default: '5' },
    iterations: { type: 'string', default: '1500' },
    'scan-iterations': { type: 'string', default: '300' },
  },
});
const databaseUrl =
  args['database-url'] ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const rounds = Number(args.rounds);
const pkIterations = Number(args.iterations);
const scanIterations = Number(args['scan-iterations']);
const TABLE_ROWS = 100_000;

const PK_SQL = 'SELECT id, name, value, created_at FROM bench_query.items WHERE id = $1';
const SCAN_SQL =
  'SELECT id, name, value, created_at FROM bench_query.items WHERE id >= $1 ORDER BY id LIMIT 1000';

const setUp = async (): Promise<void> => {
  const admin = new pg.Client(databaseUrl);
  await admin.connect();
  const { rows } = await admin.query<{ n: string }>(
    "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'bench_query' AND tablename = 'items'",
  );
  if (rows[0]?.n === '0') {
    process.stderr.write(`creating bench_query.items (${TABLE_ROWS} rows)…\n`);
    await admin.query(`
      CREATE SCHEMA IF NOT EXISTS bench_query;
      CREATE TABLE bench_query.items (id int PRIMARY KEY, name text NOT NULL, value int NOT NULL, created_at timestamptz NOT NULL);
      INSERT INTO bench_query.items
        SELECT g, 'item-' || g, (g * 7919) % 1000, timestamptz '2026-01-01' + g * interval '1 minute'
        FROM generate_series(1, ${TABLE_ROWS}) g;
      ANALYZE bench_query.items;
    `);
  }
  await admin.end();
};

/** Times `n` calls one by one (µs each); the EMF lines the handler prints are discarded. */
const sample = async (n: number, call: (i: number) => Promise<void>): Promise<number[]> => {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await call(i);
    times.push((performance.now() - t0) * 1000);
  }
  return times.sort((a, b) => a - b);
};

const main = async (): Promise<void> => {
  await setUp();
  Object.assign(process.env, {
    DATABASE_URL: databaseUrl,
    DB_SSL_MODE: 'disable',
    QUERY_MAX_ROWS: '1000',
    QUERY_DEFAULT_MAX_ROWS: '1000',
    LOG_LEVEL: 'WARN',
    // The handler's path to the database, not the result cache (bench:cache measures that).
    CACHE_ENABLED: 'false',
  });
  const { handler, shutdown } = (await import('../functions/query/handler.ts')) as {
    handler: Handler;
    shutdown: () => Promise<void>;
  };
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  const { createDatabase, executeStatement } = await import('#shared/db');
  const db = createDatabase({
    connectionString: databaseUrl,
    port: 5432,
    database: '',
    user: '',
    sslMode: 'disable',
    poolMax: 1,
    connectTimeoutMs: 5_000,
    idleTimeoutMs: 60_000,
    queryTimeoutMs: 60_000,
  });
  const batch = (sql: string, params: unknown[]) =>
    executeStatement(db, { sql, params, readOnly: true, timeoutMs: 5_000, maxRows: 1_000 });

  const idOf = (i: number) => ((i * 7919) % TABLE_ROWS) + 1;
  const realWrite = process.stdout.write.bind(process.stdout);
  const quiet = () => {
    process.stdout.write = (() => true) as typeof process.stdout.write;
  };
  const loud = () => {
    process.stdout.write = realWrite;
  };

  const cases = [
    { name: 'pk', sql: PK_SQL, n: pkIterations, params: (i: number) => [idOf(i)] },
    {
      name: 'scan',
      sql: SCAN_SQL,
      n: scanIterations,
      params: (i: number) => [idOf(i) % (TABLE_ROWS - 1000)],
    },
  ];
  const results: Record<string, { handler: number[][]; pg: number[][]; batch: number[][] }> = {};
  for (const c of cases) results[c.name] = { handler: [], pg: [], batch: [] };

  // Warm-up: JIT, parse cache, connections.
  quiet();
  for (const c of cases) {
    await sample(200, async (i) => {
      const r = await handler(queryEvent(c.sql, c.params(i)), lambdaContext('dbopt-query-bench'));
      if (r.statusCode !== 200) {
        loud();
        throw new Error(`handler returned ${r.statusCode}: ${r.body}`);
      }
    });
    await sample(200, async (i) => void (await pool.query(c.sql, c.params(i))));
    await sample(200, async (i) => void (await batch(c.sql, c.params(i))));
  }
  loud();

  for (let round = 1; round <= rounds; round++) {
    for (const c of cases) {
      const events = Array.from({ length: c.n }, (_, i) => queryEvent(c.sql, c.params(i)));
      quiet();
      const h = await sample(
        c.n,
        async (i) =>
          void (await handler(
            events[i] as APIGatewayProxyEvent,
            lambdaContext('dbopt-query-bench'),
          )),
      );
      const p = await sample(c.n, async (i) => void (await pool.query(c.sql, c.params(i))));
      const b = await sample(c.n, async (i) => void (await batch(c.sql, c.params(i))));
      loud();
      results[c.name]?.handler.push(h);
      results[c.name]?.pg.push(p);
      results[c.name]?.batch.push(b);
      process.stderr.write(
        `round ${round}/${rounds} ${c.name}: handler p50 ${percentile(h, 50).toFixed(0)} µs, pg p50 ${percentile(p, 50).toFixed(0)} µs\n`,
      );
    }
  }

  const summary: Record<string, number | string> = { bench: 'query', rounds };
  console.log('\nstatement  side     p50 µs   p99 µs   (median over rounds)');
  for (const c of cases) {
    const r = results[c.name];
    if (!r) continue;
    const stat = (runs: number[][], p: number) => median(runs.map((run) => percentile(run, p)));
    const hp50 = stat(r.handler, 50);
    const hp99 = stat(r.handler, 99);
    const pp50 = stat(r.pg, 50);
    const pp99 = stat(r.pg, 99);
    const bp50 = stat(r.batch, 50);
    const bp99 = stat(r.batch, 99);
    console.log(
      `${c.name.padEnd(10)} handler ${hp50.toFixed(0).padStart(8)} ${hp99.toFixed(0).padStart(8)}`,
    );
    console.log(
      `${c.name.padEnd(10)} batch   ${bp50.toFixed(0).padStart(8)} ${bp99.toFixed(0).padStart(8)}`,
    );
    console.log(
      `${c.name.padEnd(10)} raw pg  ${pp50.toFixed(0).padStart(8)} ${pp99.toFixed(0).padStart(8)}`,
    );
    console.log(
      `${c.name.padEnd(10)} ratio   ${(hp50 / pp50).toFixed(2).padStart(8)} ${(hp99 / pp99).toFixed(2).padStart(8)}`,
    );
    Object.assign(summary, {
      [`${c.name}_handler_p50_us`]: Math.round(hp50),
      [`${c.name}_handler_p99_us`]: Math.round(hp99),
      [`${c.name}_batch_p50_us`]: Math.round(bp50),
      [`${c.name}_batch_ratio_p50`]: Number((bp50 / pp50).toFixed(3)),
      [`${c.name}_pg_p50_us`]: Math.round(pp50),
      [`${c.name}_pg_p99_us`]: Math.round(pp99),
      [`${c.name}_ratio_p50`]: Number((hp50 / pp50).toFixed(3)),
      [`${c.name}_ratio_p99`]: Number((hp99 / pp99).toFixed(3)),
    });
  }
  await pool.end();
  await db.end();
  await shutdown();
  console.log(JSON.stringify(summary));
};

await main();
