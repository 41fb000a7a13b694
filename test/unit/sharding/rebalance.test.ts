import { describe, expect, it } from 'vitest';
import {
  createShardRouter,
  planRebalance,
  RebalancePlanError,
  type ShardMapConfig,
} from '#shared/sharding';
import { sequentialKeys, shardSpecs } from './fixtures/keys.ts';

const KEYS = sequentialKeys(1_000_000);

const slotCounts = (config: ShardMapConfig): Map<string, number> => {
  const router = createShardRouter(config);
  return new Map(router.shards.map((shard) => [shard, router.slotsOf(shard).length]));
};

describe('planRebalance: adding a shard', () => {
  it.each([1, 3, 8, 16, 64])(
    '%d → n+1 shards moves ≈ 1/(n+1) of 1M keys, all to the new shard',
    (shardCount) => {
      // Prepare
      const current = { version: 4, shards: shardSpecs(shardCount) };
      const before = createShardRouter(current);
      const ideal = 1 / (shardCount + 1);
      // Act
      const plan = planRebalance(current, { add: ['new'] });
      const after = createShardRouter(plan.next);
      let moved = 0;
      const destinations = new Set<string>();
      for (const key of KEYS) {
        const to = after.route(key).shard;
        if (to !== before.route(key).shard) {
          moved++;
          destinations.add(to);
        }
      }
      // Assess
      expect(moved / KEYS.length).toBeLessThanOrEqual(1.05 * ideal);
      expect(moved / KEYS.length).toBeGreaterThanOrEqual(0.95 * ideal);
      expect([...destinations]).toEqual(['new']);
      expect(Math.abs(plan.movedFraction - ideal)).toBeLessThan(1 / plan.next.slotCount);
      expect(plan.nextVersion).toBe(5);
      expect(plan.next.version).toBe(5);
    },
  );

  it.each([3, 8, 64])(
    'takes slots evenly from the %d existing shards and leaves all within one slot',
    (shardCount) => {
      // Prepare
      const current = { version: 1, shards: shardSpecs(shardCount) };
      // Act
      const plan = planRebalance(current, { add: ['new'] });
      // Assess
      const given = new Map<string, number>();
      for (const move of plan.moves) given.set(move.from, (given.get(move.from) ?? 0) + 1);
      const counts = [...slotCounts(plan.next).values()];
      expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
      expect(given.size).toBe(shardCount);
      expect(Math.max(...given.values()) - Math.min(...given.values())).toBeLessThanOrEqual(1);
      expect(plan.moves.every((move) => move.to === 'new')).toBe(true);
    },
  );

  it('adds several shards at once, moving only to the new ones', () => {
    // Prepare
    const current = { version: 1, shards: shardSpecs(8) };
    // Act
    const plan = planRebalance(current, { add: ['n1', 'n2'] });
    // Assess
    const counts = [...slotCounts(plan.next).values()];
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
    expect(new Set(plan.moves.map((move) => move.to))).toEqual(new Set(['n1', 'n2']));
    expect(Math.abs(plan.movedFraction - 2 / 10)).toBeLessThan(1 / plan.next.slotCount);
  });

  it('keeps balance and minimal movement over a chain of additions (4 → 12)', () => {
    // Prepare
    let config: ShardMapConfig = { version: 1, shards: shardSpecs(4) };
    // Act + Assess
    for (let n = 4; n < 12; n++) {
      const plan = planRebalance(config, { add: [`extra-${n}`] });
      expect(plan.moves.every((move) => move.to === `extra-${n}`)).toBe(true);
      expect(Math.abs(plan.movedFraction - 1 / (n + 1))).toBeLessThan(1 / plan.next.slotCount);
      const counts = [...slotCounts(plan.next).values()];
      expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
      config = plan.next;
    }
    expect(config.version).toBe(9);
  });

  it('gives a weighted map its new weighted quotas', () => {
    // Prepare
    const current = { version: 1, shards: [{ name: 'big', weight: 3 }, { name: 'small' }] };
    // Act
    const plan = planRebalance(current, { add: ['new'] });
    // Assess: weights 3:1:1 over 16384 slots.
    const counts = slotCounts(plan.next);
    expect(Math.abs((counts.get('big') ?? 0) - (16_384 * 3) / 5)).toBeLessThan(1);
    expect(Math.abs((counts.get('new') ?? 0) - 16_384 / 5)).toBeLessThan(1);
  });

  it('is pure and deterministic', () => {
    // Prepare
    const current = Object.freeze({ version: 1, shards: Object.freeze(shardSpecs(16)) });
    // Act
    const first = planRebalance(current, { add: ['new'] });
    const second = planRebalance(current, { add: ['new'] });
    // Assess
    expect(second).toEqual(first);
    expect(current.version).toBe(1);
    expect(Object.isFrozen(first.next)).toBe(true);
  });
});

describe('planRebalance: removing a shard', () => {
  it.each([
    [2, 'shard-0'],
    [8, 'shard-3'],
    [16, 'shard-15'],
    [64, 'shard-0'],
  ])('%d shards minus %s moves only its keys, spread evenly', (shardCount, victim) => {
    // Prepare
    const current = { version: 1, shards: shardSpecs(shardCount) };
    const before = createShardRouter(current);
    // Act
    const plan = planRebalance(current, { remove: [victim] });
    const after = createShardRouter(plan.next);
    const movedFrom = new Set<string>();
    let moved = 0;
    for (const key of KEYS) {
      const from = before.route(key).shard;
      if (after.route(key).shard !== from) {
        moved++;
        movedFrom.add(from);
      }
    }
    // Assess
    expect([...movedFrom]).toEqual([victim]);
    expect(moved).toBe(KEYS.filter((key) => before.route(key).shard === victim).length);
    expect(plan.moves.length).toBe(before.slotsOf(victim).length);
    const counts = [...slotCounts(plan.next).values()];
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
    expect(after.shards).not.toContain(victim);
  });

  it('removes a shard after earlier additions without moving anyone else', () => {
    // Prepare
    const grown = planRebalance({ version: 1, shards: shardSpecs(5) }, { add: ['x'] }).next;
    // Act
    const plan = planRebalance(grown, { remove: ['shard-2'] });
    // Assess
    expect(new Set(plan.moves.map((move) => move.from))).toEqual(new Set(['shard-2']));
  });
});

describe('planRebalance: invalid changes name the field', () => {
  it.each<[string, { add?: string[]; remove?: string[] }, string]>([
    ['an existing name', { add: ['shard-1'] }, 'change.add[0]'],
    ['a name twice', { add: ['n', 'n'] }, 'change.add[1]'],
    ['an unknown removal', { remove: ['ghost'] }, 'change.remove[0]'],
    ['every shard removed', { remove: ['shard-0', 'shard-1', 'shard-2'] }, 'change.remove'],
    ['no change', {}, 'change'],
  ])('rejects %s (%j) naming %s', (_name, change, field) => {
    // Prepare
    const current = { version: 1, shards: shardSpecs(3) };
    // Act
    const act = () => planRebalance(current, change);
    // Assess
    expect(act).toThrow(RebalancePlanError);
    expect(act).toThrow(expect.objectContaining({ code: 'REBALANCE_INVALID' }));
    expect(act).toThrow(field);
  });

  it('rejects adding more shards than slots', () => {
    // Prepare
    const current = { version: 1, slotCount: 2, shards: shardSpecs(2) };
    // Act
    const act = () => planRebalance(current, { add: ['third'] });
    // Assess
    expect(act).toThrow(/change\.add/);
  });
});
