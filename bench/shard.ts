/**
 * Shard benchmark (issue 6, item 7): dbopt's slot router (`shared/sharding`: murmur3 → 16384
 * slots → directory) against a faithful reimplementation of the seed's consistent-hash ring
 * (bench/seed-ring.ts), then the latency of a 4-shard scatter-gather against the same query on
 * one database, in one run.
 *
 *   npm run bench:shard                       # scatter part on DATABASE_URL or 127.0.0.1:5432/test
 *   npm run bench:shard -- --rounds 7 --lookups 5000000 --seed-ms 500
 *   npm run bench:shard -- --scatter-iterations 500 --scatter-rows 1000000
 *   npm run bench:shard -- --skip-scatter     # router part only, no database
 *
 * Measures, at 8, 16 and 64 shards:
 * - lookups/s: `route()` over 1M pre-built sequential keys; the seed's `resolve()` sorts its
 *   ring on every call, so it runs for `--seed-ms` per round instead of a fixed count and is
 *   reported per second. Rounds interleave both sides so machine noise hits both; the
 *   reported rate is the median over rounds.
 * - max/mean load over 1M keys (`user:0..user:999999`, and 1M random keys).
 * - keys moved when one shard is added (n → n+1), divided by the ideal 1/(n+1), and the
 *   share of moved keys that went to the new shard.
 *
 * Scatter-gather: `bench_shard_s0..s3` each hold the rows of table `t` with `id % 4 = i` and
 * `bench_shard_all` holds all of them (created on DATABASE_URL's server when missing, reloaded
 * when the row count differs). Each query runs, interleaved round by round, three ways:
 * - `scatter`: `scatterGather` over the 4 shard databases (pool of 1 per shard, as in Lambda;
 *   planned per call, as the query handler does; each shard in a read-only transaction);
 * - `single`: raw `pg` `pool.query` on `bench_shard_all`;
 * - `single exec`: shared/db's `executeStatement` on `bench_shard_all` (the same read-only
 *   one-round-trip batch each shard runs), which separates fan-out + merge cost from the
 *   transaction wrapper's.
 * The merged result is checked against the single database's before timing. p50/p99 are over
 * every sample; `scatter_ratio_p50_*` is scatter p50 / raw single p50.
 *
 * Targets (issue 6): ≥ 5M lookups/s at 64 shards, max/mean ≤ 1.03, moved ≤ 1.05× ideal.
 * The last line is one JSON object.
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createDatabase, type Database, executeStatement } from '#shared/db';
import { type ScatterShard, scatterGather } from '#shared/scatter';
import { createShardRouter, planRebalance, type ShardRouter } from '#shared/sharding';
import { initSqlParser } from '#shared/sql';
import { createSeedRing, createSortedSeedResolver, type SeedRing } from './seed-ring.ts';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    keys: { type: 'string', default: '1000000' },
    lookups: { type: 'string', default: '3000000' },
    'seed-ms': { type: 'string', default: '400' },
    'database-url': { type: 'string' },
    'scatter-iterations': { type: 'string', default: '300' },
    'scatter-rows': { type: 'string', default: '200000' },
    'skip-scatter': { type: 'boolean', default: false },
  },
});
const rounds = Number(args.rounds);
const keyCount = Number(args.keys);
const lookupCount = Number(args.lookups);
const seedBudgetMs = Number(args['seed-ms']);
const SHARD_COUNTS = [8, 16, 64] as const;
const databaseUrl =
  args['database-url'] ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const scatterIterations = Number(args['scatter-iterations']);
const scatterRows = Number(args['scatter-rows']);

const median = (xs: readonly number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};
const shardNames = (count: number): string[] =>
  Array.from({ length: count }, (_, i) => `shard-${i}`);

/** Reproducible random keys (mulberry32). */
const randomKeys = (count: number, seed: number): string[] => {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  return Array.from({ length: count }, () => `${next().toString(36)}${next().toString(36)}`);
};

/** Busiest shard's load over the mean load. */
const maxOverMean = (keys: readonly string[], shardOf: (key: string) => string, shards: number) => {
  const load = new Map<string, number>();
  for (const key of keys) {
    const shard = shardOf(key);
    load.set(shard, (load.get(shard) ?? 0) + 1);
  }
  return Math.max(...load.values()) / (keys.length / shards);
};

