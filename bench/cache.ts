/**
 * Result cache benchmark (issue 5, item 10): what a cache hit costs, measured in one run on
 * the same Redis and interleaved round by round so machine noise hits every side alike.
 *
 *   npm run bench:cache          # REDIS_URL or redis://127.0.0.1:6379,
 *                                # DATABASE_URL or postgres://postgres@127.0.0.1:5432/test
 *   npm run bench:cache -- --rounds 7 --zipf-requests 50000
 *
 * Sides, for a ~1 KB and a ~100 KB result:
 * - `raw GET`: ioredis GET of the very entry the handler stored (same key, same bytes);
 * - `GET+MGET`: the same GET pipelined with the MGET of the table version, which is what an
 *   L2 read sends (one round trip);
 * - `l2 cache`: `createResultCache(...).getOrLoad` alone with L1 off (pipelined GET + MGET of
 *   the table versions, entry decoding; the handler's settings, no metrics sink), to show
 *   where the handler's time goes;
 * - `l2 handler`: the query handler in-process (API Gateway event in, response out) on an
 *   instance whose L1 is off (CACHE_L1_MAX_BYTES=1), so every hit is an L2 hit; every
 *   measured response must say `"cache":"l2"`.
 * And an L1 hit: `getOrLoad` alone (target p50 ≤ 10 µs) and through a second handler instance
 * with L1 on (every measured response must say `"cache":"l1"`).
 *
 * Then the hit rate of a Zipf-distributed read mix (s = 1.1 over 1,000 parameter values of
 * one SELECT) with 5 % UPDATEs through the same handler (QUERY_ALLOW_WRITES=true), which bump
 * the table's version: a fixed number of requests from a cold cache, seeded, so it repeats.
 * Next to it, what a perfect cache scores on the same sequence with per-table versions (the
 * ceiling of this design) and with per-row versions (the price of table granularity).
 *
 * Redis keys live under a fresh prefix and are deleted at the end; PostgreSQL tables live in
 * schema `bench_cache` (created once, kept). Prints p50/p99 per case and side (median over
 * rounds) and the ratios l2 handler / raw GET; the last line is JSON.
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { Redis } from 'ioredis';
import pg from 'pg';
import { type Handler, lambdaContext, median, percentile, queryEvent } from './support.ts';

const { values: args } = parseArgs({
  options: {
    'database-url': { type: 'string' },
    'redis-url': { type: 'string' },
    rounds: { type: 'string', default: '5' },
    iterations: { type: 'string', default: '1000' },
    'big-iterations': { type: 'string', default: '200' },
    'l1-iterations': { type: 'string', default: '5000' },
    'zipf-requests': { type: 'string', default: '20000' },
    'zipf-keys': { type: 'string', default: '1000' },
    'zipf-s': { type: 'string', default: '1.1' },
    'write-ratio': { type: 'string', default: '0.05' },
    seed: { type: 'string', default: '42' },
  },
});
const databaseUrl =
  args['database-url'] ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const redisUrl = args['redis-url'] ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const rounds = Number(args.rounds);
const smallIterations = Number(args.iterations);
const bigIterations = Number(args['big-iterations']);
const l1Iterations = Number(args['l1-iterations']);
const zipfRequests = Number(args['zipf-requests']);
const zipfKeys = Number(args['zipf-keys']);
const zipfS = Number(args['zipf-s']);
const writeRatio = Number(args['write-ratio']);
const seed = Number(args.seed);

/** Rows of `docs`; a row's body makes a one-row result of ~1 KB. */
const DOC_ROWS = 2_500;
const BODY_CHARS = 880;
/** Rows per ~100 KB result. */
const BIG_ROWS = 112;
/** Distinct keys each latency case cycles through (every key hit equally often). */
const SMALL_KEYS = 200;
const BIG_KEYS = 20;

