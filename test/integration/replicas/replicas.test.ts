import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '#shared/config';
import { createDatabase, type Database } from '#shared/db';
import { noMetrics } from '#shared/metrics';
import {
  createQueryReplicas,
  type QueryCacheDeps,
  type QueryDeps,
  queryPolicyFromConfig,
  runQuery,
  targetGuardOptionsFromConfig,
} from '#shared/query';
import { createTargetGuard } from '#shared/resilience';
import { createSqlAnalyzer, initSqlParser } from '#shared/sql';
import {
  DEAD_DATABASE_URL,
  TEST_DATABASE_URL,
  TEST_REDIS_URL,
  testDatabaseOptions,
} from '../support/env.ts';
import { invoke, type LoadedHandler, loadHandler } from '../support/lambda.ts';

/**
 * A streaming standby cannot be created quickly here, so separate databases on the test
 * cluster stand in for replicas. They hold different data (`v` names the database), which
 * proves where each read ran. They are not in recovery, so the handler runs with
 * REPLICA_NON_STANDBY=zero-lag; lag itself is injected through the probe (runQuery tests).
 */
const QUERY = new URL('../../../functions/query/handler.ts', import.meta.url).href;
const DATABASES = ['primary', 'r1', 'r2'] as const;
const urlOf = (name: string) => {
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/dbopt_it_replica_${name}`;
  return url.toString();
};
const PRIMARY_URL = urlOf('primary');
const baseEnv = {
  DATABASE_URL: PRIMARY_URL,
  DB_SSL_MODE: 'disable',
  QUERY_ALLOW_WRITES: 'true',
  CACHE_ENABLED: 'false',
  REPLICA_NON_STANDBY: 'zero-lag',
};
const READ = { sql: 'SELECT v FROM items WHERE id = $1', params: [1] };

type Body = {
  rows: { v: string }[];
  servedBy?: string;
  skippedReplicas?: { name: string; reason: string; lagMs?: number }[];
  cache: string;
  cacheReason?: string;
};

describe('read replicas (separate databases standing in for replicas)', () => {
  let admin: pg.Client;
  const clients = new Map<string, pg.Client>();
  const loaded: LoadedHandler[] = [];
  const load = async (env: Record<string, string>) => {
    const api = await loadHandler(QUERY, { ...baseEnv, ...env });
    loaded.push(api);
    return api;
  };
  const read = async (api: LoadedHandler, extra: Record<string, unknown> = {}) => {
    const response = await invoke(api.handler, { ...READ, ...extra });
    expect(response.status).toBe(200);
    return response.body as unknown as Body;
  };

  beforeAll(async () => {
    admin = new pg.Client(TEST_DATABASE_URL);
    await admin.connect();
    for (const name of DATABASES) {
      const datname = `dbopt_it_replica_${name}`;
      const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [datname]);
      if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${datname}`);
      const client = new pg.Client(urlOf(name));
      await client.connect();
      await client.query(
        'DROP TABLE IF EXISTS items; CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL)',
      );
      await client.query('INSERT INTO items VALUES (1, $1)', [name]);
      clients.set(name, client);
    }
    await initSqlParser();
  });

  afterAll(async () => {
    await Promise.all(loaded.map((api) => api.shutdown()));
    await Promise.all([...clients.values()].map((c) => c.end()));
    await admin.end();
  });

  it('sends reads to the replicas round-robin (their data answers)', async () => {
    // Prepare
    const api = await load({
      REPLICA_URLS: JSON.stringify({ primary: [urlOf('r1'), urlOf('r2')] }),
    });
    // Act
    const bodies = [];
    for (let i = 0; i < 4; i++) bodies.push(await read(api));
    // Assess
    expect(bodies.map((b) => b.rows[0]?.v)).toEqual(['r1', 'r2', 'r1', 'r2']);
    expect(bodies.map((b) => b.servedBy)).toEqual([
      'replica:primary/r1',
      'replica:primary/r2',
      'replica:primary/r1',
      'replica:primary/r2',
    ]);
  });

  it('consistency "primary" reads the primary', async () => {
    // Prepare
    const api = await load({ REPLICA_URLS: JSON.stringify({ primary: [urlOf('r1')] }) });
    // Act
    const body = await read(api, { consistency: 'primary' });
    // Assess
    expect(body.rows).toEqual([{ v: 'primary' }]);
    expect(body.servedBy).toBe('primary');
  });

  it('rejects an unknown consistency with a 400 naming the field', async () => {
    // Prepare
    const api = await load({ REPLICA_URLS: JSON.stringify({ primary: [urlOf('r1')] }) });
    // Act
    const response = await invoke(api.handler, { ...READ, consistency: 'eventual' });
    // Assess
    expect(response.status).toBe(400);
    expect(JSON.stringify(response.body)).toContain('consistency');
  });

  it('writes and locking reads go to the primary', async () => {
    // Prepare
    const api = await load({ REPLICA_URLS: JSON.stringify({ primary: [urlOf('r1')] }) });
    // Act
    const insert = await invoke(api.handler, {
      sql: 'INSERT INTO items VALUES ($1, $2) RETURNING v',
      params: [2, 'written'],
    });
    const locking = await invoke(api.handler, {
      sql: 'SELECT v FROM items WHERE id = $1 FOR UPDATE',
      params: [1],
    });
    // Assess
    expect(insert.status).toBe(200);
    expect((insert.body as unknown as Body).servedBy).toBe('primary');
    const onPrimary = await clients.get('primary')?.query('SELECT v FROM items WHERE id = 2');
    const onReplica = await clients.get('r1')?.query('SELECT v FROM items WHERE id = 2');
    expect(onPrimary?.rows).toEqual([{ v: 'written' }]);
    expect(onReplica?.rows).toEqual([]);
    expect((locking.body as unknown as Body).rows).toEqual([{ v: 'primary' }]);
    await clients.get('primary')?.query('DELETE FROM items WHERE id = 2');
  });

  it('skips an endpoint that is not a standby unless told to trust it (default skip)', async () => {
    // Prepare
    const api = await load({
      REPLICA_URLS: JSON.stringify({ primary: [urlOf('r1')] }),
      REPLICA_NON_STANDBY: 'skip',
    });
    // Act
    const body = await read(api);
    // Assess
    expect(body.rows).toEqual([{ v: 'primary' }]);
    expect(body.servedBy).toBe('primary');
    expect(body.skippedReplicas).toEqual([{ name: 'primary/r1', reason: 'not-a-standby' }]);
  });

  it('skips a dead replica, opens its breaker and reports it in GET /health', async () => {
    // Prepare
    const api = await load({
      REPLICA_URLS: JSON.stringify({ primary: [DEAD_DATABASE_URL, urlOf('r2')] }),
      DB_BREAKER_FAILURES: '2',
      DB_BREAKER_HALF_OPEN_MS: '60000',
      // A failed probe is trusted for the interval: 1 ms lets each read probe again.
      REPLICA_LAG_CHECK_INTERVAL_MS: '1',
    });
    // Act
    const bodies = [];
    for (let i = 0; i < 6; i++) bodies.push(await read(api));
    const health = await invoke(api.handler, null, { method: 'GET', path: '/health' });
    // Assess: every read answered by the live replica; the dead one first failed, then skipped.
    expect(bodies.map((b) => b.rows[0]?.v)).toEqual(Array(6).fill('r2'));
    const reasons = bodies.flatMap((b) => b.skippedReplicas ?? []).map((s) => s.reason);
    expect(reasons).toEqual(['probe-failed', 'probe-failed', 'breaker-open']);
    expect(health.status).toBe(503);
    const replicas = (health.body as { replicas: Record<string, unknown>[] }).replicas;
    expect(replicas).toEqual([
      expect.objectContaining({ name: 'primary/r1', breaker: 'open', state: 'breaker-open' }),
      expect.objectContaining({ name: 'primary/r2', breaker: 'closed', state: 'ok', lagMs: 0 }),
    ]);
  });

  it('falls back to the primary when the only replica is dead, and says so', async () => {
    // Prepare
    const api = await load({ REPLICA_URLS: JSON.stringify({ primary: [DEAD_DATABASE_URL] }) });
    // Act
    const body = await read(api);
    // Assess
    expect(body.rows).toEqual([{ v: 'primary' }]);
    expect(body.servedBy).toBe('primary');
    expect(body.skippedReplicas).toEqual([{ name: 'primary/r1', reason: 'probe-failed' }]);
  });

  it("routes a shard key to the shard, then to that shard's replica", async () => {
    // Prepare: one shard (s1, the primary database) whose replica is r2.
    const api = await load({
      SHARD_MAP: JSON.stringify({ version: 1, shards: ['s1'] }),
      SHARD_URLS: JSON.stringify({ s1: PRIMARY_URL }),
      REPLICA_URLS: JSON.stringify({ s1: [urlOf('r2')] }),
    });
    // Act
    const replicaRead = await read(api, { shardKey: 'user:1' });
    const primaryRead = await read(api, { shardKey: 'user:1', consistency: 'primary' });
    const unsharded = await read(api);
    // Assess
    expect(replicaRead).toMatchObject({
      rows: [{ v: 'r2' }],
      shard: 's1',
      servedBy: 'replica:s1/r1',
    });
    expect(primaryRead).toMatchObject({
      rows: [{ v: 'primary' }],
      shard: 's1',
      servedBy: 'primary',
    });
    // The primary target has no replicas: no servedBy.
    expect(unsharded.rows).toEqual([{ v: 'primary' }]);
    expect(unsharded.servedBy).toBeUndefined();
  });

  it('fails the cold start when REPLICA_URLS names an unknown target', async () => {
    // Act
    const attempt = load({ REPLICA_URLS: JSON.stringify({ s9: [urlOf('r1')] }) });
    // Assess
    await expect(attempt).rejects.toThrow(/REPLICA_URLS.*unknown target\(s\) s9/);
  });

  describe('with an injected lag probe (runQuery)', () => {
    const lags = new Map<string, number>();
    const pools: Database[] = [];
    const depsWith = (env: Record<string, string>): QueryDeps => {
      const config = loadConfig({ ...baseEnv, ...env });
      const guardOf = (name: string) =>
        createTargetGuard(name, targetGuardOptionsFromConfig(config), {
          metrics: noMetrics,
          logger: { warn: () => undefined },
        });
      const poolOf = (url: string) => {
        const db = createDatabase(testDatabaseOptions(url));
        pools.push(db);
        return db;
      };
      const urls = new Map<Database, string>();
      const deps: QueryDeps = {
        db: poolOf(PRIMARY_URL),
        guard: guardOf('primary'),
        sql: createSqlAnalyzer({ cacheEntries: 100 }),
        policy: queryPolicyFromConfig(config),
        metrics: noMetrics,
        replicas: createQueryReplicas(
          config,
          (url) => {
            const db = poolOf(url);
            urls.set(db, url);
            return db;
          },
          guardOf,
          {
            metrics: noMetrics,
            probe: async (db) => ({ inRecovery: true, lagMs: lags.get(urls.get(db) ?? '') ?? 0 }),
          },
        ),
      };
      return deps;
    };

    afterAll(async () => {
      await Promise.all(pools.map((db) => db.end()));
    });

    it('skips a replica whose lag is above REPLICA_MAX_LAG_MS and uses the one within it', async () => {
      // Prepare
      lags.set(urlOf('r1'), 12_000);
      lags.set(urlOf('r2'), 200);
      const deps = depsWith({
        REPLICA_URLS: JSON.stringify({ primary: [urlOf('r1'), urlOf('r2')] }),
        REPLICA_MAX_LAG_MS: '5000',
      });
      // Act
      const body = JSON.parse(await runQuery(READ, deps)) as Body;
      // Assess
      expect(body.rows).toEqual([{ v: 'r2' }]);
      expect(body.servedBy).toBe('replica:primary/r2');
      expect(body.skippedReplicas).toEqual([
        { name: 'primary/r1', reason: 'lagging', lagMs: 12_000 },
      ]);
    });

    /**
     * A cache that calls `load` itself (always a miss) after waiting like a real one can (a
     * peer's lock, Redis round trips), behind a relation check that takes `relationsMs`.
     */
    const slowCache = (delays: { relationsMs?: number; loadMs?: number }) => {
      const ttls: number[] = [];
      const cache: QueryCacheDeps = {
        cache: {
          getOrLoad: async (request, load) => {
            ttls.push(request.ttlMs ?? Number.NaN);
            await sleep(delays.loadMs ?? 0);
            return { payload: await load(), outcome: { level: 'miss' } };
          },
          bumpTables: async () => undefined,
          bumpTablesStrict: async () => undefined,
          stats: () => {
            throw new Error('not used');
          },
        },
        relationsOf: () => ({
          allWatched: async () => {
            await sleep(delays.relationsMs ?? 0);
            return true;
          },
        }),
        target: 'primary',
        role: 'app',
        defaultTtlMs: 60_000,
        maxTtlMs: 300_000,
        hasRedis: false,
      };
      return { cache, ttls };
    };
    const nearLimitEnv = {
      REPLICA_URLS: JSON.stringify({ primary: [urlOf('r1')] }),
      REPLICA_MAX_LAG_MS: '1000',
    };

    it('reads the primary when the lag bound passes the limit while the cache waits to load', async () => {
      // Prepare: 900 ms of lag at the choice; the cache waits 150 ms before loading.
      lags.set(urlOf('r1'), 900);
      const { cache } = slowCache({ loadMs: 150 });
      const deps = { ...depsWith(nearLimitEnv), cache };
      // Act
      const body = JSON.parse(await runQuery(READ, deps)) as Body;
      // Assess: the result would stay in L1 for CACHE_L1_TTL_MS from the load on: too old.
      expect(body.rows).toEqual([{ v: 'primary' }]);
      expect(body.servedBy).toBe('primary');
      expect(body.skippedReplicas).toEqual([
        { name: 'primary/r1', reason: 'lagging', lagMs: expect.any(Number) },
      ]);
      expect(body.skippedReplicas?.[0]?.lagMs).toBeGreaterThan(1000);
    });

    it('caps the cache TTL of a replica result by the lag bound at the cache call', async () => {
      // Prepare: 900 ms of lag at the choice; the relation check takes 60 ms.
      lags.set(urlOf('r1'), 900);
      const { cache, ttls } = slowCache({ relationsMs: 60 });
      const deps = { ...depsWith(nearLimitEnv), cache };
      // Act
      const body = JSON.parse(await runQuery(READ, deps)) as Body;
      // Assess: served by the replica; the entry expires before its data is 1,000 ms old.
      expect(body.servedBy).toBe('replica:primary/r1');
      expect(ttls).toHaveLength(1);
      expect(ttls[0]).toBeGreaterThanOrEqual(1);
      expect(ttls[0]).toBeLessThanOrEqual(1000 - 900 - 60);
    });

    it('reads the primary when the replica cancels the read (conflict with recovery, 40001)', async () => {
      // Prepare: on r1 the read fails as a standby's recovery conflict does.
      lags.set(urlOf('r1'), 0);
      await clients.get('r1')?.query(`CREATE OR REPLACE FUNCTION where_am_i() RETURNS text
        LANGUAGE plpgsql AS $$ BEGIN
          RAISE EXCEPTION USING ERRCODE = '40001',
            MESSAGE = 'canceling statement due to conflict with recovery';
        END $$`);
      await clients
        .get('primary')
        ?.query(
          "CREATE OR REPLACE FUNCTION where_am_i() RETURNS text LANGUAGE sql AS $$ SELECT 'primary' $$",
        );
      const deps = depsWith({ REPLICA_URLS: JSON.stringify({ primary: [urlOf('r1')] }) });
      // Act
      const body = JSON.parse(
        await runQuery({ sql: 'SELECT where_am_i() AS v', params: [] }, deps),
      ) as Body;
      // Assess
      expect(body.rows).toEqual([{ v: 'primary' }]);
      expect(body.servedBy).toBe('primary');
      expect(body.skippedReplicas).toEqual([{ name: 'primary/r1', reason: 'failed' }]);
    });

    it('reads the primary when every replica lags too much', async () => {
      // Prepare
      lags.set(urlOf('r1'), 9_000);
      const deps = depsWith({
        REPLICA_URLS: JSON.stringify({ primary: [urlOf('r1')] }),
        REPLICA_MAX_LAG_MS: '5000',
      });
      // Act
      const body = JSON.parse(await runQuery(READ, deps)) as Body;
      // Assess
      expect(body.rows).toEqual([{ v: 'primary' }]);
      expect(body.servedBy).toBe('primary');
    });
  });

  it('caches a replica-served result apart from primary reads, expiring before REPLICA_MAX_LAG_MS', async () => {
    // Prepare
    const prefix = `dbopt_it_replica_${process.pid}_${Date.now()}`;
    const redis = new Redis(TEST_REDIS_URL);
    const api = await load({
      REPLICA_URLS: JSON.stringify({ primary: [urlOf('r1')] }),
      CACHE_ENABLED: 'true',
      REDIS_URL: TEST_REDIS_URL,
      CACHE_KEY_PREFIX: prefix,
      CACHE_DEFAULT_TTL_MS: '60000',
      REPLICA_MAX_LAG_MS: '3000',
    });
    try {
      // Act
      const fromReplica = await read(api);
      const again = await read(api);
      const primary = await read(api, { consistency: 'primary' });
      const keys = await redis.keys(`${prefix}:rc:*`);
      const ttls = await Promise.all(
        keys.filter((k) => !k.endsWith(':lock')).map((k) => redis.pttl(k)),
      );
      // Assess
      expect(fromReplica).toMatchObject({
        rows: [{ v: 'r1' }],
        cache: 'miss',
        servedBy: 'replica:primary/r1',
      });
      expect(again.rows).toEqual([{ v: 'r1' }]);
      expect(['l1', 'l2']).toContain(again.cache);
      expect(primary).toMatchObject({
        rows: [{ v: 'primary' }],
        cache: 'miss',
        servedBy: 'primary',
      });
      expect(ttls).toHaveLength(2);
      const sorted = [...ttls].sort((a, b) => a - b);
      expect(sorted[0]).toBeGreaterThan(0);
      expect(sorted[0]).toBeLessThanOrEqual(3_000);
      expect(sorted[1]).toBeGreaterThan(50_000);
    } finally {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    }
  });
});
