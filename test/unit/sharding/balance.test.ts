import { describe, expect, it } from 'vitest';
import { createShardRouter } from '#shared/sharding';
import { maxOverMean, randomKeys, sequentialKeys, shardSpecs } from './fixtures/keys.ts';

const KEY_COUNT = 1_000_000;
// Built once per file: generating 1M random keys costs more than routing them.
const KEY_SETS = { sequential: sequentialKeys(KEY_COUNT), random: randomKeys(KEY_COUNT) };

describe('createShardRouter: balance over 1M keys', () => {
  it.each([
    ['sequential user:0..user:999999', 8],
    ['sequential user:0..user:999999', 16],
    ['sequential user:0..user:999999', 64],
    ['random', 8],
    ['random', 16],
    ['random', 64],
  ])('%s keys over %d shards: max/mean ≤ 1.03', (kind, shardCount) => {
    // Prepare
    const keys = kind === 'random' ? KEY_SETS.random : KEY_SETS.sequential;
    const router = createShardRouter({ version: 1, shards: shardSpecs(shardCount) });
    // Act
    const shards = keys.map((key) => router.route(key).shard);
    // Assess
    expect(maxOverMean(shards, shardCount)).toBeLessThanOrEqual(1.03);
  });

  it('spreads 1M integer keys over 64 shards within max/mean 1.03', () => {
    // Prepare
    const router = createShardRouter({ version: 1, shards: shardSpecs(64) });
    // Act
    const shards = Array.from({ length: KEY_COUNT }, (_, i) => router.route(i).shard);
    // Assess
    expect(maxOverMean(shards, 64)).toBeLessThanOrEqual(1.03);
  });
});
