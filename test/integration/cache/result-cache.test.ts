import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis, type RedisOptions } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CacheRedisClient,
  type CacheRequest,
  createResultCache,
  deriveEntryKey,
  type ResultCacheOptions,
} from '#shared/cache';
import { type MetricsSink, noMetrics } from '#shared/metrics';
import { TEST_REDIS_URL } from '../support/env.ts';
import { type RedisRelay, startRedisRelay } from './redis-proxy.ts';

// One prefix per run of this file: nothing else touches these keys; afterAll deletes them.
const prefix = `itest-rc-${randomUUID().slice(0, 8)}`;
const clientOptions: RedisOptions = {
  lazyConnect: true,
  enableOfflineQueue: false,
  commandTimeout: 200,
  maxRetriesPerRequest: 1,
  autoResendUnfulfilledCommands: false,
  retryStrategy: () => 20,
};
const clients: Redis[] = [];
const newClient = (url = TEST_REDIS_URL, overrides: RedisOptions = {}): Redis => {
  const client = new Redis(url, { ...clientOptions, ...overrides });
  client.on('error', () => undefined); // connection errors surface as bypass outcomes
  clients.push(client);
  return client;
};
let admin: Redis;

const quietLogger = { warn: () => undefined };
const baseOptions = (redis: CacheRedisClient | undefined): ResultCacheOptions => ({
  redis,
  keyPrefix: prefix,
  l1MaxBytes: 10_000_000,
  l1TtlMs: 1_000,
  defaultTtlMs: 60_000,
  maxTtlMs: 120_000,
  maxEntryBytes: 100_000,
  lockTtlMs: 2_000,
  lockWaitMs: 500,
  breaker: { consecutiveFailures: 3, halfOpenAfterMs: 500 },
  metrics: noMetrics,
  logger: quietLogger,
});
/** A cache on its own Redis connection: another Lambda instance. */
const newInstance = (overrides: Partial<ResultCacheOptions> = {}) =>
  createResultCache({ ...baseOptions(newClient()), ...overrides });

/** A request on a fresh key, reading `users` and `public.orders`. */
const freshRequest = (overrides: Partial<CacheRequest> = {}): CacheRequest => ({
  sql: 'SELECT u.id, count(o.id) FROM users u JOIN public.orders o ON o.user_id = u.id WHERE u.id = $1 GROUP BY u.id',
  params: [randomUUID()],
  target: 'main',
  role: 'app',
  tablesRead: ['public.orders', 'users'],
  ...overrides,
});
const counter = (label = 'payload') => {
  let calls = 0;
  const load = async () => {
    calls += 1;
    return `{"${label}":${calls}}`;
  };
  return { load, calls: () => calls };
};

beforeAll(async () => {
  admin = newClient();
  await admin.connect();
});

afterAll(async () => {
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    if (keys.length > 0) await admin.del(...keys);
    cursor = next;
  } while (cursor !== '0');
  for (const client of clients) client.disconnect();
});

