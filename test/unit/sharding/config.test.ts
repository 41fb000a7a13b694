import { describe, expect, it } from 'vitest';
import {
  createShardRouter,
  DEFAULT_SLOT_COUNT,
  parseShardMap,
  ShardMapError,
} from '#shared/sharding';

const captureError = (act: () => unknown): unknown => {
  try {
    act();
  } catch (err) {
    return err;
  }
  return undefined;
};

const two = [{ name: 'a' }, { name: 'b' }];

describe('shard map validation', () => {
  it.each<[string, unknown, string]>([
    ['an empty shard list', { version: 1, shards: [] }, 'shards'],
    ['a missing shard list', { version: 1 }, 'shards'],
    [
      'a duplicate shard name',
      { version: 1, shards: [{ name: 'a' }, { name: 'a' }] },
      'shards[1].name',
    ],
    ['an empty shard name', { version: 1, shards: [{ name: '' }] }, 'shards[0].name'],
    ['a shard name with a colon', { version: 1, shards: [{ name: 'db:1' }] }, 'shards[0].name'],
    ['a zero weight', { version: 1, shards: [{ name: 'a', weight: 0 }] }, 'shards[0].weight'],
    ['a misspelt shard field', { version: 1, shards: [{ nmae: 'a' }] }, 'shards[0]'],
    ['a negative version', { version: -1, shards: two }, 'version'],
    ['a fractional version', { version: 1.5, shards: two }, 'version'],
    ['a zero slot count', { version: 1, slotCount: 0, shards: two }, 'slotCount'],
    ['too many slots', { version: 1, slotCount: 70_000, shards: two }, 'slotCount'],
    ['fewer slots than shards', { version: 1, slotCount: 1, shards: two }, 'slotCount'],
    ['an unknown top-level field', { version: 1, shards: two, slot: [] }, '(root)'],
    [
      'a slot range naming an unknown shard',
      {
        version: 1,
        slotCount: 4,
        shards: two,
        slots: [
          { shard: 'a', from: 0, to: 1 },
          { shard: 'c', from: 2, to: 3 },
        ],
      },
      'slots[1].shard',
    ],
    [
      'a slot range past slotCount',
      { version: 1, slotCount: 4, shards: two, slots: [{ shard: 'a', from: 0, to: 4 }] },
      'slots[0].to',
    ],
    [
      'a reversed slot range',
      { version: 1, slotCount: 4, shards: two, slots: [{ shard: 'a', from: 3, to: 0 }] },
      'slots[0].from',
    ],
    [
      'overlapping slot ranges',
      {
        version: 1,
        slotCount: 4,
        shards: two,
        slots: [
          { shard: 'a', from: 0, to: 2 },
          { shard: 'b', from: 2, to: 3 },
        ],
      },
      'slots[1]',
    ],
    [
      'a slot left unassigned',
      { version: 1, slotCount: 4, shards: two, slots: [{ shard: 'a', from: 0, to: 2 }] },
      'slots',
    ],
  ])('rejects %s, naming %s', (_name, config, field) => {
    // Act
    const error = captureError(() => createShardRouter(config as never));
    // Assess
    expect(error).toBeInstanceOf(ShardMapError);
    const mapError = error as ShardMapError;
    expect(mapError.code).toBe('SHARD_MAP_INVALID');
    expect(mapError.issues.map((issue) => issue.field)).toContain(field);
    expect(mapError.message).toContain(field);
  });

  it('reports every bad field in one error', () => {
    // Prepare
    const config = { version: -1, shards: [{ name: 'a' }, { name: 'a', weight: -2 }] };
    // Act
    const error = captureError(() => createShardRouter(config));
    // Assess
    expect(error).toBeInstanceOf(ShardMapError);
    expect((error as ShardMapError).details.fields).toEqual(
      expect.arrayContaining(['version', 'shards[1].weight', 'shards[1].name']),
    );
  });
});

describe('parseShardMap', () => {
  it('parses the SHARD_MAP JSON, fills defaults and freezes it', () => {
    // Prepare
    const json = JSON.stringify({
      version: 2,
      shards: [{ name: 'east-1' }, { name: 'east-2', weight: 2 }],
    });
    // Act
    const map = parseShardMap(json);
    // Assess
    expect(map).toEqual({
      version: 2,
      slotCount: DEFAULT_SLOT_COUNT,
      shards: [
        { name: 'east-1', weight: 1 },
        { name: 'east-2', weight: 2 },
      ],
    });
    expect(Object.isFrozen(map)).toBe(true);
    expect(Object.isFrozen(map.shards[1])).toBe(true);
  });

  it('round-trips a planned map through JSON', () => {
    // Prepare
    const map = parseShardMap(
      '{"version":1,"slotCount":12,"shards":[{"name":"a"}],"slots":[{"shard":"a","from":0,"to":11}]}',
    );
    // Act
    const again = parseShardMap(JSON.stringify(map));
    // Assess
    expect(again).toEqual(map);
  });

  it.each([
    ['not JSON', '{version: 1', '(root)'],
    ['JSON of the wrong shape', '[1, 2]', '(root)'],
    ['a string version', '{"version":"1","shards":[{"name":"a"}]}', 'version'],
  ])('rejects %s, naming %s', (_name, json, field) => {
    // Act
    const act = () => parseShardMap(json);
    // Assess
    expect(act).toThrow(ShardMapError);
    expect(act).toThrow(field);
  });
});