const SMALL_SQL = 'SELECT id, body FROM bench_cache.docs WHERE id = $1';
const BIG_SQL = `SELECT id, body FROM bench_cache.docs WHERE id > $1 ORDER BY id LIMIT ${BIG_ROWS}`;
const ZIPF_READ_SQL = 'SELECT id, n, body FROM bench_cache.hot WHERE id = $1';
const ZIPF_WRITE_SQL = 'UPDATE bench_cache.hot SET n = n + 1 WHERE id = $1';

/** Database target name in cache keys (CACHE_TARGET). */
const TARGET = 'bench';
/** Fresh per run: nothing else reads or writes these keys; the end of the run deletes them. */
const prefix = `bench-cache-${randomUUID().slice(0, 8)}`;

/** Deterministic PRNG (mulberry32): the Zipf mix is the same sequence on every run. */
const mulberry32 = (state: number) => (): number => {
  state = (state + 0x6d2b79f5) | 0;
  let t = Math.imul(state ^ (state >>> 15), 1 | state);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
};

/** Samples ranks 1…n with P(k) ∝ k^-s (inverse CDF, binary search). */
const zipfSampler = (n: number, s: number, random: () => number) => {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 1; k <= n; k++) {
    sum += k ** -s;
    cdf[k - 1] = sum;
  }
  for (let i = 0; i < n; i++) cdf[i] = (cdf[i] as number) / sum;
  return (): number => {
    const u = random();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((cdf[mid] as number) < u) lo = mid + 1;
      else hi = mid;
    }
    return lo + 1;
  };
};