describe('result cache on real Redis', () => {
  it('misses, then hits L2 on another instance, then hits that instance L1', async () => {
    // Prepare
    const first = newInstance();
    const second = newInstance();
    const request = freshRequest();
    const { load, calls } = counter();
    // Act
    const miss = await first.getOrLoad(request, load);
    const l2 = await second.getOrLoad(request, load);
    const l1 = await second.getOrLoad(request, load);
    // Assess
    expect(miss).toEqual({ payload: '{"payload":1}', outcome: { level: 'miss' } });
    expect(l2).toEqual({ payload: '{"payload":1}', outcome: { level: 'l2' } });
    expect(l1).toEqual({ payload: '{"payload":1}', outcome: { level: 'l1' } });
    expect(calls()).toBe(1);
    const ttlMs = await admin.pttl(deriveEntryKey(prefix, request));
    expect(ttlMs).toBeGreaterThan(59_000);
  });

  it('keeps the table versions of a target under one hash tag, without a TTL', async () => {
    // Prepare
    const cache = newInstance();
    // Act
    await cache.getOrLoad(freshRequest(), counter().load);
    // Assess
    const keys = await admin.keys(`${prefix}:{tv:main}:*`);
    expect(keys.sort()).toEqual([`${prefix}:{tv:main}:orders`, `${prefix}:{tv:main}:users`]);
    expect(await admin.pttl(`${prefix}:{tv:main}:users`)).toBe(-1);
  });

  it('after bumpTables, reads miss on this instance and (once its L1 expired) on another', async () => {
    // Prepare
    const writer = newInstance();
    const reader = newInstance({ l1TtlMs: 50 });
    const request = freshRequest();
    const { load } = counter();
    await writer.getOrLoad(request, load);
    expect((await reader.getOrLoad(request, load)).outcome.level).toBe('l2');
    // Act: a write to the schema-qualified name invalidates the unqualified read of users
    await writer.bumpTables('main', ['public.users']);
    const onWriter = await writer.getOrLoad(request, load);
    await sleep(60);
    const onReader = await reader.getOrLoad(request, load);
    // Assess
    expect(onWriter).toEqual({ payload: '{"payload":2}', outcome: { level: 'miss' } });
    expect(onReader).toEqual({ payload: '{"payload":2}', outcome: { level: 'l2' } });
  });

  it('stores the versions read before the load: a write during the load is never served', async () => {
    // Prepare
    const reader = newInstance();
    const writer = newInstance();
    const request = freshRequest();
    // Act: the load sees the pre-write data, then the write commits and bumps
    const during = await reader.getOrLoad(request, async () => {
      const payload = '{"count":1}';
      await writer.bumpTables('main', ['orders']);
      return payload;
    });
    const later = await newInstance().getOrLoad(request, async () => '{"count":2}');
    // Assess
    expect(during.outcome.level).toBe('miss');
    expect(later).toEqual({ payload: '{"count":2}', outcome: { level: 'miss' } });
  });

  it('runs one load for 20 concurrent misses on one key (single flight)', async () => {
    // Prepare
    const cache = newInstance();
    const request = freshRequest();
    let loads = 0;
    const load = async () => {
      loads += 1;
      await sleep(30);
      return '{"rows":[]}';
    };
    // Act
    const results = await Promise.all(
      Array.from({ length: 20 }, () => cache.getOrLoad(request, load)),
    );
    // Assess
    expect(loads).toBe(1);
    expect(results.every((r) => r.payload === '{"rows":[]}')).toBe(true);
  });

  it('runs one load when two instances miss one key together (Redis lock)', async () => {
    // Prepare
    const instances = [newInstance(), newInstance(), newInstance()];
    const request = freshRequest();
    let loads = 0;
    const load = async () => {
      loads += 1;
      await sleep(80);
      return `{"loaded":${loads}}`;
    };
    // Act
    const results = await Promise.all(instances.map((c) => c.getOrLoad(request, load)));
    // Assess: guaranteed when the winner's load ends within lockWaitMs (500 ms here)
    expect(loads).toBe(1);
    expect(results.map((r) => r.outcome.level).sort()).toEqual(['l2', 'l2', 'miss']);
    expect(await admin.exists(`${deriveEntryKey(prefix, request)}:lock`)).toBe(0);
  });

  it('loads itself when the lock holder does not deliver within lockWaitMs', async () => {
    // Prepare
    const cache = newInstance({ lockWaitMs: 50 });
    const request = freshRequest();
    await admin.set(`${deriveEntryKey(prefix, request)}:lock`, 'someone-else', 'PX', 5_000);
    // Act
    const startedAt = performance.now();
    const result = await cache.getOrLoad(request, async () => 'mine');
    const elapsedMs = performance.now() - startedAt;
    // Assess
    expect(result).toEqual({ payload: 'mine', outcome: { level: 'miss' } });
    expect(elapsedMs).toBeGreaterThanOrEqual(45);
    expect(elapsedMs).toBeLessThan(500);
  });

  it('does not store an entry over maxEntryBytes, and still answers', async () => {
    // Prepare
    const cache = newInstance({ maxEntryBytes: 1_000 });
    const request = freshRequest();
    // Act
    const result = await cache.getOrLoad(request, async () => 'x'.repeat(1_001));
    // Assess
    expect(result.outcome).toEqual({ level: 'bypass', reason: 'too-large' });
    expect(result.payload).toHaveLength(1_001);
    expect(await admin.exists(deriveEntryKey(prefix, request))).toBe(0);
  });

  it.each([
    ['a foreign string', (key: string) => admin.set(key, '{"p":"stale","v":[],"t":0}')],
    ['a value of another type', (key: string) => admin.hset(key, 'p', 'stale')],
  ])('treats %s in the entry key as garbage, bypasses and overwrites it', async (_name, plant) => {
    // Prepare
    const recorded: string[] = [];
    const metrics: MetricsSink = { addMetric: (name) => void recorded.push(name) };
    const cache = newInstance({ metrics });
    const request = freshRequest();
    await plant(deriveEntryKey(prefix, request));
    // Act
    const first = await cache.getOrLoad(request, async () => 'fresh');
    const elsewhere = await newInstance().getOrLoad(request, async () => 'again');
    // Assess
    expect(first).toEqual({
      payload: 'fresh',
      outcome: { level: 'bypass', reason: 'redis-garbage' },
    });
    expect(recorded).toEqual(
      expect.arrayContaining(['CacheGarbage', 'CacheBypass', 'CacheBypass_RedisGarbage']),
    );
    expect(elsewhere).toEqual({ payload: 'fresh', outcome: { level: 'l2' } });
  });

  it('re-creates an evicted version key with a fresh value, so old entries never match', async () => {
    // Prepare
    const cache = newInstance({ l1TtlMs: 1 });
    const request = freshRequest();
    await cache.getOrLoad(request, async () => 'before');
    // Act: the version key disappears (eviction, FLUSH by someone, failover without AOF)
    await admin.del(`${prefix}:{tv:main}:users`);
    await sleep(5);
    const afterLoss = await cache.getOrLoad(request, async () => 'after');
    // Assess
    expect(afterLoss).toEqual({ payload: 'after', outcome: { level: 'miss' } });
    expect(await admin.get(`${prefix}:{tv:main}:users`)).toMatch(/^\d{16,20}$/);
  });
});

