import { z } from 'zod';
import { ShardMapError, type ShardMapIssue } from './errors.ts';
import { decodeSlots } from './slot-encoding.ts';

/** Redis Cluster's slot count: fine-grained enough to move 1/(n+1) of keys at 64+ shards. */
export const DEFAULT_SLOT_COUNT = 16_384;
/** Slot → shard indexes live in a Uint16Array, and every shard needs at least one slot. */
export const MAX_SLOT_COUNT = 65_536;

/** One shard (a database target). `weight` (default 1) scales its share of slots. */
export interface ShardSpec {
  readonly name: string;
  readonly weight?: number;
}

/** Slots `from..to` (inclusive) belong to `shard`, as in Redis `CLUSTER SLOTS`. */
export interface SlotRange {
  readonly shard: string;
  readonly from: number;
  readonly to: number;
}

/**
 * The versioned shard map as configured (cdk.json context → `SHARD_MAP` JSON, or code).
 * Without `slots`, slots are dealt to shards in contiguous ranges, in shard order, in
 * proportion to weight (each shard within one slot of its exact share). With `slots`, the
 * ranges are the directory and must cover every slot exactly once; weights then only guide
 * {@link planRebalance}. In JSON, `slots` may also be spelled compactly (tuples
 * `[from, to, shard]` or an `"rle1:…"` string, see slot-encoding.ts); it is always decoded
 * to ranges.
 */
export interface ShardMapConfig {
  readonly version: number;
  readonly slotCount?: number;
  readonly shards: readonly ShardSpec[];
  readonly slots?: readonly SlotRange[];
}

/** A validated, frozen shard map with every default filled in. */
export interface ShardMap {
  readonly version: number;
  readonly slotCount: number;
  readonly shards: readonly { readonly name: string; readonly weight: number }[];
  readonly slots?: readonly SlotRange[];
}

// Shard names end up in cache keys, metric dimensions and log lines: keep them plain.
const SHARD_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

const ShardSchema = z.strictObject({
  name: z.string().regex(SHARD_NAME, 'must be 1–63 characters of letters, digits, "_", "." or "-"'),
  weight: z.number().positive().finite().default(1),
});

const SlotRangeSchema = z.strictObject({
  shard: z.string(),
  from: z.number().int().nonnegative(),
  to: z.number().int().nonnegative(),
});

/** The JSON shape of a shard map; semantic checks (names, coverage) are in the refinement. */
export const ShardMapSchema = z
  .strictObject({
    version: z.number().int().nonnegative(),
    slotCount: z.number().int().min(1).max(MAX_SLOT_COUNT).default(DEFAULT_SLOT_COUNT),
    // A bare string is shorthand for `{ "name": … }` (weight 1): compact maps use it.
    shards: z
      .array(z.preprocess((v) => (typeof v === 'string' ? { name: v } : v), ShardSchema))
      .min(1, 'at least one shard is required'),
    slots: z.array(SlotRangeSchema).min(1).optional(),
  })
  .superRefine((map, ctx) => {
    const firstIndexByName = new Map<string, number>();
    map.shards.forEach((shard, i) => {
      const first = firstIndexByName.get(shard.name);
      if (first === undefined) firstIndexByName.set(shard.name, i);
      else
        ctx.addIssue({
          code: 'custom',
          path: ['shards', i, 'name'],
          message: `duplicate shard name "${shard.name}" (also shards[${first}].name)`,
        });
    });
    if (map.shards.length > map.slotCount) {
      ctx.addIssue({
        code: 'custom',
        path: ['slotCount'],
        message: `${map.slotCount} slots cannot give each of ${map.shards.length} shards a slot`,
      });
    }
    if (map.slots === undefined) return;
    const owner = new Int32Array(map.slotCount).fill(-1);
    map.slots.forEach((range, i) => {
      if (!firstIndexByName.has(range.shard)) {
        ctx.addIssue({
          code: 'custom',
          path: ['slots', i, 'shard'],
          message: `unknown shard "${range.shard}"; add it to shards or fix the name`,
        });
      }
      if (range.to >= map.slotCount || range.from > range.to) {
        const field = range.to >= map.slotCount ? 'to' : 'from';
        ctx.addIssue({
          code: 'custom',
          path: ['slots', i, field],
          message: `range ${range.from}..${range.to} must satisfy 0 ≤ from ≤ to < slotCount (${map.slotCount})`,
        });
        return;
      }
      for (let slot = range.from; slot <= range.to; slot++) {
        const previous = owner[slot] as number;
        if (previous >= 0) {
          ctx.addIssue({
            code: 'custom',
            path: ['slots', i],
            message: `slot ${slot} is already assigned by slots[${previous}]`,
          });
          return;
        }
        owner[slot] = i;
      }
    });
    const unassigned = owner.indexOf(-1);
    if (unassigned >= 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['slots'],
        message: `slot ${unassigned} is not assigned to any shard; the ranges must cover 0..${map.slotCount - 1}`,
      });
    }
  });

