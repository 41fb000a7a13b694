/**
 * Shard routing: key → MurmurHash3 (x86_32, fixed seed, UTF-8 bytes) → one of `slotCount`
 * slots (default 16384, as in Redis Cluster) → shard via a versioned slot → shard directory.
 * Routers are compiled once per map ({@link createShardRouter}); rebalancing is planned as a
 * pure function ({@link planRebalance}) that moves whole slots. No module-level state.
 */

export { RebalancePlanError, ShardMapError, type ShardMapIssue } from './errors.ts';
export { murmur3x86_32, ROUTER_HASH_SEED } from './hash.ts';
export {
  planRebalance,
  type RebalancePlan,
  type ShardChange,
  type SlotMove,
} from './rebalance.ts';
export {
  createShardRouter,
  type ShardKey,
  type ShardRoute,
  type ShardRouter,
} from './router.ts';
export {
  DEFAULT_SLOT_COUNT,
  MAX_SLOT_COUNT,
  parseShardMap,
  type ShardMap,
  type ShardMapConfig,
  type ShardSpec,
  type SlotRange,
  validateShardMap,
} from './schema.ts';
export {
  encodeSlotsRle,
  formatShardMap,
  RLE_PREFIX,
  type SlotEncoding,
} from './slot-encoding.ts';