describe('result cache when Redis fails', () => {
  it('bypasses an unreachable Redis, then adds ~0 latency once the breaker is open', async () => {
    // Prepare
    const dead = newClient('redis://127.0.0.1:1', { commandTimeout: 50 });
    const recorded: string[] = [];
    const metrics: MetricsSink = { addMetric: (name) => void recorded.push(name) };
    const cache = createResultCache({ ...baseOptions(dead), metrics, logger: quietLogger });
    // Act
    const first = await cache.getOrLoad(freshRequest(), async () => 'from-db');
    for (let i = 0; i < 5; i++) await cache.getOrLoad(freshRequest(), async () => 'from-db');
    const startedAt = performance.now();
    const open = [];
    for (let i = 0; i < 100; i++) {
      open.push(await cache.getOrLoad(freshRequest(), async () => 'from-db'));
    }
    const elapsedMs = performance.now() - startedAt;
    // Assess
    expect(first).toEqual({
      payload: 'from-db',
      outcome: { level: 'bypass', reason: 'redis-unavailable' },
    });
    expect(cache.stats().breaker).toBe('open');
    expect(open.every((r) => r.outcome.reason === 'breaker-open')).toBe(true);
    expect(elapsedMs).toBeLessThan(50);
    expect(recorded).toEqual(
      expect.arrayContaining(['CacheBypass_RedisUnavailable', 'CacheBypass_BreakerOpen']),
    );
  });

  describe('behind a relay that can stop and stall', () => {
    let relay: RedisRelay;
    beforeAll(async () => {
      relay = await startRedisRelay(Number(new URL(TEST_REDIS_URL).port || 6379));
    });
    afterAll(() => relay.stop());

    it('serves from the database while Redis is down and uses L2 again after it returns', async () => {
      // Prepare
      const url = `redis://127.0.0.1:${relay.port}`;
      const cache = createResultCache({
        ...baseOptions(newClient(url)),
        l1TtlMs: 1,
        breaker: { consecutiveFailures: 2, halfOpenAfterMs: 100 },
      });
      const request = freshRequest();
      const { load } = counter();
      await cache.getOrLoad(request, load);
      // Act
      await relay.stop();
      await sleep(5);
      const down = await Promise.all([1, 2, 3].map(() => cache.getOrLoad(freshRequest(), load)));
      await relay.start();
      await sleep(250); // reconnect (retryStrategy 20 ms) and half-open (100 ms)
      const back = [];
      for (let i = 0; i < 3; i++) {
        await sleep(3); // past l1TtlMs, so each read goes to L2
        back.push(await cache.getOrLoad(request, load));
      }
      // Assess
      expect(down.every((r) => r.outcome.level === 'bypass')).toBe(true);
      expect(back.at(-1)).toEqual({ payload: '{"payload":1}', outcome: { level: 'l2' } });
    });

    it('bypasses a stalled Redis after commandTimeout', async () => {
      // Prepare
      const client = newClient(`redis://127.0.0.1:${relay.port}`, { commandTimeout: 50 });
      const cache = createResultCache(baseOptions(client));
      await cache.getOrLoad(freshRequest(), counter().load);
      // Act
      relay.stall(true);
      const startedAt = performance.now();
      const result = await cache.getOrLoad(freshRequest(), async () => 'db');
      const elapsedMs = performance.now() - startedAt;
      relay.stall(false);
      // Assess
      expect(result).toEqual({
        payload: 'db',
        outcome: { level: 'bypass', reason: 'redis-unavailable' },
      });
      expect(elapsedMs).toBeLessThan(150);
    });
  });

  it('after a failed bump, distrusts L2 (no stale hit) until the bump is retried', async () => {
    // Prepare: the writer's Redis rejects scripts (the bump) while reads still work
    const real = newClient();
    let failScripts = true;
    const flaky: CacheRedisClient = {
      get status() {
        return real.status;
      },
      connect: () => real.connect(),
      pipeline: () => real.pipeline(),
      eval: ((...args: Parameters<Redis['eval']>) =>
        failScripts ? Promise.reject(new Error('injected')) : real.eval(...args)) as Redis['eval'],
    };
    const recorded: string[] = [];
    const metrics: MetricsSink = { addMetric: (name) => void recorded.push(name) };
    const writer = createResultCache({ ...baseOptions(flaky), metrics, l1TtlMs: 1 });
    const other = newInstance({ l1TtlMs: 1 });
    const request = freshRequest();
    await other.getOrLoad(request, async () => 'pre-write');
    // Act
    await writer.bumpTables('main', ['users']);
    const distrusted = await writer.getOrLoad(request, async () => 'post-write');
    const stats = writer.stats();
    failScripts = false;
    const retried = await writer.getOrLoad(freshRequest({ params: ['other'] }), counter().load);
    await sleep(5);
    const afterRetry = await other.getOrLoad(request, async () => 'post-write');
    // Assess
    expect(distrusted).toEqual({
      payload: 'post-write',
      outcome: { level: 'bypass', reason: 'bump-failed' },
    });
    expect(stats.distrustRemainingMs).toBeGreaterThan(100_000);
    expect(stats.pendingBumps).toBe(1);
    expect(recorded).toContain('CacheBumpFailed');
    expect(retried.outcome.level).toBe('miss');
    expect(writer.stats().distrustRemainingMs).toBe(0);
    expect(afterRetry).toEqual({ payload: 'post-write', outcome: { level: 'miss' } });
  });

  it('bumpTablesStrict throws when the bump fails, bumpTables does not', async () => {
    // Prepare
    const dead = newClient('redis://127.0.0.1:1', { commandTimeout: 50 });
    const cache = createResultCache(baseOptions(dead));
    // Act
    const lenient = cache.bumpTables('main', ['users']);
    const strict = cache.bumpTablesStrict('main', ['users']);
    // Assess (both expectations attached at once: either promise may settle first)
    await Promise.all([
      expect(lenient).resolves.toBeUndefined(),
      expect(strict).rejects.toMatchObject({ code: 'CACHE_UNAVAILABLE' }),
    ]);
  });
});
