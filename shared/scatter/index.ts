/**
 * Scatter-gather: one SELECT answered from several shards that each hold part of the rows.
 * `planScatter` decides from PostgreSQL's parse tree what every shard runs and how results
 * merge (or rejects the shape with `SCATTER_UNSUPPORTED`); `scatterGather` runs it.
 */
export type { TextCollator } from './compare.ts';
export { type ShardFailure, ShardsUnavailableError } from './errors.ts';
export {
  type ScatterRequest,
  type ScatterResult,
  type ScatterShard,
  scatterGather,
} from './gather.ts';
export {
  planScatter,
  type ScatterPlan,
  type ScatterPlanOptions,
  type ScatterShape,
  type ShardResult,
} from './plan.ts';
