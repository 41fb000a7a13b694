import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createShardRouter, DEFAULT_SLOT_COUNT, type ShardKey } from '#shared/sharding';
import { randomKeys, shardSpecs } from './fixtures/keys.ts';

const router64 = () => createShardRouter({ version: 1, shards: shardSpecs(64) });

describe('createShardRouter: golden routes', () => {
  // Pinned on purpose: if any of these change, the hash, its seed, the slot reduction or the
  // default directory changed, and every stored row would be on the wrong shard.
  it.each<[ShardKey, number, string]>([
    ['user:0', 10263, 'shard-40'],
    ['user:1', 9228, 'shard-36'],
    ['user:42', 7673, 'shard-29'],
    ['user:999999', 12852, 'shard-50'],
    ['order:2026-01-01:17', 246, 'shard-0'],
    ['', 552, 'shard-2'],
    ['a', 7846, 'shard-30'],
    ['café', 7288, 'shard-28'],
    ['顧客:42', 521, 'shard-2'],
    ['key🙂x', 11190, 'shard-43'],
    [42, 12504, 'shard-48'],
    [-7, 4237, 'shard-16'],
    [3.5, 14293, 'shard-55'],
  ])('%j → slot %d on %s (64 shards)', (key, slot, shard) => {
    // Prepare
    const router = router64();
    // Act
    const route = router.route(key);
    // Assess
    expect(route).toEqual({ slot, shard });
  });
});

describe('createShardRouter: determinism across processes', () => {
  it('routes 2,000 keys in a child process exactly as in this one', () => {
    // Prepare
    const keys: ShardKey[] = [
      ...randomKeys(1_000, 7),
      ...Array.from({ length: 500 }, (_, i) => `user:${i}`),
      ...Array.from({ length: 490 }, (_, i) => i * 7919),
      ...['café', '顧客', 'key🙂', 'a\ud800b', '', ' ', 'user:0 ', '-0', '1e+21', 'ü'.repeat(300)],
    ];
    const script = fileURLToPath(new URL('./fixtures/route-keys.ts', import.meta.url));
    const router = router64();
    // Act
    const childOutput = execFileSync(process.execPath, ['--import', 'tsx', script], {
      input: JSON.stringify({ shardCount: 64, keys }),
      encoding: 'utf8',
      timeout: 20_000,
    });
    const inProcess = keys.map((key) => {
      const { slot, shard } = router.route(key);
      return [slot, shard];
    });
    // Assess
    expect(JSON.parse(childOutput)).toEqual(inProcess);
  }, 30_000);

  it('builds identical routers from the same map', () => {
    // Prepare
    const keys = randomKeys(10_000, 11);
    // Act
    const first = router64();
    const again = createShardRouter({ version: 1, shards: shardSpecs(64) });
    // Assess
    expect(keys.map((key) => again.route(key).slot)).toEqual(
      keys.map((key) => first.route(key).slot),
    );
  });
});

describe('createShardRouter: keys', () => {
  it.each<[string, number, string]>([
    ['an integer', 42, '42'],
    ['a negative integer', -7, '-7'],
    ['a fraction', 3.5, '3.5'],
    ['negative zero', -0, '0'],
    ['a large number (exponent form)', 1e21, '1e+21'],
  ])('routes %s like its decimal text', (_name, numberKey, text) => {
    // Prepare
    const router = router64();
    // Act
    const byNumber = router.route(numberKey);
    // Assess
    expect(byNumber).toBe(router.route(text));
  });

  it.each<[string, unknown]>([
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['a boolean', true],
    ['an object', {}],
  ])('rejects %s with SHARD_KEY_INVALID', (_name, key) => {
    // Prepare
    const router = router64();
    // Act
    const act = () => router.route(key as ShardKey);
    // Assess
    expect(act).toThrow(expect.objectContaining({ code: 'SHARD_KEY_INVALID' }));
  });

  it('returns frozen routes and a frozen router', () => {
    // Prepare
    const router = router64();
    // Act
    const route = router.route('user:1');
    // Assess
    expect(Object.isFrozen(route)).toBe(true);
    expect(Object.isFrozen(router)).toBe(true);
    expect(Object.isFrozen(router.shards)).toBe(true);
    expect(Object.isFrozen(router.map.shards[0])).toBe(true);
    expect(router.slotOf('user:1')).toBe(route.slot);
  });
});

describe('createShardRouter: directory', () => {
  it.each([1, 3, 8, 16, 64, 100, 1000])(
    'deals %d equal shards contiguous slot ranges within one slot of each other',
    (shardCount) => {
      // Prepare
      const router = createShardRouter({ version: 1, shards: shardSpecs(shardCount) });
      // Act
      const counts = router.shards.map((shard) => router.slotsOf(shard).length);
      // Assess
      expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
      expect(counts.reduce((a, b) => a + b, 0)).toBe(DEFAULT_SLOT_COUNT);
      expect(router.shardOfSlot(0)).toBe('shard-0');
      expect(router.shardOfSlot(DEFAULT_SLOT_COUNT - 1)).toBe(`shard-${shardCount - 1}`);
    },
  );

  it.each<[string, number[], number]>([
    ['1:2:1', [1, 2, 1], 16_384],
    ['3:1', [3, 1], 16_384],
    ['0.5:1:1.5 over 1000 slots', [0.5, 1, 1.5], 1_000],
    ['1:1:1 over 10 slots', [1, 1, 1], 10],
  ])('gives weighted shards (%s) their share within one slot', (_name, weights, slotCount) => {
    // Prepare
    const shards = weights.map((weight, i) => ({ name: `w${i}`, weight }));
    const total = weights.reduce((a, b) => a + b, 0);
    // Act
    const router = createShardRouter({ version: 3, slotCount, shards });
    // Assess
    weights.forEach((weight, i) => {
      const exact = (slotCount * weight) / total;
      expect(Math.abs(router.slotsOf(`w${i}`).length - exact)).toBeLessThan(1);
    });
    expect(router.version).toBe(3);
  });

  it('follows an explicit slot directory', () => {
    // Prepare
    const config = {
      version: 7,
      slotCount: 8,
      shards: [{ name: 'a' }, { name: 'b' }],
      slots: [
        { shard: 'b', from: 0, to: 2 },
        { shard: 'a', from: 3, to: 6 },
        { shard: 'b', from: 7, to: 7 },
      ],
    };
    // Act
    const router = createShardRouter(config);
    // Assess
    expect(router.slotsOf('a')).toEqual([3, 4, 5, 6]);
    expect(router.slotsOf('b')).toEqual([0, 1, 2, 7]);
    for (const key of randomKeys(200, 3)) {
      const { slot, shard } = router.route(key);
      expect(shard).toBe(router.shardOfSlot(slot));
    }
  });

  it.each([
    ['a negative slot', () => router64().shardOfSlot(-1)],
    ['slot = slotCount', () => router64().shardOfSlot(DEFAULT_SLOT_COUNT)],
    ['a fractional slot', () => router64().shardOfSlot(1.5)],
    ['an unknown shard', () => router64().slotsOf('nope')],
  ])('rejects %s', (_name, act) => {
    // Act + Assess
    expect(act).toThrow(RangeError);
  });
});
