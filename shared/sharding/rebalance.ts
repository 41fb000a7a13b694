import { apportionSlots, buildDirectory, compactDirectory } from './directory.ts';
import { RebalancePlanError, type ShardMapIssue } from './errors.ts';
import { type ShardMap, type ShardMapConfig, validateShardMap } from './schema.ts';

/** Shards to add (weight 1) and/or remove. */
export interface ShardChange {
  readonly add?: readonly string[];
  readonly remove?: readonly string[];
}

/** One slot changing owner; every key in the slot moves with it. */
export interface SlotMove {
  readonly slot: number;
  readonly from: string;
  readonly to: string;
}

/** What a change does to the directory; `next` is the map to switch to once rows are copied. */
export interface RebalancePlan {
  readonly nextVersion: number;
  /** Ascending by slot. */
  readonly moves: readonly SlotMove[];
  /** moves / slotCount: the expected fraction of keys that change shard. */
  readonly movedFraction: number;
  readonly next: ShardMap;
}

const checkChange = (map: ShardMap, change: ShardChange): void => {
  const issues: ShardMapIssue[] = [];
  const existing = new Set(map.shards.map((shard) => shard.name));
  const added = new Set<string>();
  (change.add ?? []).forEach((name, i) => {
    if (existing.has(name))
      issues.push({ field: `change.add[${i}]`, message: `shard "${name}" already exists` });
    else if (added.has(name))
      issues.push({ field: `change.add[${i}]`, message: `shard "${name}" is listed twice` });
    added.add(name);
  });
  const removed = new Set<string>();
  (change.remove ?? []).forEach((name, i) => {
    if (!existing.has(name))
      issues.push({
        field: `change.remove[${i}]`,
        message: `unknown shard "${name}"; known: ${[...existing].join(', ')}`,
      });
    else if (removed.has(name))
      issues.push({ field: `change.remove[${i}]`, message: `shard "${name}" is listed twice` });
    removed.add(name);
  });
  if (added.size === 0 && removed.size === 0) {
    issues.push({ field: 'change', message: 'name at least one shard to add or remove' });
  }
  if (issues.length > 0) throw new RebalancePlanError(issues);
};

/**
 * Plans a directory change without touching any data: pure and deterministic.
 *
 * The new shard set gets weighted quotas (each within one slot of its exact share). Shards
 * above quota give up their highest-numbered slots, removed shards give up all of theirs,
 * and those slots fill the shards below quota in shard order. So adding one shard to n equal
 * shards moves ⌊slotCount/(n+1)⌉ slots, all to the new shard, taken evenly from the others;
 * removing a shard moves only its slots, spread evenly over the rest. `next` keeps the
 * directory as compact ranges and carries `nextVersion`.
 *
 * Throws {@link ShardMapError} for a bad `current` and {@link RebalancePlanError} for a bad
 * `change` (existing/unknown names, all shards removed, more shards than slots).
 *
 * @example
 * const plan = planRebalance(router.map, { add: ['s4'] });
 * plan.movedFraction; // 0.2 for 4 → 5 shards
 */
export const planRebalance = (
  current: ShardMapConfig | ShardMap,
  change: ShardChange,
): RebalancePlan => {
  const map = validateShardMap(current);
  checkChange(map, change);
  const removed = new Set(change.remove ?? []);
  const nextShards = [
    ...map.shards.filter((shard) => !removed.has(shard.name)),
    ...(change.add ?? []).map((name) => ({ name, weight: 1 })),
  ];
  if (nextShards.length === 0) {
    throw new RebalancePlanError([
      { field: 'change.remove', message: 'cannot remove every shard' },
    ]);
  }
  if (nextShards.length > map.slotCount) {
    throw new RebalancePlanError([
      {
        field: 'change.add',
        message: `${map.slotCount} slots cannot give each of ${nextShards.length} shards a slot`,
      },
    ]);
  }

  const before = buildDirectory(map);
  const oldNames = map.shards.map((shard) => shard.name);
  const nextNames = nextShards.map((shard) => shard.name);
  const nextIndexByName = new Map(nextNames.map((name, index) => [name, index]));
  // Old shard index → new index, or -1 for a removed shard.
  const remap = oldNames.map((name) => nextIndexByName.get(name) ?? -1);

  const after = new Int32Array(map.slotCount);
  const slotsByShard: number[][] = nextNames.map(() => []);
  const freed: number[] = [];
  for (let slot = 0; slot < map.slotCount; slot++) {
    const owner = remap[before[slot] as number] as number;
    after[slot] = owner;
    if (owner < 0) freed.push(slot);
    else slotsByShard[owner]?.push(slot);
  }

  const counts = slotsByShard.map((slots) => slots.length);
  const quotas = apportionSlots(
    map.slotCount,
    nextShards.map((shard) => shard.weight),
    counts,
  );
  quotas.forEach((quota, index) => {
    const owned = slotsByShard[index] as number[];
    if (owned.length > quota) freed.push(...owned.slice(quota));
  });
  freed.sort((a, b) => a - b);

  let cursor = 0;
  quotas.forEach((quota, index) => {
    for (let have = counts[index] as number; have < quota; have++) {
      after[freed[cursor++] as number] = index;
    }
  });

  const moves: SlotMove[] = freed.map((slot) =>
    Object.freeze({
      slot,
      from: oldNames[before[slot] as number] as string,
      to: nextNames[after[slot] as number] as string,
    }),
  );
  const nextVersion = map.version + 1;
  const next = validateShardMap({
    version: nextVersion,
    slotCount: map.slotCount,
    shards: nextShards,
    slots: compactDirectory(after, nextNames),
  });
  return Object.freeze({
    nextVersion,
    moves: Object.freeze(moves),
    movedFraction: moves.length / map.slotCount,
    next,
  });
};
