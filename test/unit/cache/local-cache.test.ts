import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { CacheOptionsError, type CacheRequest, createResultCache } from '#shared/cache';
import { noMetrics } from '#shared/metrics';
import { createLocalGenerations } from '../../../shared/cache/local-generations.ts';

const logger = { warn: () => undefined };
const options = {
  keyPrefix: 'unit',
  l1MaxBytes: 1_000_000,
  l1TtlMs: 60_000,
  defaultTtlMs: 60_000,
  maxTtlMs: 300_000,
  maxEntryBytes: 10_000,
  lockTtlMs: 5_000,
  lockWaitMs: 200,
  breaker: { consecutiveFailures: 3, halfOpenAfterMs: 1_000 },
  metrics: noMetrics,
  logger,
};
const request: CacheRequest = {
  sql: 'SELECT * FROM users u JOIN public.orders o ON o.user_id = u.id WHERE u.id = $1',
  params: [1],
  target: 'main',
  role: 'app',
  tablesRead: ['public.orders', 'users'],
};

describe('local generations', () => {
  it('detects a bump of any remembered table', () => {
    // Prepare
    const gens = createLocalGenerations();
    const keys = [gens.keyOf('main', 'a'), gens.keyOf('main', 'b')];
    const snapshot = gens.current(keys);
    // Act
    gens.bump([gens.keyOf('other', 'b')]);
    const unchangedAfterOtherTarget = gens.unchanged(keys, snapshot);
    gens.bump([gens.keyOf('main', 'b')]);
    // Assess
    expect(unchangedAfterOtherTarget).toBe(true);
    expect(gens.unchanged(keys, snapshot)).toBe(false);
  });
});

describe('createResultCache without Redis (L1 only)', () => {
  it('misses, then hits L1', async () => {
    // Prepare
    const cache = createResultCache(options);
    let loads = 0;
    const load = async () => `{"n":${++loads}}`;
    // Act
    const first = await cache.getOrLoad(request, load);
    const second = await cache.getOrLoad(request, load);
    // Assess
    expect(first).toEqual({ payload: '{"n":1}', outcome: { level: 'miss' } });
    expect(second).toEqual({ payload: '{"n":1}', outcome: { level: 'l1' } });
  });

  it('drops L1 entries that read a bumped table, named with or without schema', async () => {
    // Prepare
    const cache = createResultCache(options);
    let loads = 0;
    const load = async () => `{"n":${++loads}}`;
    const other = { ...request, sql: 'SELECT * FROM products', tablesRead: ['products'] };
    await cache.getOrLoad(request, load);
    await cache.getOrLoad(other, load);
    // Act
    await cache.bumpTables('main', ['orders']);
    const afterBump = await cache.getOrLoad(request, load);
    const untouched = await cache.getOrLoad(other, load);
    // Assess
    expect(afterBump).toEqual({ payload: '{"n":3}', outcome: { level: 'miss' } });
    expect(untouched.outcome).toEqual({ level: 'l1' });
  });

  it('runs one load for concurrent misses on one key (single flight)', async () => {
    // Prepare
    const cache = createResultCache(options);
    let loads = 0;
    const load = async () => {
      loads += 1;
      await sleep(20);
      return 'result';
    };
    // Act
    const results = await Promise.all(
      Array.from({ length: 20 }, () => cache.getOrLoad(request, load)),
    );
    // Assess
    expect(loads).toBe(1);
    expect(new Set(results.map((r) => r.payload))).toEqual(new Set(['result']));
  });

  it('does not join a flight that began before a local write', async () => {
    // Prepare
    const cache = createResultCache(options);
    const payloads = ['before-write', 'after-write'];
    const load = async () => {
      const payload = payloads.shift() ?? 'none';
      await sleep(20);
      return payload;
    };
    // Act
    const early = cache.getOrLoad(request, load);
    await cache.bumpTables('main', ['users']);
    const late = await cache.getOrLoad(request, load);
    const afterwards = await cache.getOrLoad(request, load);
    // Assess
    expect((await early).payload).toBe('before-write');
    expect(late.payload).toBe('after-write');
    expect(afterwards).toEqual({ payload: 'after-write', outcome: { level: 'l1' } });
  });

  it('serves but does not cache a payload over maxEntryBytes', async () => {
    // Prepare
    const cache = createResultCache({ ...options, maxEntryBytes: 10 });
    let loads = 0;
    const load = async () => `${++loads}`.padEnd(11, 'x');
    // Act
    const first = await cache.getOrLoad(request, load);
    const second = await cache.getOrLoad(request, load);
    // Assess
    expect(first.outcome).toEqual({ level: 'bypass', reason: 'too-large' });
    expect(second.payload).toBe('2xxxxxxxxxx');
  });

  it('counts multi-byte characters as bytes for maxEntryBytes', async () => {
    // Prepare
    const cache = createResultCache({ ...options, maxEntryBytes: 10 });
    // Act
    const result = await cache.getOrLoad(request, async () => 'éééééé');
    // Assess
    expect(result.outcome).toEqual({ level: 'bypass', reason: 'too-large' });
  });

  it('expires L1 entries after l1TtlMs', async () => {
    // Prepare
    const cache = createResultCache({ ...options, l1TtlMs: 20 });
    let loads = 0;
    const load = async () => `${++loads}`;
    await cache.getOrLoad(request, load);
    // Act
    await sleep(40);
    const result = await cache.getOrLoad(request, load);
    // Assess
    expect(result).toEqual({ payload: '2', outcome: { level: 'miss' } });
  });

  it('passes load errors through and caches nothing', async () => {
    // Prepare
    const cache = createResultCache(options);
    // Act
    const failed = cache.getOrLoad(request, async () => {
      throw new Error('db down');
    });
    // Assess
    await expect(failed).rejects.toThrow('db down');
    expect((await cache.getOrLoad(request, async () => 'ok')).outcome).toEqual({ level: 'miss' });
  });

  it.each([
    ['a prefix with a hash tag', { keyPrefix: 'a{b}' }],
    ['a default TTL over the maximum', { defaultTtlMs: 10, maxTtlMs: 5 }],
    ['a zero L1 size', { l1MaxBytes: 0 }],
  ])('rejects %s', (_name, change) => {
    expect(() => createResultCache({ ...options, ...change })).toThrow(CacheOptionsError);
  });
});