/** Fraction of keys whose shard changes, and the share of those that moved to `added` (null if none moved). */
const movement = (
  keys: readonly string[],
  before: (key: string) => string,
  after: (key: string) => string,
  added: string,
) => {
  let moved = 0;
  let toAdded = 0;
  for (const key of keys) {
    const to = after(key);
    if (to !== before(key)) {
      moved++;
      if (to === added) toAdded++;
    }
  }
  return { movedFraction: moved / keys.length, toAddedShare: moved === 0 ? null : toAdded / moved };
};

let sink = 0; // consumed at the end so the JIT cannot drop the timed loops

const timeRouter = (router: ShardRouter, keys: readonly string[], n: number): number => {
  const keyCount = keys.length;
  let acc = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) acc += router.route(keys[i % keyCount] as string).slot;
  const elapsedMs = performance.now() - t0;
  sink += acc;
  return (n / elapsedMs) * 1000;
};

const timeRouterNumeric = (router: ShardRouter, n: number): number => {
  let acc = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) acc += router.route(i).slot;
  const elapsedMs = performance.now() - t0;
  sink += acc;
  return (n / elapsedMs) * 1000;
};

const timeSeed = (ring: SeedRing, keys: readonly string[], budgetMs: number): number => {
  let n = 0;
  let acc = 0;
  const t0 = performance.now();
  let elapsedMs = 0;
  // At least 20 lookups so a very slow ring still gives a rate.
  while (n < 20 || elapsedMs < budgetMs) {
    acc += ring.resolve(keys[(n * 7919) % keys.length] as string).length;
    n++;
    elapsedMs = performance.now() - t0;
  }
  sink += acc;
  return (n / elapsedMs) * 1000;
};

// ─── Scatter-gather latency ─────────────────────────────────────────────────────────────────

const SCATTER_SHARDS = 4;
const SCATTER_QUERIES = [
  { id: 'agg', sql: 'SELECT count(*), sum(v) FROM t' },
  { id: 'topk', sql: 'SELECT id, v FROM t ORDER BY v DESC, id LIMIT 10' },
] as const;
type ScatterQueryId = (typeof SCATTER_QUERIES)[number]['id'];
const SCATTER_SIDES = ['scatter', 'single', 'single_exec'] as const;
type ScatterSide = (typeof SCATTER_SIDES)[number];

