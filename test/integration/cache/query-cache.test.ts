import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env.ts';
import { invoke, type LoadedHandler, loadHandler } from '../support/lambda.ts';
import { type RedisRelay, startRedisRelay } from './redis-proxy.ts';

const QUERY = new URL('../../../functions/query/handler.ts', import.meta.url).href;
const SWEEPER = new URL('../../../functions/cache-sweeper/handler.ts', import.meta.url).href;
const L1_TTL_MS = 300;
const SWEEP_INTERVAL_MS = 200;

type Body = Record<string, unknown> & {
  rows: Record<string, unknown>[];
  cache: string;
  cacheReason?: string;
};

describe('query API result cache on real Redis and PostgreSQL', () => {
  const prefix = `it-${randomUUID().slice(0, 8)}`;
  const schema = `cache_it_${randomUUID().slice(0, 8)}`;
  let admin: pg.Client;
  let redis: Redis;
  const env = (extra: Record<string, string> = {}) => ({
    DATABASE_URL: TEST_DATABASE_URL,
    DB_SSL_MODE: 'disable',
    REDIS_URL: TEST_REDIS_URL,
    CACHE_KEY_PREFIX: prefix,
    CACHE_L1_TTL_MS: String(L1_TTL_MS),
    CACHE_SWEEP_INTERVAL_MS: String(SWEEP_INTERVAL_MS),
    QUERY_ALLOW_WRITES: 'true',
    ...extra,
  });
  const instances: LoadedHandler[] = [];
  const start = async (extra: Record<string, string> = {}) => {
    const loaded = await loadHandler(QUERY, env(extra));
    instances.push(loaded);
    return loaded;
  };
  const read = async (api: LoadedHandler, sql: string, params: unknown[] = []) => {
    const response = await invoke(api.handler, { sql, params });
    expect(response.status, response.raw).toBe(200);
    return response.body as Body;
  };
  const write = (api: LoadedHandler, sql: string, params: unknown[] = []) => read(api, sql, params);

  beforeAll(async () => {
    admin = new pg.Client(TEST_DATABASE_URL);
    await admin.connect();
    await admin.query(`
      CREATE SCHEMA ${schema};
      CREATE TABLE ${schema}.counters (id int PRIMARY KEY, v int NOT NULL);
      INSERT INTO ${schema}.counters SELECT g, 0 FROM generate_series(1, 10) g;
      CREATE VIEW ${schema}.counters_view AS SELECT id, v FROM ${schema}.counters;
      CREATE SEQUENCE ${schema}.seq;
    `);
    redis = new Redis(TEST_REDIS_URL);
  });

  afterAll(async () => {
    for (const instance of instances) await instance.shutdown();
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.end();
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });

  it('serves a miss, then L1, then L2 from another instance, with the outcome in the response', async () => {
    // Prepare
    const a = await start();
    const b = await start();
    const sql = `SELECT v FROM ${schema}.counters WHERE id = $1`;
    // Act
    const first = await read(a, sql, [1]);
    const second = await read(a, sql, [1]);
    const other = await read(b, sql, [1]);
    // Assess
    expect([first.cache, second.cache, other.cache]).toEqual(['miss', 'l1', 'l2']);
    expect(other.rows).toEqual(first.rows);
  });

  it('never returns the pre-write result after a write through the API (read-your-writes)', async () => {
    const api = await start();
    const sql = `SELECT v FROM ${schema}.counters WHERE id = $1`;
    expect((await read(api, sql, [2])).rows).toEqual([{ v: 0 }]);
    expect((await read(api, sql, [2])).cache).toBe('l1');
    // Act
    const updated = await write(api, `UPDATE ${schema}.counters SET v = v + 1 WHERE id = $1`, [2]);
    const after = await read(api, sql, [2]);
    // Assess
    expect(updated.cache).toBe('bypass');
    expect(updated.cacheReason).toBe('write');
    expect(after.rows).toEqual([{ v: 1 }]);
    expect(after.cache).toBe('miss');
  });

  it('a write through one instance is never served from L2 by another; its L1 lives at most CACHE_L1_TTL_MS', async () => {
    const writer = await start();
    const reader = await start();
    const sql = `SELECT v FROM ${schema}.counters WHERE id = $1`;
    await read(reader, sql, [3]);
    await write(writer, `UPDATE ${schema}.counters SET v = 42 WHERE id = $1`, [3]);
    await new Promise((r) => setTimeout(r, L1_TTL_MS + 50));
    const after = await read(reader, sql, [3]);
    expect(after.rows).toEqual([{ v: 42 }]);
    expect(after.cache).toBe('miss');
  });

  it('catches a write that bypasses the API within the sweeper bound', async () => {
    // Prepare: the sweeper runs in the background, as local mode runs it.
    const api = await start();
    const sweeper = (await loadHandler(SWEEPER, env())) as LoadedHandler & {
      runSweeps: (limit: { signal: AbortSignal }) => Promise<unknown>;
    };
    const stop = new AbortController();
    const loop = sweeper.runSweeps({ signal: stop.signal });
    const sql = `SELECT v FROM ${schema}.counters WHERE id = $1`;
    await new Promise((r) => setTimeout(r, 2 * SWEEP_INTERVAL_MS)); // baseline snapshot
    expect((await read(api, sql, [4])).rows).toEqual([{ v: 0 }]);
    // Act: a plain pg client writes and disconnects (its stats flush on disconnect).
    const outside = new pg.Client(TEST_DATABASE_URL);
    await outside.connect();
    await outside.query(`UPDATE ${schema}.counters SET v = 7 WHERE id = 4`);
    await outside.end();
    const wroteAt = Date.now();
    let seenAfterMs = -1;
    while (Date.now() - wroteAt < 12_000) {
      const body = await read(api, sql, [4]);
      if (body.rows[0]?.v === 7) {
        seenAfterMs = Date.now() - wroteAt;
        break;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    stop.abort();
    await loop;
    await sweeper.shutdown();
    // Assess: bound = stats flush (≈0 on disconnect) + sweep interval + sweep + L1 TTL.
    expect(seenAfterMs).toBeGreaterThanOrEqual(0);
    expect(seenAfterMs).toBeLessThan(SWEEP_INTERVAL_MS + L1_TTL_MS + 1_000);
  });

  it('serves no stale read beyond the bound in a concurrent reader/writer run', async () => {
    // Prepare: one writer instance, two reader instances (separate L1s), one shared Redis.
    const writer = await start();
    const readers = [await start(), await start()];
    const sql = `SELECT v FROM ${schema}.counters WHERE id = $1`;
    const committed: { v: number; at: number }[] = [{ v: 0, at: 0 }];
    const reads: { instance: number; startedAt: number; v: number; cache: string }[] = [];
    let writing = true;
    // Act
    const writeLoop = (async () => {
      for (let i = 0; i < 40; i++) {
        const body = await write(
          writer,
          `UPDATE ${schema}.counters SET v = v + 1 WHERE id = $1 RETURNING v`,
          [8],
        );
        committed.push({ v: Number(body.rows[0]?.v), at: performance.now() });
        await new Promise((r) => setTimeout(r, 5));
      }
      writing = false;
    })();
    const readLoop = (api: LoadedHandler, instance: number) =>
      (async () => {
        while (writing) {
          const startedAt = performance.now();
          const body = await read(api, sql, [8]);
          reads.push({ instance, startedAt, v: Number(body.rows[0]?.v), cache: body.cache });
          // L1 hits resolve without I/O; yield so the writer is not starved.
          await new Promise((r) => setTimeout(r, 1));
        }
      })();
    await Promise.all([
      writeLoop,
      readLoop(writer, 0),
      ...readers.map((r, i) => readLoop(r, i + 1)),
    ]);
    // Assess: a read must reflect every write committed before it started, except that another
    // instance's L1 may lag by at most CACHE_L1_TTL_MS; the writer's own instance never lags.
    const floorAt = (t: number) => Math.max(...committed.filter((c) => c.at <= t).map((c) => c.v));
    const staleBeyondBound = reads.filter((r) => {
      const boundMs = r.instance === 0 ? 0 : L1_TTL_MS;
      return r.v < floorAt(r.startedAt - boundMs);
    });
    expect(reads.length).toBeGreaterThan(40);
    expect(
      staleBeyondBound.slice(0, 5).map((r) => ({ ...r, floor: floorAt(r.startedAt - L1_TTL_MS) })),
    ).toEqual([]);
  });

  it('runs N concurrent identical requests as one database query (single flight)', async () => {
    const api = await start();
    const alias = `v_${randomUUID().replaceAll('-', '')}`;
    const sql = `SELECT v AS ${alias}, pg_catalog.length(${schema}.counters.v::text) AS l FROM ${schema}.counters WHERE id = $1`;
    // Act
    const bodies = await Promise.all(
      Array.from({ length: 20 }, () => invoke(api.handler, { sql, params: [5] })),
    );
    // Assess
    expect(bodies.every((b) => b.status === 200)).toBe(true);
    const { rows } = await admin.query<{ calls: string }>(
      'SELECT sum(calls)::text AS calls FROM pg_stat_statements WHERE query LIKE $1',
      [`%${alias}%`],
    );
    expect(rows[0]?.calls).toBe('1');
  });

  it.each([
    [
      'clock_timestamp()',
      `SELECT clock_timestamp() AS t FROM ${schema}.counters WHERE id = 1`,
      'volatile-function',
    ],
    ['random()', `SELECT random() AS r FROM ${schema}.counters WHERE id = 1`, 'volatile-function'],
    ['now()', `SELECT now() AS t, v FROM ${schema}.counters WHERE id = 1`, 'volatile-function'],
    ['FOR SHARE', `SELECT v FROM ${schema}.counters WHERE id = 1 FOR SHARE`, 'write'],
    [
      'a writable CTE',
      `WITH u AS (UPDATE ${schema}.counters SET v = v WHERE id = 1 RETURNING v) SELECT v FROM u`,
      'write',
    ],
    ['a view', `SELECT v FROM ${schema}.counters_view WHERE id = 1`, 'view-or-foreign-table'],
  ])('never caches %s', async (_name, sql, reason) => {
    const api = await start();
    const first = await read(api, sql);
    const second = await read(api, sql);
    expect([first.cache, second.cache]).toEqual(['bypass', 'bypass']);
    expect(second.cacheReason).toBe(reason);
  });

  it('keeps answering from the database when Redis stops mid-run', async () => {
    // Prepare: Redis reached through a relay the test can stop.
    const relay: RedisRelay = await startRedisRelay(Number(new URL(TEST_REDIS_URL).port || 6379));
    const api = await start({
      REDIS_URL: `redis://127.0.0.1:${relay.port}`,
      CACHE_L1_TTL_MS: '1',
      REDIS_COMMAND_TIMEOUT_MS: '50',
      CACHE_BREAKER_FAILURES: '2',
    });
    const sql = `SELECT v FROM ${schema}.counters WHERE id = $1`;
    await read(api, sql, [6]);
    await new Promise((r) => setTimeout(r, 5));
    expect((await read(api, sql, [6])).cache).toBe('l2');
    // Act
    await relay.stop();
    const outcomes: string[] = [];
    const started = Date.now();
    for (let i = 0; i < 20; i++) {
      const body = await read(api, sql, [6]);
      expect(body.rows).toEqual([{ v: 0 }]);
      outcomes.push(body.cache);
    }
    const elapsedMs = Date.now() - started;
    await relay.start();
    // Assess: every request answered (from the database, or from this instance's short-lived
    // L1), none from Redis, none failed; the open breaker keeps a dead Redis from costing a
    // timeout per request.
    expect(
      outcomes.filter((o) => o !== 'bypass' && o !== 'l1'),
      outcomes.join(','),
    ).toEqual([]);
    expect(outcomes).toContain('bypass');
    expect(elapsedMs).toBeLessThan(2_000);
  });
});
