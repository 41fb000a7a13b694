import { deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  createShardRouter,
  encodeSlotsRle,
  formatShardMap,
  parseShardMap,
  planRebalance,
  type ShardMap,
  ShardMapError,
  type SlotEncoding,
  validateShardMap,
} from '#shared/sharding';

const captureError = (act: () => unknown): unknown => {
  try {
    act();
  } catch (err) {
    return err;
  }
  return undefined;
};

/** Grows 4 shards one at a time: each step fragments the directory further. */
const grownMap = (shards: number): ShardMap => {
  let map = validateShardMap({
    version: 1,
    shards: Array.from({ length: 4 }, (_, i) => ({ name: `s${i}` })),
  });
  for (let n = 4; n < shards; n++) map = planRebalance(map, { add: [`s${n}`] }).next;
  return map;
};

const directoryOf = (map: ShardMap): string[] => {
  const router = createShardRouter(map);
  return Array.from({ length: router.slotCount }, (_, slot) => router.shardOfSlot(slot));
};

describe('compact shard map encodings', () => {
  it.each<SlotEncoding>(['objects', 'tuples', 'rle', 'auto'])(
    'a fragmented 64-shard map round-trips through the %s encoding slot for slot',
    (encoding) => {
      // Prepare
      const map = grownMap(64);

      // Act
      const parsed = parseShardMap(formatShardMap(map, encoding));

      // Assess
      expect(parsed.version).toBe(map.version);
      expect(parsed.shards).toEqual(map.shards);
      expect(directoryOf(parsed)).toEqual(directoryOf(map));
    },
  );

  it('the RLE form of a 1,600-range map fits a Lambda environment (4 KB in total)', () => {
    // Prepare
    const map = grownMap(64);

    // Act
    const objects = formatShardMap(map, 'objects');
    const compact = formatShardMap(map);

    // Assess
    expect(map.slots?.length).toBeGreaterThan(1_000);
    expect(objects.length).toBeGreaterThan(40_000);
    expect(compact).toContain('"rle1:');
    expect(compact.length).toBeLessThan(2_500);
  });

  it('accepts bare shard names as shorthand for weight-1 shards', () => {
    // Prepare
    const json = '{"version":1,"shards":["a",{"name":"b","weight":2}]}';

    // Act
    const map = parseShardMap(json);

    // Assess
    expect(map.shards).toEqual([
      { name: 'a', weight: 1 },
      { name: 'b', weight: 2 },
    ]);
  });

  it('auto keeps a small map readable and a map without slots unchanged', () => {
    // Prepare
    const small = planRebalance(
      { version: 1, shards: [{ name: 'a' }, { name: 'b' }] },
      {
        add: ['c'],
      },
    ).next;
    const plain = validateShardMap({ version: 3, shards: [{ name: 'a' }] });

    // Act
    const smallText = formatShardMap(small);
    const plainText = formatShardMap(plain, 'rle');

    // Assess
    expect(JSON.parse(smallText).slots[0]).toHaveProperty('shard');
    expect(JSON.parse(plainText)).toEqual({
      version: 3,
      slotCount: 16_384,
      shards: [{ name: 'a', weight: 1 }],
    });
  });

  it('accepts tuples naming the shard or its index, mixed with objects', () => {
    // Prepare
    const json = JSON.stringify({
      version: 7,
      slotCount: 10,
      shards: [{ name: 'a' }, { name: 'b' }],
      slots: [[0, 3, 'a'], [4, 8, 1], { shard: 'a', from: 9, to: 9 }],
    });

    // Act
    const map = parseShardMap(json);

    // Assess
    expect(map.slots).toEqual([
      { shard: 'a', from: 0, to: 3 },
      { shard: 'b', from: 4, to: 8 },
      { shard: 'a', from: 9, to: 9 },
    ]);
  });

  it('old object-form maps still parse to the same directory (backward compatible)', () => {
    // Prepare
    const json =
      '{"version":2,"slotCount":4,"shards":[{"name":"x"},{"name":"y"}],"slots":[{"shard":"y","from":0,"to":1},{"shard":"x","from":2,"to":3}]}';

    // Act
    const map = parseShardMap(json);

    // Assess
    expect(directoryOf(map)).toEqual(['y', 'y', 'x', 'x']);
  });

  it.each<[string, unknown, string, RegExp]>([
    ['a tuple with an unknown index', [[0, 9, 5]], 'slots[0]', /\[from, to, shard\]/],
    ['a short tuple', [[0, 9]], 'slots[0]', /\[from, to, shard\]/],
    ['a tuple leaving slots uncovered', [[0, 4, 'a']], 'slots', /slot 5 is not assigned/],
    ['a string without the rle1: prefix', 'a:0-9', 'slots', /rle1:/],
    ['rle1: that is not deflate data', 'rle1:AAAA', 'slots', /not a valid rle1:/],
    ['rle1: naming shard index 7', encodeSlotsRle(new Uint16Array(10).fill(7)), 'slots', /index 7/],
    [
      'rle1: covering too few slots',
      encodeSlotsRle(new Uint16Array(6)),
      'slots',
      /slot 6 is not assigned/,
    ],
    [
      'rle1: covering too many slots',
      encodeSlotsRle(new Uint16Array(11)),
      'slots',
      /more than slotCount/,
    ],
  ])('rejects %s, naming the field', (_label, slots, field, message) => {
    // Prepare
    const json = JSON.stringify({
      version: 1,
      slotCount: 10,
      shards: [{ name: 'a' }, { name: 'b' }],
      slots,
    });

    // Act
    const err = captureError(() => parseShardMap(json));

    // Assess
    expect(err).toBeInstanceOf(ShardMapError);
    const issues = (err as ShardMapError).issues;
    expect(issues.map((i) => i.field)).toContain(field);
    expect(issues.map((i) => i.message).join('\n')).toMatch(message);
  });

  it.each<[string, Uint8Array, RegExp]>([
    // 16 MB of zeros deflate to ~16 KB: inflating must stop at the 6 bytes per slot bound.
    ['a decompression bomb', new Uint8Array(16 * 1024 * 1024), /not a valid rle1:.*larger than/],
    ['a zero-length run', Uint8Array.of(0, 0), /truncated or corrupt/],
    ['a varint longer than 4 bytes', Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x01, 1), /corrupt/],
    ['a truncated varint', Uint8Array.of(0, 0x80), /truncated or corrupt/],
  ])('rejects hostile rle1: input (%s) without expanding it', (_label, raw, message) => {
    // Prepare
    const slots = `rle1:${deflateRawSync(raw).toString('base64url')}`;
    const json = JSON.stringify({ version: 1, slotCount: 10, shards: ['a', 'b'], slots });

    // Act
    const err = captureError(() => parseShardMap(json)) as ShardMapError;

    // Assess
    expect(err).toBeInstanceOf(ShardMapError);
    expect(err.issues.map((i) => i.message).join('\n')).toMatch(message);
  });

  it('reports a bad rle1: directory together with other bad fields', () => {
    // Prepare
    const json = JSON.stringify({ version: -1, shards: [{ name: 'a' }], slots: 'rle1:!!' });

    // Act
    const err = captureError(() => parseShardMap(json)) as ShardMapError;

    // Assess
    expect(err.issues.map((i) => i.field).sort()).toEqual(['slots', 'version']);
  });
});
