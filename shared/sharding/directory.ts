import type { ShardMap, SlotRange } from './schema.ts';

/**
 * Splits `slotCount` slots into integer quotas proportional to `weights` (largest-remainder
 * method), so each quota is within one slot of its exact share. The leftover slots go to the
 * largest fractional parts; ties go to the shard holding more slots now (`currentCounts`, so
 * a rebalance moves as little as possible), then to the earlier shard, which keeps it
 * deterministic.
 */
export const apportionSlots = (
  slotCount: number,
  weights: readonly number[],
  currentCounts?: readonly number[],
): number[] => {
  const totalWeight = weights.reduce((sum, w) => sum + w, 0);
  const exact = weights.map((w) => (slotCount * w) / totalWeight);
  const quotas = exact.map(Math.floor);
  const leftover = slotCount - quotas.reduce((sum, q) => sum + q, 0);
  const order = exact
    .map((share, index) => ({
      index,
      fraction: share - Math.floor(share),
      current: currentCounts?.[index] ?? 0,
    }))
    .sort((a, b) => b.fraction - a.fraction || b.current - a.current || a.index - b.index);
  for (let i = 0; i < leftover; i++) {
    const { index } = order[i] as (typeof order)[number];
    quotas[index] = (quotas[index] as number) + 1;
  }
  return quotas;
};

/**
 * Builds the slot → shard-index directory of a validated map: its explicit `slots` ranges,
 * or contiguous weighted ranges in shard order when it has none.
 */
export const buildDirectory = (map: ShardMap): Uint16Array => {
  const directory = new Uint16Array(map.slotCount);
  if (map.slots) {
    const indexByName = new Map(map.shards.map((shard, index) => [shard.name, index]));
    for (const range of map.slots) {
      directory.fill(indexByName.get(range.shard) ?? 0, range.from, range.to + 1);
    }
    return directory;
  }
  const quotas = apportionSlots(
    map.slotCount,
    map.shards.map((shard) => shard.weight),
  );
  let next = 0;
  quotas.forEach((quota, index) => {
    directory.fill(index, next, next + quota);
    next += quota;
  });
  return directory;
};

/** The directory as the fewest inclusive ranges (the `slots` field of a shard map). */
export const compactDirectory = (
  directory: ArrayLike<number>,
  shardNames: readonly string[],
): SlotRange[] => {
  const ranges: SlotRange[] = [];
  let from = 0;
  for (let slot = 1; slot <= directory.length; slot++) {
    if (slot === directory.length || directory[slot] !== directory[from]) {
      ranges.push({ shard: shardNames[directory[from] as number] as string, from, to: slot - 1 });
      from = slot;
    }
  }
  return ranges;
};
