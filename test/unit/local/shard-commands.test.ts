import { describe, expect, it } from 'vitest';
import { createShardRouter, type ShardMapConfig } from '#shared/sharding';
import {
  compactSlots,
  formatRanges,
  runShardPlan,
  runShardRoute,
  type ShardIo,
  type ShardPlanReport,
} from '../../../local/shard-commands.ts';

const THREE: ShardMapConfig = {
  version: 1,
  shards: [{ name: 's0' }, { name: 's1' }, { name: 's2' }],
};
const KEYS = Array.from({ length: 20_000 }, (_, i) => `user:${i}`);

/** An in-memory ShardIo: captured lines, a fixed environment and a map of files. */
const fakeIo = (options: { env?: Record<string, string>; files?: Record<string, string> } = {}) => {
  const out: string[] = [];
  const err: string[] = [];
  const io: ShardIo = {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    env: options.env ?? {},
    readFile: (path) => {
      const text = options.files?.[path];
      if (text === undefined) throw new Error(`ENOENT: no such file or directory, open '${path}'`);
      return text;
    },
  };
  return { io, out, err };
};
const withMapFile = (map: unknown = THREE) =>
  fakeIo({ files: { 'map.json': JSON.stringify(map) } });

const planJson = (options: { add?: string[]; remove?: string[] }): ShardPlanReport => {
  const { io, out, err } = withMapFile();
  const code = runShardPlan({ ...options, map: 'map.json', json: true }, io);
  expect({ code, err }).toEqual({ code: 0, err: [] });
  expect(out).toHaveLength(1);
  return JSON.parse(out[0] as string) as ShardPlanReport;
};

