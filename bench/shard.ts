/**
 * Shard router benchmark (issue 6, item 7, router part): dbopt's slot router
 * (`shared/sharding`: murmur3 → 16384 slots → directory) against a faithful reimplementation
 * of the seed's consistent-hash ring (bench/seed-ring.ts), in one run.
 *
 *   npm run bench:shard
 *   npm run bench:shard -- --rounds 7 --lookups 5000000 --seed-ms 500
 *
 * Measures, at 8, 16 and 64 shards:
 * - lookups/s: `route()` over 1M pre-built sequential keys; the seed's `resolve()` sorts its
 *   ring on every call, so it runs for `--seed-ms` per round instead of a fixed count and is
 *   reported per second. Rounds interleave both sides so machine noise hits both; the
 *   reported rate is the median over rounds.
 * - max/mean load over 1M keys (`user:0..user:999999`, and 1M random keys).
 * - keys moved when one shard is added (n → n+1), divided by the ideal 1/(n+1), and the
 *   share of moved keys that went to the new shard.
 *
 * Targets (issue 6): ≥ 5M lookups/s at 64 shards, max/mean ≤ 1.03, moved ≤ 1.05× ideal.
 * The last line is one JSON object.
 */
import { parseArgs } from 'node:util';
import { createShardRouter, planRebalance, type ShardRouter } from '#shared/sharding';
import { createSeedRing, createSortedSeedResolver, type SeedRing } from './seed-ring.ts';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    keys: { type: 'string', default: '1000000' },
    lookups: { type: 'string', default: '3000000' },
    'seed-ms': { type: 'string', default: '400' },
  },
});
const rounds = Number(args.rounds);
const keyCount = Number(args.keys);
const lookupCount = Number(args.lookups);
const seedBudgetMs = Number(args['seed-ms']);
const SHARD_COUNTS = [8, 16, 64] as const;

const median = (xs: readonly number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};
const shardNames = (count: number): string[] =>
  Array.from({ length: count }, (_, i) => `shard-${i}`);

/** Reproducible random keys (mulberry32). */
const randomKeys = (count: number, seed: number): string[] => {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  return Array.from({ length: count }, () => `${next().toString(36)}${next().toString(36)}`);
};

/** Busiest shard's load over the mean load. */
const maxOverMean = (keys: readonly string[], shardOf: (key: string) => string, shards: number) => {
  const load = new Map<string, number>();
  for (const key of keys) {
    const shard = shardOf(key);
    load.set(shard, (load.get(shard) ?? 0) + 1);
  }
  return Math.max(...load.values()) / (keys.length / shards);
};

/** Fraction of keys whose shard changes, and the share of those that moved to `added` (null if none moved). */
const movement = (
  keys: readonly string[],
  before: (key: string) => string,
  after: (key: string) => string,
  added: string,
) => {
  let moved = 0;
  let toAdded = 0;
  for (const key of keys) {
    const to = after(key);
    if (to !== before(key)) {
      moved++;
      if (to === added) toAdded++;
    }
  }
  return { movedFraction: moved / keys.length, toAddedShare: moved === 0 ? null : toAdded / moved };
};

let sink = 0; // consumed at the end so the JIT cannot drop the timed loops

const timeRouter = (router: ShardRouter, keys: readonly string[], n: number): number => {
  const keyCount = keys.length;
  let acc = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) acc += router.route(keys[i % keyCount] as string).slot;
  const elapsedMs = performance.now() - t0;
  sink += acc;
  return (n / elapsedMs) * 1000;
};

const timeRouterNumeric = (router: ShardRouter, n: number): number => {
  let acc = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) acc += router.route(i).slot;
  const elapsedMs = performance.now() - t0;
  sink += acc;
  return (n / elapsedMs) * 1000;
};

const timeSeed = (ring: SeedRing, keys: readonly string[], budgetMs: number): number => {
  let n = 0;
  let acc = 0;
  const t0 = performance.now();
  let elapsedMs = 0;
  // At least 20 lookups so a very slow ring still gives a rate.
  while (n < 20 || elapsedMs < budgetMs) {
    acc += ring.resolve(keys[(n * 7919) % keys.length] as string).length;
    n++;
    elapsedMs = performance.now() - t0;
  }
  sink += acc;
  return (n / elapsedMs) * 1000;
};