const percentile = (sorted: readonly number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;

const formatThousands = (n: number): string => Math.round(n).toLocaleString('en-US');

/** The URL with its password hidden, for messages. */
const redacted = (url: string): string => {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
};

const databaseUrlFor = (database: string): string => {
  const url = new URL(databaseUrl);
  url.pathname = `/${database}`;
  return url.toString();
};

const withPgClient = async <T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> => {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
};

/** Creates the five databases and fills `t` where it is missing or has another row count. */
const setUpScatterDatabases = async (): Promise<void> => {
  const targets = [
    ...Array.from({ length: SCATTER_SHARDS }, (_, i) => ({
      database: `bench_shard_s${i}`,
      where: `WHERE g % ${SCATTER_SHARDS} = ${i}`,
      rows: Math.ceil((scatterRows - i) / SCATTER_SHARDS),
    })),
    { database: 'bench_shard_all', where: '', rows: scatterRows },
  ];
  await withPgClient(databaseUrl, async (admin) => {
    for (const { database } of targets) {
      const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
      if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${database}`);
    }
  });
  for (const target of targets) {
    await withPgClient(databaseUrlFor(target.database), async (client) => {
      const { rows: found } = await client.query("SELECT to_regclass('public.t') AS t");
      const count =
        found[0]?.t === null
          ? undefined
          : (await client.query<{ n: string }>('SELECT count(*) AS n FROM t')).rows[0]?.n;
      if (count === String(target.rows)) return;
      process.stderr.write(`filling ${target.database}.t (${target.rows} rows)…\n`);
      await client.query(`
        DROP TABLE IF EXISTS t;
        CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
        INSERT INTO t SELECT g, (g::bigint * 7919 % 1000003)::int
          FROM generate_series(0, ${scatterRows - 1}) g ${target.where};
      `);
      await client.query('VACUUM ANALYZE t');
    });
  }
};

const shardDatabase = (url: string): Database =>
  createDatabase({
    connectionString: url,
    port: 5432,
    database: 'unused',
    user: 'postgres',
    sslMode: 'disable',
    poolMax: 1,
    connectTimeoutMs: 5_000,
    idleTimeoutMs: 60_000,
    queryTimeoutMs: 30_000,
  });

/** Values as text, so pg's raw rows and the API's decoded rows compare alike. */
const rowsAsText = (rows: readonly Record<string, unknown>[]): string =>
  JSON.stringify(rows.map((row) => Object.values(row).map(String)));

const scatterPart = async (): Promise<Record<string, number | string | null>> => {
  const nulls = Object.fromEntries(
    SCATTER_QUERIES.flatMap(({ id }) => [
      [`scatter_p50_us_${id}`, null],
      [`single_db_p50_us_${id}`, null],
      [`scatter_ratio_p50_${id}`, null],
    ]),
  );
  if (args['skip-scatter']) return { ...nulls, scatter_skipped: 'skip-scatter' };

  const shards: ScatterShard[] = Array.from({ length: SCATTER_SHARDS }, (_, i) => ({
    name: `s${i}`,
    db: shardDatabase(databaseUrlFor(`bench_shard_s${i}`)),
  }));
  const single = new pg.Pool({ connectionString: databaseUrlFor('bench_shard_all'), max: 1 });
  const singleDb = shardDatabase(databaseUrlFor('bench_shard_all'));
  try {
    await initSqlParser();
    await setUpScatterDatabases();
    const runs: Record<ScatterSide, (sql: string) => Promise<Record<string, unknown>[]>> = {
      scatter: async (sql) =>
        (
          await scatterGather({
            shards,
            sql,
            params: [],
            deadlineMs: 10_000,
            maxRows: 1_000,
            failurePolicy: 'fail',
          })
        ).rows,
      single: async (sql) => (await single.query(sql)).rows,
      single_exec: async (sql) =>
        (
          await executeStatement(singleDb, {
            sql,
            params: [],
            readOnly: true,
            timeoutMs: 10_000,
            maxRows: 1_000,
          })
        ).rows,
    };

    // Same answers first (this also warms every connection and the parser), then warm-up.
    for (const query of SCATTER_QUERIES) {
      const expected = rowsAsText(await runs.single(query.sql));
      for (const side of ['scatter', 'single_exec'] as const) {
        const got = rowsAsText(await runs[side](query.sql));
        if (got !== expected) {
          throw new Error(
            `${side} disagrees with one database on ${query.sql}: ${got} ≠ ${expected}`,
          );
        }
      }
      for (let i = 0; i < 10; i++) for (const side of SCATTER_SIDES) await runs[side](query.sql);
    }

    const samples = new Map<string, number[]>();
    const perRound = Math.max(1, Math.ceil(scatterIterations / rounds));
    const t0 = performance.now();
    for (let round = 1; round <= rounds; round++) {
      for (const query of SCATTER_QUERIES) {
        for (let i = 0; i < perRound; i++) {
          // Rotate which side goes first so none always follows another's load.
          for (let k = 0; k < SCATTER_SIDES.length; k++) {
            const side = SCATTER_SIDES[(i + k) % SCATTER_SIDES.length] as ScatterSide;
            const start = performance.now();
            await runs[side](query.sql);
            const us = (performance.now() - start) * 1000;
            const key = `${query.id}/${side}`;
            const list = samples.get(key) ?? [];
            list.push(us);
            samples.set(key, list);
          }
        }
      }
      process.stderr.write(
        `scatter round ${round}/${rounds}: ${perRound} × ${SCATTER_QUERIES.length} queries × ${SCATTER_SIDES.length} sides, ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
      );
    }

    const stats = (id: ScatterQueryId, side: ScatterSide) => {
      const sorted = [...(samples.get(`${id}/${side}`) ?? [])].sort((a, b) => a - b);
      return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), n: sorted.length };
    };
    const result: Record<string, number | string | null> = {
      scatter_shards: SCATTER_SHARDS,
      scatter_rows: scatterRows,
      scatter_samples: perRound * rounds,
    };
    console.log(
      `\nscatter-gather: ${SCATTER_SHARDS} shard databases × ~${formatThousands(scatterRows / SCATTER_SHARDS)} rows vs one database with ${formatThousands(scatterRows)} rows, ${perRound * rounds} samples per side`,
    );
    console.log('query  side                             p50 µs     p99 µs   p50 vs single');
    const labels: Record<ScatterSide, string> = {
      scatter: `scatterGather (${SCATTER_SHARDS} shards)`,
      single: 'one database, raw pg',
      single_exec: 'one database, executeStatement',
    };
    for (const { id, sql } of SCATTER_QUERIES) {
      const base = stats(id, 'single');
      for (const side of SCATTER_SIDES) {
        const s = stats(id, side);
        console.log(
          `${id.padEnd(6)} ${labels[side].padEnd(31)} ${s.p50.toFixed(0).padStart(9)} ${s.p99.toFixed(0).padStart(10)} ${`${(s.p50 / base.p50).toFixed(2)}×`.padStart(15)}`,
        );
      }
      const scatter = stats(id, 'scatter');
      const exec = stats(id, 'single_exec');
      Object.assign(result, {
        [`scatter_sql_${id}`]: sql,
        [`scatter_p50_us_${id}`]: Math.round(scatter.p50),
        [`scatter_p99_us_${id}`]: Math.round(scatter.p99),
        [`single_db_p50_us_${id}`]: Math.round(base.p50),
        [`single_db_p99_us_${id}`]: Math.round(base.p99),
        [`single_db_exec_p50_us_${id}`]: Math.round(exec.p50),
        [`scatter_ratio_p50_${id}`]: Number((scatter.p50 / base.p50).toFixed(3)),
      });
    }
    return result;
  } catch (err) {
    process.stderr.write(
      `scatter part failed (${redacted(databaseUrl)}): ${(err as Error).message}\n  (--database-url, DATABASE_URL, or --skip-scatter)\n`,
    );
    process.exitCode = 1;
    return { ...nulls, scatter_skipped: `error: ${(err as Error).message}` };
  } finally {
    await Promise.all([single.end(), singleDb.end(), ...shards.map((shard) => shard.db.end())]);
  }
};