describe('dbopt shard plan', () => {
  it('adding a shard to three moves a quarter of the slots, all to the new shard', () => {
    // Act
    const { io, out, err } = withMapFile();
    const code = runShardPlan({ add: ['s3'], map: 'map.json' }, io);

    // Assess
    expect(code).toBe(0);
    expect(err).toEqual([]);
    const text = out.join('\n');
    expect(text).toContain('version 1 → 2 (add s3), 16,384 slots');
    expect(text).toMatch(/s0 +5,462 → 4,096 +−1,366/);
    expect(text).toMatch(/s3 +0 → 4,096 +new/);
    expect(text).toContain('Moves (4,096 slots):');
    expect(text).toContain('s0 → s3: 1,366 slots (8.3 %)  slots 4096-5461');
    expect(text).toContain('s1 → s3: 1,365 slots (8.3 %)  slots 9558-10922');
    expect(text).toContain('s2 → s3: 1,365 slots (8.3 %)  slots 15019-16383');
    expect(text).toContain('Keys moved: 25.0 % (ideal 1/4 = 25.0 %; 1.000× ideal)');
  });

  it('removing a shard moves only its slots, split over the others', () => {
    // Act
    const { io, out } = withMapFile();
    const code = runShardPlan({ remove: ['s1'], map: 'map.json' }, io);

    // Assess
    expect(code).toBe(0);
    const text = out.join('\n');
    expect(text).toMatch(/s1 +5,461 → 0 +removed/);
    expect(text).toContain('s1 → s0: 2,730 slots (16.7 %)  slots 5462-8191');
    expect(text).toContain('s1 → s2: 2,731 slots (16.7 %)  slots 8192-10922');
    expect(text).toContain('Keys moved: 33.3 % (ideal ≈ 1/3, 33.3 %; 1.000× ideal)');
    expect(text).not.toMatch(/s[02] → /);
  });

  it('--json gives the plan, and `next` routes keys as planned', () => {
    // Act
    const report = planJson({ add: ['s3'] });

    // Assess
    expect(report).toMatchObject({
      currentVersion: 1,
      nextVersion: 2,
      slotCount: 16_384,
      change: { add: ['s3'], remove: [] },
      movedSlots: 4096,
      movedFraction: 0.25,
      idealFraction: 0.25,
    });
    expect(report.moves.map((m) => [m.from, m.to, m.slots, m.ranges])).toEqual([
      ['s0', 's3', 1366, [[4096, 5461]]],
      ['s1', 's3', 1365, [[9558, 10922]]],
      ['s2', 's3', 1365, [[15019, 16383]]],
    ]);
    expect(report.shards.map((s) => [s.name, s.before, s.after, s.status])).toEqual([
      ['s0', 5462, 4096, 'kept'],
      ['s1', 5461, 4096, 'kept'],
      ['s2', 5461, 4096, 'kept'],
      ['s3', 0, 4096, 'added'],
    ]);
    // `next` is a valid SHARD_MAP: keys either stay or move to s3, about 1/4 of them move.
    const before = createShardRouter(THREE);
    const after = createShardRouter(report.next);
    expect(after.version).toBe(2);
    let moved = 0;
    for (const key of KEYS) {
      const from = before.route(key).shard;
      const to = after.route(key).shard;
      if (from !== to) {
        moved++;
        expect(to).toBe('s3');
        const group = report.moves.find((m) => m.from === from && m.to === to);
        const slot = after.slotOf(key);
        expect(group?.ranges.some(([a, b]) => slot >= a && slot <= b)).toBe(true);
      }
    }
    expect(moved / KEYS.length).toBeCloseTo(0.25, 1);
  });

  it('--json for a removal: every key of the removed shard moves, no other key does', () => {
    // Act
    const report = planJson({ remove: ['s2'] });

    // Assess
    const before = createShardRouter(THREE);
    const after = createShardRouter(report.next);
    expect(after.shards).toEqual(['s0', 's1']);
    for (const key of KEYS.slice(0, 5_000)) {
      const from = before.route(key).shard;
      if (from !== 's2') expect(after.route(key).shard).toBe(from);
    }
    expect(report.movedFraction).toBeCloseTo(1 / 3, 3);
    expect(report.movedVsIdeal).toBe(1);
  });

  it('reads SHARD_MAP when there is no --map, validated like the handlers do', () => {
    // Act
    const { io, out } = fakeIo({ env: { SHARD_MAP: JSON.stringify(THREE) } });
    const code = runShardPlan({ add: ['s3'], json: true }, io);

    // Assess
    expect(code).toBe(0);
    expect(JSON.parse(out[0] as string)).toMatchObject({ source: 'SHARD_MAP', movedSlots: 4096 });
  });

  it.each([
    [
      'an unknown shard to remove',
      { remove: ['s9'] },
      'dbopt: cannot plan the change to map.json (version 1): --remove s9: unknown shard "s9"; known: s0, s1, s2',
    ],
    [
      'an existing shard to add',
      { add: ['s1'] },
      'dbopt: cannot plan the change to map.json (version 1): --add s1: shard "s1" already exists',
    ],
    [
      'no change',
      {},
      'dbopt: cannot plan the change to map.json (version 1): name a shard with --add NAME or --remove NAME',
    ],
    [
      'an invalid new shard name',
      { add: ['bad name'] },
      'dbopt: cannot plan the change to map.json (version 1): --add "bad name": not a valid shard name; it must be 1–63 characters of letters, digits, "_", "." or "-"',
    ],
    [
      'removing every shard',
      { remove: ['s0', 's1', 's2'] },
      'dbopt: cannot plan the change to map.json (version 1): --remove: cannot remove every shard',
    ],
  ])('rejects %s with one line on stderr and exit code 1', (_, change, message) => {
    // Act
    const { io, out, err } = withMapFile();
    const code = runShardPlan({ ...change, map: 'map.json' }, io);

    // Assess
    expect(code).toBe(1);
    expect(out).toEqual([]);
    expect(err).toEqual([message]);
  });

  it.each([
    [
      'JSON that does not parse',
      '{"version":1, shards: }',
      /^dbopt: invalid shard map in map.json: \(root\): not valid JSON \(/,
    ],
    [
      'a duplicate shard name',
      JSON.stringify({ version: 1, shards: [{ name: 's0' }, { name: 's0' }] }),
      /^dbopt: invalid shard map in map.json: shards\[1\]\.name: duplicate shard name "s0"/,
    ],
    [
      'a negative version and no shards',
      JSON.stringify({ version: -1, shards: [] }),
      /^dbopt: invalid shard map in map.json: version: .*; shards: at least one shard is required$/,
    ],
    [
      'slot ranges that leave a gap',
      JSON.stringify({
        version: 3,
        shards: [{ name: 'a' }],
        slots: [{ shard: 'a', from: 0, to: 9 }],
      }),
      /^dbopt: invalid shard map in map.json: slots: slot 10 is not assigned to any shard/,
    ],
  ])('names the bad field of a map with %s', (_, text, message) => {
    // Act
    const { io, out, err } = fakeIo({ files: { 'map.json': text } });
    const code = runShardPlan({ add: ['s9'], map: 'map.json' }, io);

    // Assess
    expect(code).toBe(1);
    expect(out).toEqual([]);
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(message);
    expect(err[0]).not.toContain('\n');
  });

  it('names SHARD_MAP when the variable is bad, and asks for a map when there is none', () => {
    // Act
    const bad = fakeIo({ env: { SHARD_MAP: '{"version":1}' } });
    const badCode = runShardPlan({ add: ['s1'] }, bad.io);
    const none = fakeIo({ env: { SHARD_MAP: '' } });
    const noneCode = runShardPlan({ add: ['s1'] }, none.io);
    const missing = fakeIo();
    const missingCode = runShardPlan({ add: ['s1'], map: 'nope.json' }, missing.io);

    // Assess
    expect([badCode, noneCode, missingCode]).toEqual([1, 1, 1]);
    expect(bad.err).toEqual([
      expect.stringMatching(/^dbopt: invalid shard map in SHARD_MAP: shards: /),
    ]);
    expect(none.err).toEqual([
      'dbopt: no shard map: pass --map FILE (shard map JSON) or set SHARD_MAP',
    ]);
    expect(missing.err).toEqual([
      "dbopt: cannot read the shard map file nope.json: ENOENT: no such file or directory, open 'nope.json'",
    ]);
  });

  it('rethrows failures that are not about the input', () => {
    const io: ShardIo = {
      ...fakeIo().io,
      readFile: () => JSON.stringify(THREE),
      out: () => {
        throw new TypeError('stdout closed');
      },
    };
    expect(() => runShardPlan({ add: ['s3'], map: 'map.json' }, io)).toThrow('stdout closed');
  });
});

describe('dbopt shard route', () => {
  it('prints key → slot → shard for each key, like the router', () => {
    // Act
    const { io, out } = withMapFile();
    const code = runShardRoute(['user:1', '42'], { map: 'map.json' }, io);

    // Assess
    const router = createShardRouter(THREE);
    expect(code).toBe(0);
    expect(out[0]).toBe('Shard map map.json: version 1, 3 shards, 16,384 slots');
    expect(out.slice(1)).toEqual([
      `  "user:1" → slot ${String(router.route('user:1').slot).padStart(5)} → ${router.route('user:1').shard}`,
      `  "42"     → slot ${String(router.route(42).slot).padStart(5)} → ${router.route(42).shard}`,
    ]);
  });

  it('--json lists the routes', () => {
    const { io, out } = withMapFile();
    expect(runShardRoute(['a', 'b'], { map: 'map.json', json: true }, io)).toBe(0);
    const router = createShardRouter(THREE);
    expect(JSON.parse(out[0] as string)).toEqual({
      version: 1,
      slotCount: 16_384,
      routes: ['a', 'b'].map((key) => ({ key, ...router.route(key) })),
    });
  });

  it('fails with exit code 1 without a map', () => {
    const { io, err } = fakeIo();
    expect(runShardRoute(['a'], {}, io)).toBe(1);
    expect(err).toHaveLength(1);
  });
});

describe('slot range helpers', () => {
  it('compacts sorted slots into inclusive runs', () => {
    expect(compactSlots([])).toEqual([]);
    expect(compactSlots([1, 2, 3, 7, 9, 10])).toEqual([
      [1, 3],
      [7, 7],
      [9, 10],
    ]);
  });

  it('shows at most a few ranges and counts the rest', () => {
    const ranges = Array.from({ length: 9 }, (_, i) => [i * 10, i * 10 + (i % 2)] as const);
    expect(formatRanges(ranges, 3)).toBe('0, 10-11, 20 (+6 more ranges)');
    expect(formatRanges([[5, 6]])).toBe('5-6');
  });
});