const formatField = (path: readonly PropertyKey[]): string => {
  let field = '';
  for (const part of path) {
    if (typeof part === 'number') field += `[${part}]`;
    else field += field === '' ? String(part) : `.${String(part)}`;
  }
  return field === '' ? '(root)' : field;
};

const deepFreeze = (map: ShardMap): ShardMap => {
  for (const shard of map.shards) Object.freeze(shard);
  Object.freeze(map.shards);
  if (map.slots) {
    for (const range of map.slots) Object.freeze(range);
    Object.freeze(map.slots);
  }
  return Object.freeze(map);
};

/**
 * Validates a shard map (a config object or parsed JSON) and returns it frozen with defaults
 * filled in. Throws one {@link ShardMapError} naming every bad field.
 */
export const validateShardMap = (input: unknown): ShardMap => {
  let candidate = input;
  const decodeIssues: ShardMapIssue[] = [];
  if (typeof input === 'object' && input !== null && 'slots' in input) {
    const raw = input as { slots?: unknown; shards?: unknown; slotCount?: unknown };
    const slotCount =
      typeof raw.slotCount === 'number' && Number.isInteger(raw.slotCount) && raw.slotCount > 0
        ? Math.min(raw.slotCount, MAX_SLOT_COUNT)
        : DEFAULT_SLOT_COUNT;
    const decoded = decodeSlots(raw.slots, raw.shards, slotCount);
    if ('issues' in decoded) {
      decodeIssues.push(...decoded.issues);
      const { slots: _dropped, ...rest } = raw;
      candidate = rest;
    } else if (decoded.slots !== raw.slots) {
      candidate = { ...raw, slots: decoded.slots };
    }
  }
  const parsed = ShardMapSchema.safeParse(candidate);
  if (!parsed.success || decodeIssues.length > 0) {
    const issues: ShardMapIssue[] = [
      ...decodeIssues,
      ...(parsed.error?.issues ?? []).map((issue) => ({
        field: formatField(issue.path),
        message: issue.message,
      })),
    ];
    throw new ShardMapError(issues);
  }
  const { slots, ...rest } = parsed.data;
  return deepFreeze(slots === undefined ? rest : { ...rest, slots });
};

/**
 * Parses the `SHARD_MAP` JSON (cdk.json context → Lambda environment) into a frozen
 * {@link ShardMap}. Throws {@link ShardMapError} for bad JSON or any bad field.
 *
 * @example
 * const map = parseShardMap('{"version":1,"shards":[{"name":"s0"},{"name":"s1"}]}');
 * const router = createShardRouter(map);
 */
export const parseShardMap = (json: string): ShardMap => {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    throw new ShardMapError(
      [{ field: '(root)', message: `not valid JSON (${(err as Error).message})` }],
      { cause: err },
    );
  }
  return validateShardMap(value);
};