const main = async (): Promise<void> => {
  const started = performance.now();
  const sequential = Array.from({ length: keyCount }, (_, i) => `user:${i}`);
  const random = randomKeys(keyCount, 0x5eed);
  const routers = new Map(
    SHARD_COUNTS.map((n) => [
      n,
      createShardRouter({ version: 1, shards: shardNames(n).map((name) => ({ name })) }),
    ]),
  );
  const rings = new Map(SHARD_COUNTS.map((n) => [n, createSeedRing(shardNames(n))]));

  // Warm-up: JIT for both sides.
  for (const n of SHARD_COUNTS) {
    timeRouter(routers.get(n) as ShardRouter, sequential, 1_000_000);
    timeRouterNumeric(routers.get(n) as ShardRouter, 200_000);
    timeSeed(rings.get(n) as SeedRing, sequential, 50);
  }

  const rates = {
    router: new Map<number, number[]>(SHARD_COUNTS.map((n) => [n, []])),
    numeric: [] as number[],
    seed: new Map<number, number[]>(SHARD_COUNTS.map((n) => [n, []])),
  };
  for (let round = 1; round <= rounds; round++) {
    for (const n of SHARD_COUNTS) {
      const r = timeRouter(routers.get(n) as ShardRouter, sequential, lookupCount);
      const s = timeSeed(rings.get(n) as SeedRing, sequential, seedBudgetMs);
      rates.router.get(n)?.push(r);
      rates.seed.get(n)?.push(s);
      process.stderr.write(
        `round ${round}/${rounds} ${String(n).padStart(2)} shards: dbopt ${(r / 1e6).toFixed(2)}M lookups/s, seed ${(s / 1e3).toFixed(2)}k lookups/s\n`,
      );
    }
    rates.numeric.push(timeRouterNumeric(routers.get(64) as ShardRouter, lookupCount));
  }

  const summary: Record<string, number | string | boolean | null> = {
    bench: 'shard',
    rounds,
    keys: keyCount,
    slot_count: (routers.get(64) as ShardRouter).slotCount,
    seed_virtual_nodes: (rings.get(8) as SeedRing).points.length / 8,
  };
  console.log('\nshards  side   lookups/s   max/mean seq  max/mean rnd  moved/ideal  moved→new');
  for (const n of SHARD_COUNTS) {
    const router = routers.get(n) as ShardRouter;
    const ring = rings.get(n) as SeedRing;
    const seedResolve = createSortedSeedResolver(ring);
    // The sorted-once resolver must place keys exactly like the seed's resolve().
    for (let i = 0; i < 300; i++) {
      const key = i % 2 === 0 ? (sequential[i * 3331] as string) : (random[i * 3331] as string);
      if (seedResolve(key) !== ring.resolve(key)) {
        throw new Error(`sorted seed resolver disagrees with resolve() for ${key} at ${n} shards`);
      }
    }
    const routeShard = (key: string) => router.route(key).shard;
    const added = `shard-${n}`;
    const grown = createShardRouter(planRebalance(router.map, { add: [added] }).next);
    const grownSeed = createSortedSeedResolver(createSeedRing(shardNames(n + 1)));
    const ideal = 1 / (n + 1);
    const ours = {
      rate: median(rates.router.get(n) ?? []),
      seq: maxOverMean(sequential, routeShard, n),
      rnd: maxOverMean(random, routeShard, n),
      move: movement(sequential, routeShard, (key) => grown.route(key).shard, added),
    };
    const seed = {
      rate: median(rates.seed.get(n) ?? []),
      seq: maxOverMean(sequential, seedResolve, n),
      rnd: maxOverMean(random, seedResolve, n),
      move: movement(sequential, seedResolve, grownSeed, added),
    };
    for (const [side, r] of [
      ['dbopt', ours],
      ['seed', seed],
    ] as const) {
      console.log(
        `${String(n).padStart(6)}  ${side.padEnd(5)} ${r.rate.toExponential(2).padStart(10)} ${r.seq.toFixed(3).padStart(13)} ${r.rnd.toFixed(3).padStart(13)} ${(r.move.movedFraction / ideal).toFixed(3).padStart(12)} ${(r.move.toAddedShare?.toFixed(3) ?? 'n/a').padStart(10)}`,
      );
    }
    Object.assign(summary, {
      [`lookups_per_s_${n}`]: Math.round(ours.rate),
      [`seed_lookups_per_s_${n}`]: Math.round(seed.rate),
      [`max_mean_${n}`]: Number(ours.seq.toFixed(4)),
      [`max_mean_random_${n}`]: Number(ours.rnd.toFixed(4)),
      [`seed_max_mean_${n}`]: Number(seed.seq.toFixed(4)),
      [`seed_max_mean_random_${n}`]: Number(seed.rnd.toFixed(4)),
      [`moved_vs_ideal_${n}`]: Number((ours.move.movedFraction / ideal).toFixed(4)),
      [`seed_moved_vs_ideal_${n}`]: Number((seed.move.movedFraction / ideal).toFixed(4)),
      [`moved_to_new_${n}`]: ours.move.toAddedShare,
      [`seed_moved_to_new_${n}`]: seed.move.toAddedShare,
    });
  }
  const numericRate = median(rates.numeric);
  console.log(`\ndbopt, 64 shards, integer keys: ${numericRate.toExponential(2)} lookups/s`);
  const n64 = summary as Record<string, number>;
  Object.assign(summary, {
    lookups_per_s_64_numeric: Math.round(numericRate),
    speedup_64: Math.round((n64.lookups_per_s_64 ?? 0) / (n64.seed_lookups_per_s_64 ?? 1)),
  });
  Object.assign(summary, await scatterPart());
  Object.assign(summary, {
    targets_met:
      (n64.lookups_per_s_64 ?? 0) >= 5e6 &&
      SHARD_COUNTS.every(
        (n) =>
          (n64[`max_mean_${n}`] ?? Number.POSITIVE_INFINITY) <= 1.03 &&
          (n64[`max_mean_random_${n}`] ?? Number.POSITIVE_INFINITY) <= 1.03 &&
          (n64[`moved_vs_ideal_${n}`] ?? Number.POSITIVE_INFINITY) <= 1.05,
      ),
    elapsed_s: Number(((performance.now() - started) / 1000).toFixed(1)),
  });
  process.stderr.write(`(checksum ${sink})\n`);
  console.log(JSON.stringify(summary));
};

await main();
