import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createShardRouter } from '#shared/sharding';
import { TEST_DATABASE_URL } from '../support/env.ts';
import { invoke, type LoadedHandler, loadHandler } from '../support/lambda.ts';

const QUERY = new URL('../../../functions/query/handler.ts', import.meta.url).href;
const SHARDS = ['s0', 's1', 's2'];
const SHARD_MAP = { version: 1, shards: SHARDS.map((name) => ({ name })) };
const shardUrl = (name: string) => {
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/dbopt_shard_it_${name}`;
  return url.toString();
};
const KEYS = Array.from({ length: 30 }, (_, i) => `user:${i}`);

describe('query API shard routing with three real PostgreSQL databases', () => {
  const router = createShardRouter(SHARD_MAP);
  let api: LoadedHandler;
  let admin: pg.Client;

  beforeAll(async () => {
    admin = new pg.Client(TEST_DATABASE_URL);
    await admin.connect();
    for (const name of SHARDS) {
      const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [
        `dbopt_shard_it_${name}`,
      ]);
      if (exists.rowCount === 0) await admin.query(`CREATE DATABASE dbopt_shard_it_${name}`);
      const shard = new pg.Client(shardUrl(name));
      await shard.connect();
      await shard.query(
        'DROP TABLE IF EXISTS accounts; CREATE TABLE accounts (id text PRIMARY KEY, home text NOT NULL, balance int NOT NULL DEFAULT 0)',
      );
      await shard.query(
        'DROP TABLE IF EXISTS shard_only; CREATE TABLE shard_only (id text PRIMARY KEY)',
      );
      await shard.query('INSERT INTO shard_only VALUES ($1)', [name]);
      const mine = KEYS.filter((key) => router.route(key).shard === name);
      for (const key of mine) {
        await shard.query('INSERT INTO accounts (id, home) VALUES ($1, $2)', [key, name]);
      }
      await shard.end();
    }
    await admin.query(
      'DROP TABLE IF EXISTS accounts; CREATE TABLE accounts (id text PRIMARY KEY, home text NOT NULL, balance int NOT NULL DEFAULT 0)',
    );
    api = await loadHandler(QUERY, {
      DATABASE_URL: TEST_DATABASE_URL,
      DB_SSL_MODE: 'disable',
      QUERY_ALLOW_WRITES: 'true',
      SHARD_MAP: JSON.stringify(SHARD_MAP),
      SHARD_URLS: JSON.stringify(Object.fromEntries(SHARDS.map((n) => [n, shardUrl(n)]))),
    });
  });

  afterAll(async () => {
    await api.shutdown();
    await admin.query('DROP TABLE IF EXISTS accounts');
    await admin.end();
  });

  it('spreads the test keys over every shard', () => {
    expect(new Set(KEYS.map((k) => router.route(k).shard))).toEqual(new Set(SHARDS));
  });

  it.each(KEYS)('routes %s to the shard that holds its row', async (key) => {
    // Act
    const response = await invoke(api.handler, {
      sql: 'SELECT id, home FROM accounts WHERE id = $1',
      params: [key],
      shardKey: key,
    });
    // Assess
    const expected = router.route(key).shard;
    expect(response.status, response.raw).toBe(200);
    expect(response.body.rows).toEqual([{ id: key, home: expected }]);
    expect(response.body.shard).toBe(expected);
  });

  it('sends a statement without shardKey to the primary', async () => {
    const response = await invoke(api.handler, { sql: 'SELECT count(*)::int AS n FROM accounts' });
    expect(response.body.rows).toEqual([{ n: 0 }]);
    expect(response.body.shard).toBeUndefined();
  });

  it('writes on the owning shard, and the cached read of that shard sees the write', async () => {
    // Prepare
    const key = 'user:7';
    const read = () =>
      invoke(api.handler, {
        sql: 'SELECT balance FROM accounts WHERE id = $1',
        params: [key],
        shardKey: key,
      });
    expect((await read()).body.rows).toEqual([{ balance: 0 }]);
    expect((await read()).body.cache).toBe('l1');
    // Act
    const write = await invoke(api.handler, {
      sql: 'UPDATE accounts SET balance = balance + 5 WHERE id = $1',
      params: [key],
      shardKey: key,
    });
    const after = await read();
    // Assess
    expect(write.body).toMatchObject({ rowCount: 1, shard: router.route(key).shard });
    expect(after.body.rows).toEqual([{ balance: 5 }]);
  });

  it('scatters a SELECT over every shard and merges ORDER BY … LIMIT and aggregates', async () => {
    // Act
    const top = await invoke(api.handler, {
      sql: 'SELECT id, home FROM accounts ORDER BY id LIMIT 5 OFFSET 1',
      scatter: true,
    });
    const totals = await invoke(api.handler, {
      sql: 'SELECT home, count(*) AS n, min(id) AS first FROM accounts GROUP BY home ORDER BY home',
      scatter: true,
    });
    // Assess: the same answers one database holding every row would give.
    const sorted = [...KEYS].sort();
    expect(top.status, top.raw).toBe(200);
    expect(top.body.rows).toEqual(
      sorted.slice(1, 6).map((id) => ({ id, home: router.route(id).shard })),
    );
    expect(top.body).toMatchObject({ cache: 'bypass', cacheReason: 'scatter', rowCount: 5 });
    expect(totals.body.rows).toEqual(
      SHARDS.map((home) => {
        const mine = sorted.filter((k) => router.route(k).shard === home);
        return { home, n: String(mine.length), first: mine[0] };
      }),
    );
  });

  it('refuses a shape it cannot merge correctly with 400 SCATTER_UNSUPPORTED', async () => {
    const response = await invoke(api.handler, {
      sql: 'SELECT count(DISTINCT home) FROM accounts',
      scatter: true,
    });
    expect(response.status).toBe(400);
    expect((response.body.error as { code: string }).code).toBe('SCATTER_UNSUPPORTED');
  });

  it.each([
    ['fail', 503],
    ['partial', 200],
  ] as const)('with one shard down and failurePolicy %s answers %i', async (policy, status) => {
    // Prepare: s2 points at a port nothing listens on.
    const degraded = await loadHandler(QUERY, {
      DATABASE_URL: TEST_DATABASE_URL,
      DB_SSL_MODE: 'disable',
      DB_CONNECT_TIMEOUT_MS: '500',
      SHARD_MAP: JSON.stringify(SHARD_MAP),
      SHARD_URLS: JSON.stringify({
        s0: shardUrl('s0'),
        s1: shardUrl('s1'),
        s2: 'postgres://postgres@127.0.0.1:1/none',
      }),
    });
    // Act
    const response = await invoke(degraded.handler, {
      sql: 'SELECT count(*) AS n FROM accounts',
      scatter: true,
      failurePolicy: policy,
    });
    const health = await invoke(degraded.handler, null, {
      method: 'GET',
      raw: true,
      path: '/health',
    });
    // Assess
    expect(health.status).toBe(503);
    expect(health.body).toMatchObject({ status: 'degraded' });
    expect(
      (health.body.targets as { name: string; reachable: boolean }[]).map((t) => [
        t.name,
        t.reachable,
      ]),
    ).toEqual([
      ['primary', true],
      ['s0', true],
      ['s1', true],
      ['s2', false],
    ]);
    expect(response.status, response.raw).toBe(status);
    if (policy === 'fail') {
      expect(response.body.error).toMatchObject({
        code: 'SHARDS_UNAVAILABLE',
        failedShards: ['s2'],
      });
    } else {
      const expected = KEYS.filter((k) => router.route(k).shard !== 's2').length;
      expect(response.body).toMatchObject({
        rows: [{ n: String(expected) }],
        missingShards: ['s2'],
      });
    }
  });

  it('reports every target healthy on GET /health', async () => {
    const health = await invoke(api.handler, null, { method: 'GET', raw: true, path: '/health' });
    expect(health.status).toBe(200);
    expect(health.body.status).toBe('ok');
    expect(
      (health.body.targets as { name: string; breaker: string }[]).map((t) => [t.name, t.breaker]),
    ).toEqual([
      ['primary', 'closed'],
      ['s0', 'closed'],
      ['s1', 'closed'],
      ['s2', 'closed'],
    ]);
  });

  it('caches reads of a table that exists only on the shards (catalog checked per target)', async () => {
    const read = () =>
      invoke(api.handler, { sql: 'SELECT id FROM shard_only', shardKey: 'user:3' });
    const first = await read();
    const second = await read();
    expect(first.body.rows).toEqual([{ id: router.route('user:3').shard }]);
    expect([first.body.cache, second.body.cache]).toEqual(['miss', 'l1']);
  });

  it('rejects a shardKey of the wrong type, naming the field', async () => {
    const response = await invoke(api.handler, { sql: 'SELECT 1', shardKey: { id: 1 } });
    expect(response.status).toBe(400);
    expect((response.body.error as { message: string }).message).toContain('shardKey');
  });
});

describe('shardKey without a shard map', () => {
  it('answers 400 SHARDING_NOT_CONFIGURED', async () => {
    const api = await loadHandler(QUERY, {
      DATABASE_URL: TEST_DATABASE_URL,
      DB_SSL_MODE: 'disable',
    });
    const response = await invoke(api.handler, { sql: 'SELECT 1', shardKey: 'user:1' });
    await api.shutdown();
    expect(response.status).toBe(400);
    expect((response.body.error as { code: string }).code).toBe('SHARDING_NOT_CONFIGURED');
  });
});
