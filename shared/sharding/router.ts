import { ValidationError } from '#shared/errors';
import { buildDirectory } from './directory.ts';
import { createUtf8Hasher, ROUTER_HASH_SEED } from './hash.ts';
import { type ShardMap, type ShardMapConfig, validateShardMap } from './schema.ts';

/**
 * A shard key. Numbers are routed by their decimal text (`String(n)`), so `42` and `'42'`
 * reach the same shard; `-0` routes as `'0'`, and `1e21` as `'1e+21'`. NaN and ±Infinity are
 * rejected.
 */
export type ShardKey = string | number;

/** Where a key lives: its slot and the shard that owns the slot in this map version. */
export interface ShardRoute {
  readonly shard: string;
  readonly slot: number;
}

/** A shard map compiled for lookups. Frozen; `route` allocates nothing for ASCII keys. */
export interface ShardRouter {
  /** The directory version of the map this router was built from. */
  readonly version: number;
  readonly slotCount: number;
  /** Shard names in map order. */
  readonly shards: readonly string[];
  /** The validated map (defaults filled in), e.g. for {@link planRebalance}. */
  readonly map: ShardMap;
  /** key → murmur3 → slot → shard. Returns a shared frozen object per slot. */
  route(key: ShardKey): ShardRoute;
  /** key → slot only (for the rebalancer, which copies rows by slot). */
  slotOf(key: ShardKey): number;
  /** The shard owning `slot` in this version. */
  shardOfSlot(slot: number): string;
  /** The slots `shard` owns, ascending. */
  slotsOf(shard: string): readonly number[];
}

const keyText = (key: number): string => {
  if (typeof key !== 'number' || !Number.isFinite(key)) {
    throw new ValidationError(
      'SHARD_KEY_INVALID',
      `shardKey must be a string or a finite number; got ${typeof key === 'number' ? String(key) : typeof key}`,
    );
  }
  return String(key);
};

/**
 * Compiles a shard map once (validate, build the slot → shard directory, precompute one
 * frozen route per slot) so that each lookup is a hash, a modulo and an array read.
 *
 * The slot is `murmur3_x86_32(utf8(key), ROUTER_HASH_SEED) % slotCount`. With the default
 * 16384 slots (a power of two) the modulo has no bias; for other counts the bias is below
 * slotCount / 2^32 (< 0.002 %), and `%` is easy to reproduce in other tools.
 *
 * Throws {@link ShardMapError} naming every bad field of `config`.
 *
 * @example
 * const router = createShardRouter({ version: 1, shards: [{ name: 's0' }, { name: 's1' }] });
 * router.route('user:42'); // { shard: 's0', slot: 7673 } (frozen, shared)
 */
export const createShardRouter = (config: ShardMapConfig | ShardMap): ShardRouter => {
  const map = validateShardMap(config);
  const { slotCount } = map;
  const shards = Object.freeze(map.shards.map((shard) => shard.name));
  const directory = buildDirectory(map);
  const routes: ShardRoute[] = Array.from({ length: slotCount }, (_, slot) =>
    Object.freeze({ shard: shards[directory[slot] as number] as string, slot }),
  );
  Object.freeze(routes);
  const slotLists = new Map<string, number[]>(shards.map((name) => [name, []]));
  for (let slot = 0; slot < slotCount; slot++) {
    slotLists.get(shards[directory[slot] as number] as string)?.push(slot);
  }
  for (const list of slotLists.values()) Object.freeze(list);
  const hash = createUtf8Hasher(ROUTER_HASH_SEED);

  const slotOf = (key: ShardKey): number =>
    hash(typeof key === 'string' ? key : keyText(key)) % slotCount;

  return Object.freeze({
    version: map.version,
    slotCount,
    shards,
    map,
    route: (key: ShardKey): ShardRoute => routes[slotOf(key)] as ShardRoute,
    slotOf,
    shardOfSlot: (slot: number): string => {
      const route = routes[slot];
      if (route === undefined || !Number.isInteger(slot)) {
        throw new RangeError(`slot must be an integer in 0..${slotCount - 1}; got ${slot}`);
      }
      return route.shard;
    },
    slotsOf: (shard: string): readonly number[] => {
      const list = slotLists.get(shard);
      if (list === undefined) {
        throw new RangeError(`unknown shard "${shard}"; known: ${shards.join(', ')}`);
      }
      return list;
    },
  });
};
