import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { buildDirectory } from './directory.ts';
import type { ShardMapIssue } from './errors.ts';
import type { ShardMap } from './schema.ts';

/**
 * Compact encodings of a shard map's `slots` directory. A Lambda's environment holds at most
 * 4 KB in total, and a directory that went through many rebalances fragments: 4 shards grown
 * one by one to 64 leave about 1,600 ranges, 65 KB as `{ "shard", "from", "to" }` objects.
 * `parseShardMap` accepts three spellings of `slots`, all decoded to the same ranges:
 *
 * - objects: `[{ "shard": "s1", "from": 0, "to": 5460 }, …]` (readable; the original form)
 * - tuples: `[[0, 5460, "s1"], [5461, 10922, 1], …]`: `[from, to, shard]`, `shard` being a
 *   name or an index into `shards` (about 2.5× smaller)
 * - RLE: `"rle1:<base64url>"`: the runs of the directory from slot 0, each run two unsigned
 *   LEB128 varints (shard index into `shards`, run length in slots), the byte string
 *   compressed with raw DEFLATE (RFC 1951) and base64url-encoded. The 1,600-range map above
 *   takes 1.6 KB. Reproducible in any language with zlib.
 */
export const RLE_PREFIX = 'rle1:';

/** A range as decoded, before the schema checks names and coverage. */
export interface RawSlotRange {
  shard: string;
  from: number;
  to: number;
}

const pushVarint = (out: number[], value: number): void => {
  let v = value;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
};

/**
 * Encodes a slot → shard-index directory as an `rle1:` string (see the module comment).
 *
 * @example
 * encodeSlotsRle(Uint16Array.of(0, 0, 1)); // 'rle1:…' (runs: shard 0 × 2, shard 1 × 1)
 */
export const encodeSlotsRle = (directory: ArrayLike<number>): string => {
  const bytes: number[] = [];
  let from = 0;
  for (let slot = 1; slot <= directory.length; slot++) {
    if (slot === directory.length || directory[slot] !== directory[from]) {
      pushVarint(bytes, directory[from] as number);
      pushVarint(bytes, slot - from);
      from = slot;
    }
  }
  return RLE_PREFIX + deflateRawSync(Uint8Array.from(bytes), { level: 9 }).toString('base64url');
};

type Decoded = { ranges: RawSlotRange[] } | { issues: ShardMapIssue[] };

const issue = (field: string, message: string): Decoded => ({ issues: [{ field, message }] });

/** Shard names of the (not yet validated) map, for resolving indexes. */
const namesOf = (shards: unknown): string[] | undefined =>
  Array.isArray(shards)
    ? shards.map((s) => {
        if (typeof s === 'string') return s;
        const name = typeof s === 'object' && s !== null ? (s as { name?: unknown }).name : '';
        return typeof name === 'string' ? name : '';
      })
    : undefined;

const resolveShard = (value: unknown, names: readonly string[] | undefined): string | undefined => {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isInteger(value) && names !== undefined) {
    return names[value];
  }
  return undefined;
};

const decodeRle = (text: string, names: readonly string[] | undefined, slotCount: number) => {
  let bytes: Buffer;
  try {
    // Each run takes at most 3 + 3 bytes for 65,536 slots; anything longer is not ours.
    bytes = inflateRawSync(Buffer.from(text.slice(RLE_PREFIX.length), 'base64url'), {
      maxOutputLength: Math.max(64, slotCount * 6),
    });
  } catch (err) {
    return issue('slots', `not a valid ${RLE_PREFIX} directory (${(err as Error).message})`);
  }
  const ranges: RawSlotRange[] = [];
  let offset = 0;
  const readVarint = (): number | undefined => {
    let value = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      const byte = bytes[offset++];
      if (byte === undefined) return undefined;
      value |= (byte & 0x7f) << shift;
      if (byte < 0x80) return value;
    }
    return undefined;
  };
  let next = 0;
  while (offset < bytes.length) {
    const index = readVarint();
    const length = readVarint();
    if (index === undefined || length === undefined || length === 0) {
      return issue('slots', `${RLE_PREFIX} directory is truncated or corrupt at byte ${offset}`);
    }
    const shard = names?.[index];
    if (shard === undefined) {
      return issue(
        'slots',
        `${RLE_PREFIX} run at slot ${next} names shard index ${index}, which is not in shards`,
      );
    }
    if (next + length > slotCount) {
      return issue('slots', `${RLE_PREFIX} runs cover more than slotCount (${slotCount}) slots`);
    }
    ranges.push({ shard, from: next, to: next + length - 1 });
    next += length;
  }
  if (ranges.length === 0) return issue('slots', `${RLE_PREFIX} directory is empty`);
  return { ranges };
};