const main = (): void => {
  const started = performance.now();
  const sequential = Array.from({ length: keyCount }, (_, i) => `user:${i}`);
  const random = randomKeys(keyCount, 0x5eed);
  const routers = new Map(
    SHARD_COUNTS.map((n) => [
      n,
      createShardRouter({ version: 1, shards: shardNames(n).map((name) => ({ name })) }),
    ]),
  );
  const rings = new Map(SHARD_COUNTS.map((n) => [n, createSeedRing(shardNames(n))]));

  // Warm-up: JIT for both sides.
  for (const n of SHARD_COUNTS) {
    timeRouter(routers.get(n) as ShardRouter, sequential, 1_000_000);
    timeRouterNumeric(routers.get(n) as ShardRouter, 200_000);
    timeSeed(rings.get(n) as SeedRing, sequential, 50);
  }

  const rates = {
    router: new Map<number, number[]>(SHARD_COUNTS.map((n) => [n, []])),
    numeric: [] as number[],
    seed: new Map<number, number[]>(SHARD_COUNTS.map((n) => [n, []])),
  };
  for (let round = 1; round <= rounds; round++) {
    for (const n of SHARD_COUNTS) {
      const r = timeRouter(routers.get(n) as ShardRouter, sequential, lookupCount);
      const s = timeSeed(rings.get(n) as SeedRing, sequential, seedBudgetMs);
      rates.router.get(n)?.push(r);
      rates.seed.get(n)?.push(s);
      process.stderr.write(
        `round ${round}/${rounds} ${String(n).padStart(2)} shards: dbopt ${(r / 1e6).toFixed(2)}M lookups/s, seed ${(s / 1e3).toFixed(2)}k lookups/s\n`,
      );
    }
    rates.numeric.push(timeRouterNumeric(routers.get(64) as ShardRouter, lookupCount));
  }

  const summary: Record<string, number | string | boolean | null> = {
    bench: 'shard',
    rounds,
    keys: keyCount,
    slot_count: (routers.get(64) as ShardRouter).slotCount,
    seed_virtual_nodes: (rings.get(8) as SeedRing).points.length / 8,
  };
  console.log('\nshards  side   lookups/s   max/mean seq  max/mean rnd  moved/ideal  moved→new');
  for (const n of SHARD_COUNTS) {
    const router = routers.get(n) as ShardRouter;
    const ring = rings.get(n) as SeedRing;
    const seedResolve = createSortedSeedResolver(ring);
    // The sorted-once resolver must place keys exactly like the seed's resolve().
    for (let i = 0; i < 300; i++) {
      const key = i % 2 === 0 ? (sequential[i * 3331] as string) : (random[i * 3331] as string);
      if (seedResolve(key) !== ring.resolve(key)) {
        throw new Error(`sorted seed resolver disagrees with resolve() for ${key} at ${n} shards`);
      }
    }
    const routeShard = (key: string) => router.route(key).shard;
    const added = `shard-${n}`;
    const grown = createShardRouter(planRebalance(router.map, { add: [added] }).next);
    const grownSeed = createSortedSeedResolver(createSeedRing(shardNames(n + 1)));
    const ideal = 1 / (n + 1);
    const ours = {
      rate: median(rates.router.get(n) ?? []),
      seq: maxOverMean(sequential, routeShard, n),
      rnd: maxOverMean(random, routeShard, n),
      move: movement(sequential, routeShard, (key) => grown.route(key).shard, added),
    };
    const seed = {
      rate: median(rates.seed.get(n) ?? []),
      seq: maxOverMean(sequential, seedResolve, n),
      rnd: maxOverMean(random, seedResolve, n),
      move: movement(sequential, seedResolve, grownSeed, added),
    };
    for (const [side, r] of [
      ['dbopt', ours],
      ['seed', seed],
    ] as const) {
      console.log(
        `${String(n).padStart(6)}  ${side.padEnd(5)} ${r.rate.toExponential(2).padStart(10)} ${r.seq.toFixed(3).padStart(13)} ${r.rnd.toFixed(3).padStart(13)} ${(r.move.movedFraction / ideal).toFixed(3).padStart(12)} ${(r.move.toAddedShare?.toFixed(3) ?? 'n/a').padStart(10)}`,
      );
    }
    Object.assign(summary, {
      [`lookups_per_s_${n}`]: Math.round(ours.rate),
      [`seed_lookups_per_s_${n}`]: Math.round(seed.rate),
      [`max_mean_${n}`]: Number(ours.seq.toFixed(4)),
      [`max_mean_random_${n}`]: Number(ours.rnd.toFixed(4)),
      [`seed_max_mean_${n}`]: Number(seed.seq.toFixed(4)),
      [`seed_max_mean_random_${n}`]: Number(seed.rnd.toFixed(4)),
      [`moved_vs_ideal_${n}`]: Number((ours.move.movedFraction / ideal).toFixed(4)),
      [`seed_moved_vs_ideal_${n}`]: Number((seed.move.movedFraction / ideal).toFixed(4)),
      [`moved_to_new_${n}`]: ours.move.toAddedShare,
      [`seed_moved_to_new_${n}`]: seed.move.toAddedShare,
    });
  }
  const numericRate = median(rates.numeric);
  console.log(`\ndbopt, 64 shards, integer keys: ${numericRate.toExponential(2)} lookups/s`);
  const n64 = summary as Record<string, number>;
  Object.assign(summary, {
    lookups_per_s_64_numeric: Math.round(numericRate),
    speedup_64: Math.round((n64.lookups_per_s_64 ?? 0) / (n64.seed_lookups_per_s_64 ?? 1)),
    targets_met:
      (n64.lookups_per_s_64 ?? 0) >= 5e6 &&
      SHARD_COUNTS.every(
        (n) =>
          (n64[`max_mean_${n}`] ?? Number.POSITIVE_INFINITY) <= 1.03 &&
          (n64[`max_mean_random_${n}`] ?? Number.POSITIVE_INFINITY) <= 1.03 &&
          (n64[`moved_vs_ideal_${n}`] ?? Number.POSITIVE_INFINITY) <= 1.05,
      ),
    elapsed_s: Number(((performance.now() - started) / 1000).toFixed(1)),
  });
  process.stderr.write(`(checksum ${sink})\n`);
  console.log(JSON.stringify(summary));
};

main();
