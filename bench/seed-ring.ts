/**
 * The seed's consistent-hash ring, reimplemented faithfully as the baseline for
 * `npm run bench:shard` (issue 6). Kept in bench/ only: do not use it for routing.
 *
 * What the seed did, and why it is slow and lopsided:
 * - each shard gets `virtualNodes` points at `javaStringHash(`${shard}#${i}`)`; the 32-bit
 *   Java-style hash (s[0]·31^(n-1) + … + s[n-1], wrapped with `| 0`) of strings that differ
 *   only in their last characters differs only by small amounts, so a shard's points sit on
 *   one short arc instead of spreading round the ring;
 * - keys use the same hash, so sequential keys (`user:1`, `user:2`, …) land next to each
 *   other and mostly on one shard;
 * - `resolve` copies and sorts all ring points on every lookup, then scans for the first
 *   point at or after the key's hash (wrapping to the first point).
 *
 * The seed's code is not in this repository; this follows issue 6's description. Shard names
 * (`shard-0` …) and 100 virtual nodes per shard are this bench's choice: with them every
 * sequential key lands on one shard (max/mean = n), worse than the "up to 33×" the issue
 * quotes, because the clustering depends on the exact names. The lookup cost (a copy and sort
 * of n·100 points per call) does not depend on the names.
 */

/** Java's `String.hashCode`: s[0]·31^(n-1) + … + s[n-1] over UTF-16 code units, signed 32-bit. */
export const javaStringHash = (text: string): number => {
  let hash = 0;
  for (let i = 0; i < text.length; i++) hash = (Math.imul(hash, 31) + text.charCodeAt(i)) | 0;
  return hash;
};

export interface SeedRingPoint {
  readonly hash: number;
  readonly shard: string;
}

export interface SeedRing {
  readonly points: readonly SeedRingPoint[];
  /** The seed's lookup: sort every point, then the first point with hash ≥ the key's. */
  resolve(key: string): string;
}

/** The number of virtual nodes per shard in the seed. */
export const SEED_VIRTUAL_NODES = 100;

export const createSeedRing = (
  shards: readonly string[],
  virtualNodes: number = SEED_VIRTUAL_NODES,
): SeedRing => {
  const points: SeedRingPoint[] = [];
  for (const shard of shards) {
    for (let i = 0; i < virtualNodes; i++) {
      points.push({ hash: javaStringHash(`${shard}#${i}`), shard });
    }
  }
  return {
    points,
    resolve: (key: string): string => {
      const sorted = [...points].sort((a, b) => a.hash - b.hash);
      const hash = javaStringHash(key);
      const owner = sorted.find((point) => point.hash >= hash) ?? sorted[0];
      if (owner === undefined) throw new Error('the ring has no shards');
      return owner.shard;
    },
  };
};

/**
 * Not part of the seed: the same placement rule as {@link SeedRing.resolve} on points
 * sorted once (lower-bound binary search; Array#sort is stable, so ties keep the same
 * order). The bench uses it to measure the seed's key placement over 1M keys without 1M
 * sorts, after checking it agrees with `resolve` on a sample.
 */
export const createSortedSeedResolver = (ring: SeedRing): ((key: string) => string) => {
  const sorted = [...ring.points].sort((a, b) => a.hash - b.hash);
  const hashes = Int32Array.from(sorted, (point) => point.hash);
  return (key: string): string => {
    const hash = javaStringHash(key);
    let lo = 0;
    let hi = hashes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((hashes[mid] as number) < hash) lo = mid + 1;
      else hi = mid;
    }
    return (sorted[lo] ?? sorted[0])?.shard ?? '';
  };
};