/**
 * Turns the tuple and RLE spellings of `slots` into range objects; objects pass through
 * unchanged (the schema checks them). Returns issues for what cannot be decoded.
 */
export const decodeSlots = (
  slots: unknown,
  shards: unknown,
  slotCount: number,
): { slots: unknown } | { issues: ShardMapIssue[] } => {
  const names = namesOf(shards);
  if (typeof slots === 'string') {
    if (!slots.startsWith(RLE_PREFIX)) {
      return {
        issues: [
          {
            field: 'slots',
            message: `a string must be an "${RLE_PREFIX}…" directory; otherwise give an array of ranges`,
          },
        ],
      };
    }
    const decoded = decodeRle(slots, names, slotCount);
    return 'issues' in decoded ? decoded : { slots: decoded.ranges };
  }
  if (!Array.isArray(slots) || !slots.some(Array.isArray)) return { slots };
  const issues: ShardMapIssue[] = [];
  const ranges = slots.map((entry, i) => {
    if (!Array.isArray(entry)) return entry;
    const [from, to, shardRef] = entry as unknown[];
    const shard = resolveShard(shardRef, names);
    if (entry.length !== 3 || shard === undefined) {
      issues.push({
        field: `slots[${i}]`,
        message: 'a tuple must be [from, to, shard] with shard a name or an index into shards',
      });
    }
    return { shard: shard ?? '', from, to };
  });
  return issues.length > 0 ? { issues } : { slots: ranges };
};

/** How {@link formatShardMap} spells `slots`; `auto` picks objects while small, else RLE. */
export type SlotEncoding = 'auto' | 'objects' | 'tuples' | 'rle';

/** Maps up to this size keep the readable object form under `auto`. */
const READABLE_MAP_BYTES = 1_024;

/**
 * The shard map as `SHARD_MAP` JSON, with `slots` spelled as asked. `auto` keeps the
 * readable object form while the whole map is at most 1 KB and switches to `rle1:` beyond
 * (the Lambda environment holds 4 KB in total). A map without `slots` stays without.
 *
 * @example
 * formatShardMap(planRebalance(map, { add: ['s4'] }).next); // store as SHARD_MAP
 */
export const formatShardMap = (map: ShardMap, encoding: SlotEncoding = 'auto'): string => {
  if (map.slots === undefined || encoding === 'objects') return JSON.stringify(map);
  const objects = JSON.stringify(map);
  if (encoding === 'auto' && objects.length <= READABLE_MAP_BYTES) return objects;
  const names = map.shards.map((shard) => shard.name);
  // Weight-1 shards as bare names: 64 of them take 0.9 KB less.
  const shards = map.shards.map((shard) => (shard.weight === 1 ? shard.name : shard));
  if (encoding === 'tuples') {
    const index = new Map(names.map((name, i) => [name, i]));
    return JSON.stringify({
      ...map,
      shards,
      slots: map.slots.map((range) => [range.from, range.to, index.get(range.shard)]),
    });
  }
  return JSON.stringify({ ...map, shards, slots: encodeSlotsRle(buildDirectory(map)) });
};