const setUp = async (): Promise<void> => {
  const admin = new pg.Client(databaseUrl);
  await admin.connect();
  const count = async (table: string): Promise<number> => {
    const { rows } = await admin.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'bench_cache' AND tablename = '${table}'`,
    );
    if (rows[0]?.n === '0') return -1;
    const r = await admin.query<{ n: string }>(`SELECT count(*) AS n FROM bench_cache.${table}`);
    return Number(r.rows[0]?.n);
  };
  await admin.query('CREATE SCHEMA IF NOT EXISTS bench_cache');
  if ((await count('docs')) !== DOC_ROWS) {
    process.stderr.write(`creating bench_cache.docs (${DOC_ROWS} rows of ~1 KB)…\n`);
    await admin.query(`
      DROP TABLE IF EXISTS bench_cache.docs;
      CREATE TABLE bench_cache.docs (id int PRIMARY KEY, body text NOT NULL);
      INSERT INTO bench_cache.docs
        SELECT g, left(repeat(md5(g::text), ${Math.ceil(BODY_CHARS / 32)}), ${BODY_CHARS})
        FROM generate_series(1, ${DOC_ROWS}) g;
      ANALYZE bench_cache.docs;
    `);
  }
  if ((await count('hot')) !== zipfKeys) {
    process.stderr.write(`creating bench_cache.hot (${zipfKeys} rows)…\n`);
    await admin.query(`
      DROP TABLE IF EXISTS bench_cache.hot;
      CREATE TABLE bench_cache.hot (id int PRIMARY KEY, n int NOT NULL, body text NOT NULL);
      INSERT INTO bench_cache.hot
        SELECT g, 0, left(repeat(md5(g::text), ${Math.ceil(BODY_CHARS / 32)}), ${BODY_CHARS})
        FROM generate_series(1, ${zipfKeys}) g;
      ANALYZE bench_cache.hot;
    `);
  }
  await admin.end();
};

type HandlerModule = { handler: Handler; shutdown: () => Promise<void> };

/**
 * One handler instance (one "Lambda instance") per environment: the module reads its config
 * at import, so each instance is the module imported under its own URL.
 */
const importHandler = async (
  instance: string,
  env: Record<string, string>,
): Promise<HandlerModule> => {
  Object.assign(process.env, env);
  const specifier = `../functions/query/handler.ts?instance=${instance}`;
  return (await import(specifier)) as HandlerModule;
};

/**
 * Times `n` calls one by one (µs each). `check` runs on each result after its time was
 * taken, so a parse of a 100 KB body never counts.
 */
const sample = async <T>(
  n: number,
  call: (i: number) => Promise<T>,
  check?: (result: T, i: number) => void,
): Promise<number[]> => {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const result = await call(i);
    times.push((performance.now() - t0) * 1000);
    check?.(result, i);
  }
  return times.sort((a, b) => a - b);
};

const realWrite = process.stdout.write.bind(process.stdout);
const quiet = () => {
  process.stdout.write = (() => true) as typeof process.stdout.write;
};
const loud = () => {
  process.stdout.write = realWrite;
};

/** The `cache` outcome of a 200 response; anything else is a failed run. */
const outcomeOf = (r: APIGatewayProxyResult): string => {
  if (r.statusCode !== 200) {
    loud();
    throw new Error(`handler returned ${r.statusCode}: ${r.body.slice(0, 500)}`);
  }
  return String((JSON.parse(r.body) as { cache?: unknown }).cache);
};

const expectOutcome = (expected: string, label: string) => (r: APIGatewayProxyResult) => {
  const got = outcomeOf(r);
  if (got !== expected) {
    loud();
    throw new Error(`${label}: expected cache "${expected}", got "${got}": ${r.body.slice(-200)}`);
  }
};

/** Deletes every key of this run (SCAN + UNLINK; never FLUSHALL). Returns how many. */
const deleteKeys = async (redis: Redis, pattern: string): Promise<number> => {
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    if (keys.length > 0) deleted += await redis.unlink(...keys);
    cursor = next;
  } while (cursor !== '0');
  return deleted;
};

const main = async (): Promise<void> => {
  await setUp();
  const { cacheSettingsFromConfig, createResultCache, redisOptionsFromConfig, versionKeyOf } =
    await import('#shared/cache');
  const { loadConfig } = await import('#shared/config');
  const { noMetrics } = await import('#shared/metrics');

  const common = {
    DATABASE_URL: databaseUrl,
    DB_SSL_MODE: 'disable',
    LOG_LEVEL: 'WARN',
    QUERY_ALLOW_WRITES: 'true',
    REDIS_URL: redisUrl,
    CACHE_ENABLED: 'true',
    CACHE_KEY_PREFIX: prefix,
    CACHE_TARGET: TARGET,
    CACHE_DEFAULT_TTL_MS: '300000',
    CACHE_MAX_TTL_MS: '300000',
    CACHE_MAX_ENTRY_BYTES: '1000000',
  };
  // The bench's own clients and caches get exactly the handler's Redis options and settings.
  const config = loadConfig(common);
  const raw = new Redis(redisUrl, redisOptionsFromConfig(config));
  const direct = new Redis(redisUrl, redisOptionsFromConfig(config));
  await raw.connect();
  await direct.connect();

  // L1 off: no entry fits in 1 byte (and one that did would live 1 ms).
  const l2Handler = await importHandler('l2', {
    ...common,
    CACHE_L1_MAX_BYTES: '1',
    CACHE_L1_TTL_MS: '1',
  });
  const l1Handler = await importHandler('l1', {
    ...common,
    CACHE_L1_MAX_BYTES: '50000000',
    // The longest allowed: on a busy box a 1 s L1 can expire between filling and measuring.
    CACHE_L1_TTL_MS: '60000',
  });

  const cacheOptions = {
    ...cacheSettingsFromConfig(config),
    redis: direct,
    metrics: noMetrics,
    logger: { warn: (message: string) => process.stderr.write(`cache: ${message}\n`) },
  };
  const l2Cache = createResultCache({
    ...cacheOptions,
    keyPrefix: `${prefix}-l2direct`,
    l1MaxBytes: 1,
    l1TtlMs: 1,
  });
  const l1Cache = createResultCache({
    ...cacheOptions,
    keyPrefix: `${prefix}-l1direct`,
    l1MaxBytes: 50_000_000,
    l1TtlMs: 600_000,
  });

  let summaryLine = '';
  try {
    const smallParams = (i: number) => [1_001 + (i % SMALL_KEYS)];
    const bigParams = (i: number) => [(i % BIG_KEYS) * BIG_ROWS];
    const cases = [
      {
        name: '1kb',
        sql: SMALL_SQL,
        keys: SMALL_KEYS,
        n: smallIterations,
        params: smallParams,
      },
      { name: '100kb', sql: BIG_SQL, keys: BIG_KEYS, n: bigIterations, params: bigParams },
    ];

    // Fill L2 through the handler, then find the entries it stored: the raw GET reads exactly
    // those keys. The direct cache stores the same payloads under its own prefix.
    const entryKeys: Record<string, string[]> = {};
    const payloads: Record<string, string[]> = {};
    const tablesRead = Object.freeze(['bench_cache.docs']);
    const requestOf = (sql: string, params: unknown[]) => ({
      sql,
      params,
      target: TARGET,
      role: 'postgres',
      tablesRead,
      variant: 'maxRows=1000',
    });
    quiet();
    for (const c of cases) {
      const before = new Set(await scanEntries(raw));
      const bodies: string[] = [];
      for (let i = 0; i < c.keys; i++) {
        const r = await l2Handler.handler(
          queryEvent(c.sql, c.params(i)),
          lambdaContext('dbopt-cache-bench'),
        );
        if (!['miss', 'l2'].includes(outcomeOf(r))) {
          loud();
          throw new Error(`warm-up of ${c.name}: unexpected outcome in ${r.body.slice(-200)}`);
        }
        bodies.push(r.body);
      }
      entryKeys[c.name] = (await scanEntries(raw)).filter((k) => !before.has(k));
      // The payload is the body without the per-response tail (durationMs, cache).
      payloads[c.name] = bodies.map((b) => `${b.slice(0, b.lastIndexOf(',"durationMs":'))}}`);
      for (let i = 0; i < c.keys; i++) {
        const payload = payloads[c.name]?.[i] as string;
        await l2Cache.getOrLoad(requestOf(c.sql, c.params(i)), async () => payload);
      }
    }
    loud();
    const entryBytes: Record<string, number> = {};
    for (const c of cases) {
      const keys = entryKeys[c.name] ?? [];
      if (keys.length !== c.keys) {
        throw new Error(`expected ${c.keys} new L2 entries for ${c.name}, found ${keys.length}`);
      }
      const lengths = await Promise.all(keys.map((k) => raw.strlen(k)));
      entryBytes[c.name] = median(lengths);
    }

    const results: Record<string, Record<string, number[][]>> = {};
    for (const c of [...cases.map((x) => x.name), 'l1']) results[c] = {};
    const record = (c: string, side: string, times: number[]) => {
      const byCase = results[c] as Record<string, number[][]>;
      byCase[side] ??= [];
      byCase[side].push(times);
    };

    // L1: the same 1 KB payloads, in the direct cache's L1 and in the L1 handler's L1.
    const smallPayloads = payloads['1kb'] as string[];
    const l1Requests = Array.from({ length: SMALL_KEYS }, (_, i) =>
      requestOf(SMALL_SQL, smallParams(i)),
    );
    for (let i = 0; i < SMALL_KEYS; i++) {
      const payload = smallPayloads[i] as string;
      await l1Cache.getOrLoad(l1Requests[i] as (typeof l1Requests)[number], async () => payload);
    }
    const l1Direct = (i: number) =>
      l1Cache.getOrLoad(l1Requests[i % SMALL_KEYS] as (typeof l1Requests)[number], failLoad);
    const expectL1Direct = (r: { outcome: { level: string } }) => {
      if (r.outcome.level !== 'l1') throw new Error(`direct L1: got ${r.outcome.level}`);
    };
    const expectL2Direct = (r: { outcome: { level: string } }) => {
      if (r.outcome.level !== 'l2') throw new Error(`direct L2: got ${r.outcome.level}`);
    };
    /** Puts every L1 key in the L1 handler's L1 (and refreshes it each round). */
    const fillHandlerL1 = async () => {
      for (let i = 0; i < SMALL_KEYS; i++) {
        const r = await l1Handler.handler(
          queryEvent(SMALL_SQL, smallParams(i)),
          lambdaContext('dbopt-cache-bench'),
        );
        outcomeOf(r);
      }
    };

    // What the L2 read path sends: GET of the entry + MGET of the table versions, pipelined.
    const versionKey = versionKeyOf(prefix, TARGET, 'docs');
    if ((await raw.exists(versionKey)) !== 1) throw new Error(`no version key ${versionKey}`);

    // Warm-up: JIT, connections, parse caches.
    quiet();
    for (const c of cases) {
      const keys = entryKeys[c.name] as string[];
      await sample(200, (i) =>
        l2Handler.handler(queryEvent(c.sql, c.params(i)), lambdaContext('dbopt-cache-bench')),
      );
      await sample(200, (i) => raw.get(keys[i % keys.length] as string));
      await sample(200, (i) =>
        raw
          .pipeline()
          .get(keys[i % keys.length] as string)
          .mget(versionKey)
          .exec(),
      );
      await sample(200, (i) => l2Cache.getOrLoad(requestOf(c.sql, c.params(i)), failLoad));
    }
    await fillHandlerL1();
    await sample(200, (i) =>
      l1Handler.handler(queryEvent(SMALL_SQL, smallParams(i)), lambdaContext('dbopt-cache-bench')),
    );
    await sample(2_000, l1Direct);
    loud();

    for (let round = 1; round <= rounds; round++) {
      for (const c of cases) {
        const keys = entryKeys[c.name] as string[];
        const events = Array.from({ length: c.n }, (_, i) => queryEvent(c.sql, c.params(i)));
        const requests = Array.from({ length: c.n }, (_, i) => requestOf(c.sql, c.params(i)));
        quiet();
        const h = await sample(
          c.n,
          (i) =>
            l2Handler.handler(
              events[i] as APIGatewayProxyEvent,
              lambdaContext('dbopt-cache-bench'),
            ),
          expectOutcome('l2', `l2 handler ${c.name}`),
        );
        const d = await sample(
          c.n,
          (i) => l2Cache.getOrLoad(requests[i] as (typeof requests)[number], failLoad),
          expectL2Direct,
        );
        const g = await sample(
          c.n,
          (i) => raw.get(keys[i % keys.length] as string),
          (v) => {
            if (v === null) throw new Error(`raw GET ${c.name}: entry vanished`);
          },
        );
        const p = await sample(c.n, (i) =>
          raw
            .pipeline()
            .get(keys[i % keys.length] as string)
            .mget(versionKey)
            .exec(),
        );
        loud();
        record(c.name, 'handler', h);
        record(c.name, 'cache', d);
        record(c.name, 'get', g);
        record(c.name, 'pipeline', p);
        process.stderr.write(
          `round ${round}/${rounds} ${c.name}: l2 handler p50 ${percentile(h, 50).toFixed(0)} µs, l2 cache p50 ${percentile(d, 50).toFixed(0)} µs, GET+MGET pipeline p50 ${percentile(p, 50).toFixed(0)} µs, raw GET p50 ${percentile(g, 50).toFixed(0)} µs\n`,
        );
      }
      const l1Events = Array.from({ length: smallIterations }, (_, i) =>
        queryEvent(SMALL_SQL, smallParams(i)),
      );
      quiet();
      await fillHandlerL1();
      const lh = await sample(
        smallIterations,
        (i) =>
          l1Handler.handler(
            l1Events[i] as APIGatewayProxyEvent,
            lambdaContext('dbopt-cache-bench'),
          ),
        expectOutcome('l1', 'l1 handler'),
      );
      const ld = await sample(l1Iterations, l1Direct, expectL1Direct);
      loud();
      record('l1', 'handler', lh);
      record('l1', 'cache', ld);
      process.stderr.write(
        `round ${round}/${rounds} l1: handler p50 ${percentile(lh, 50).toFixed(0)} µs, cache p50 ${percentile(ld, 50).toFixed(2)} µs\n`,
      );
    }

    // Zipf read mix with writes, through the L1 handler, from a cold cache (fresh table).
    const random = mulberry32(seed);
    const nextKey = zipfSampler(zipfKeys, zipfS, random);
    const ops = Array.from({ length: zipfRequests }, () => ({
      id: nextKey(),
      write: random() < writeRatio,
    }));
    const writes = ops.filter((o) => o.write).length;
    const reads = zipfRequests - writes;
    const distinct = new Set(ops.filter((o) => !o.write).map((o) => o.id)).size;
    // What a perfect cache would score on the same sequence: with one version per table (any
    // write empties it, this design) and with one version per row (a write drops its key).
    const modelHitRate = (perRow: boolean): number => {
      const cached = new Set<number>();
      let hits = 0;
      for (const { id, write } of ops) {
        if (write) {
          if (perRow) cached.delete(id);
          else cached.clear();
        } else if (cached.has(id)) hits += 1;
        else cached.add(id);
      }
      return hits / reads;
    };
    const counts: Record<string, number> = { l1: 0, l2: 0, miss: 0, bypass: 0 };
    const zipfStarted = performance.now();
    quiet();
    for (const { id, write } of ops) {
      if (write) {
        outcomeOf(
          await l1Handler.handler(
            queryEvent(ZIPF_WRITE_SQL, [id]),
            lambdaContext('dbopt-cache-bench'),
          ),
        );
        continue;
      }
      const level = outcomeOf(
        await l1Handler.handler(
          queryEvent(ZIPF_READ_SQL, [id]),
          lambdaContext('dbopt-cache-bench'),
        ),
      );
      counts[level] = (counts[level] ?? 0) + 1;
    }
    loud();
    const zipfSeconds = (performance.now() - zipfStarted) / 1000;
    const hitRate = ((counts.l1 ?? 0) + (counts.l2 ?? 0)) / reads;
    const tableModel = modelHitRate(false);
    const rowModel = modelHitRate(true);
    process.stderr.write(
      `zipf: ${zipfRequests} requests in ${zipfSeconds.toFixed(1)} s, hit rate ${(hitRate * 100).toFixed(1)} %\n`,
    );

    // ---- Report ------------------------------------------------------------------------------
    const stat = (c: string, side: string, p: number) =>
      median((results[c]?.[side] ?? []).map((run) => percentile(run, p)));
    const us = (x: number) => (x < 100 ? x.toFixed(1) : x.toFixed(0)).padStart(9);
    const summary: Record<string, number | string> = { bench: 'cache', rounds };
    console.log(
      `\ncase                  side          p50 µs    p99 µs   (median over ${rounds} rounds)`,
    );
    for (const c of cases) {
      const label = `${c.name} (${entryBytes[c.name]} B)`.padEnd(21);
      const p50 = stat(c.name, 'pipeline', 50);
      const p99 = stat(c.name, 'pipeline', 99);
      const g50 = stat(c.name, 'get', 50);
      const g99 = stat(c.name, 'get', 99);
      const d50 = stat(c.name, 'cache', 50);
      const d99 = stat(c.name, 'cache', 99);
      const h50 = stat(c.name, 'handler', 50);
      const h99 = stat(c.name, 'handler', 99);
      console.log(`${label} raw GET    ${us(g50)} ${us(g99)}`);
      console.log(`${label} GET+MGET   ${us(p50)} ${us(p99)}`);
      console.log(`${label} l2 cache   ${us(d50)} ${us(d99)}`);
      console.log(`${label} l2 handler ${us(h50)} ${us(h99)}`);
      console.log(
        `${label} ratio h/GET ${(h50 / g50).toFixed(2).padStart(8)} ${(h99 / g99).toFixed(2).padStart(9)}`,
      );
      console.log(
        `${label} ratio c/GET ${(d50 / g50).toFixed(2).padStart(8)} ${(d99 / g99).toFixed(2).padStart(9)}`,
      );
      Object.assign(summary, {
        [`entry_bytes_${c.name}`]: entryBytes[c.name] as number,
        [`redis_get_p50_us_${c.name}`]: round1(g50),
        [`redis_get_p99_us_${c.name}`]: round1(g99),
        [`redis_pipeline_p50_us_${c.name}`]: round1(p50),
        [`l2_cache_p50_us_${c.name}`]: round1(d50),
        [`l2_cache_p99_us_${c.name}`]: round1(d99),
        [`l2_hit_p50_us_${c.name}`]: round1(h50),
        [`l2_hit_p99_us_${c.name}`]: round1(h99),
        [`l2_ratio_p50_${c.name}`]: Number((h50 / g50).toFixed(3)),
        [`l2_ratio_p99_${c.name}`]: Number((h99 / g99).toFixed(3)),
        [`l2_cache_ratio_p50_${c.name}`]: Number((d50 / g50).toFixed(3)),
      });
    }
    const l1d50 = stat('l1', 'cache', 50);
    const l1d99 = stat('l1', 'cache', 99);
    const l1h50 = stat('l1', 'handler', 50);
    const l1h99 = stat('l1', 'handler', 99);
    const l1Label = `l1 (${smallPayloads[0]?.length} B)`.padEnd(21);
    console.log(`${l1Label} l1 cache   ${us(l1d50)} ${us(l1d99)}`);
    console.log(`${l1Label} l1 handler ${us(l1h50)} ${us(l1h99)}`);
    console.log(
      `\nzipf s=${zipfS} over ${zipfKeys} keys, ${zipfRequests} requests (${writes} writes, ${reads} reads, ${distinct} distinct keys read): ` +
        `hit rate ${(hitRate * 100).toFixed(1)} % (l1 ${counts.l1}, l2 ${counts.l2}, miss ${counts.miss}, bypass ${counts.bypass})`,
    );
    console.log(
      `perfect cache on the same sequence: ${(tableModel * 100).toFixed(1)} % with per-table versions, ${(rowModel * 100).toFixed(1)} % with per-row versions`,
    );
    Object.assign(summary, {
      l1_hit_p50_us: round2(l1d50),
      l1_hit_p99_us: round2(l1d99),
      l1_hit_handler_p50_us: round1(l1h50),
      l1_hit_handler_p99_us: round1(l1h99),
      hit_rate_zipf: Number(hitRate.toFixed(4)),
      hit_rate_zipf_model_table: Number(tableModel.toFixed(4)),
      hit_rate_zipf_model_row: Number(rowModel.toFixed(4)),
      zipf_s: zipfS,
      zipf_keys: zipfKeys,
      zipf_requests: zipfRequests,
      zipf_writes: writes,
      zipf_l1_hits: counts.l1 ?? 0,
      zipf_l2_hits: counts.l2 ?? 0,
      zipf_misses: counts.miss ?? 0,
      zipf_bypasses: counts.bypass ?? 0,
      zipf_seconds: round1(zipfSeconds),
    });
    summaryLine = JSON.stringify(summary);
  } finally {
    loud();
    const deleted = await deleteKeys(raw, `${prefix}*`);
    process.stderr.write(`deleted ${deleted} Redis keys under ${prefix}\n`);
    raw.disconnect();
    direct.disconnect();
    await l2Handler.shutdown();
    await l1Handler.shutdown();
  }
  // Last, after the cleanup's stderr line: the JSON is the last line of the run.
  console.log(summaryLine);
};

const round1 = (x: number) => Math.round(x * 10) / 10;
const round2 = (x: number) => Math.round(x * 100) / 100;

/** A measured hit must never load; a load means the case measured something else. */
const failLoad = async (): Promise<string> => {
  throw new Error('unexpected cache miss: the entry should have been there');
};

/** Result entries of this run's handler prefix (not version keys, locks or direct caches). */
const scanEntries = async (redis: Redis): Promise<string[]> => {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:rc:*`, 'COUNT', 1000);
    for (const k of keys) if (!k.endsWith(':lock')) found.push(k);
    cursor = next;
  } while (cursor !== '0');
  return found;
};

await main();
