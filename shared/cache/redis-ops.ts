import { randomInt } from 'node:crypto';
import type { CacheRedisClient } from './types.ts';

/** Marks a GET that hit a key of another type (WRONGTYPE): garbage, to be overwritten. */
export const WRONG_TYPE = Symbol('wrong-type');

export interface EntryRead {
  /** The stored value, `null` when absent. */
  readonly raw: string | null | typeof WRONG_TYPE;
  /** Current table versions, `null` when a version key is absent. */
  readonly versions: readonly (string | null)[];
}

type PipelineResult = [error: Error | null, result: unknown][] | null;

const VERSION = /^\d{1,20}$/;

/** A pipeline reports errors per command; any error other than those handled is a failure. */
const resultsOf = (results: PipelineResult, expected: number): [Error | null, unknown][] => {
  if (!results || results.length !== expected) {
    throw new Error(`Redis pipeline returned ${results?.length ?? 'no'} results for ${expected}`);
  }
  return results;
};

const isWrongType = (err: Error): boolean => err.message.startsWith('WRONGTYPE');

/**
 * GET the entry and MGET the versions of its tables in one round trip (one pipeline). On
 * cluster-mode Redis the two keys live in different slots; use a Cluster client there, which
 * splits the pipeline per node (still one round trip of latency, in parallel).
 */
export const readEntry = async (
  redis: CacheRedisClient,
  entryKey: string,
  versionKeys: readonly string[],
): Promise<EntryRead> => {
  const pipeline = redis.pipeline().get(entryKey);
  if (versionKeys.length > 0) pipeline.mget(...versionKeys);
  const results = resultsOf(await pipeline.exec(), versionKeys.length > 0 ? 2 : 1);
  const [getError, raw] = results[0] as [Error | null, unknown];
  let entry: EntryRead['raw'];
  if (getError) {
    if (!isWrongType(getError)) throw getError;
    entry = WRONG_TYPE;
  } else if (raw === null || typeof raw === 'string') {
    entry = raw;
  } else {
    entry = WRONG_TYPE;
  }
  if (versionKeys.length === 0) return { raw: entry, versions: [] };
  const [mgetError, versions] = results[1] as [Error | null, unknown];
  if (mgetError) throw mgetError;
  if (!Array.isArray(versions) || versions.length !== versionKeys.length) {
    throw new Error('Redis MGET returned an unexpected reply');
  }
  // MGET answers nil for keys of another type; such a version is repaired on the miss path.
  return { raw: entry, versions: versions as (string | null)[] };
};

/** True when every current version exists and equals the stored one. */
export const versionsMatch = (
  stored: readonly string[],
  current: readonly (string | null)[],
): boolean => {
  if (stored.length !== current.length) return false;
  for (let i = 0; i < stored.length; i++) {
    if (current[i] === null || stored[i] !== current[i]) return false;
  }
  return true;
};

/**
 * A version value no earlier incarnation of the key can have held: microseconds since the
 * epoch plus noise (about 1.7e18, inside Redis's signed 64-bit integers). A version key that
 * was evicted or never written is re-created with such a value instead of restarting at 0 or
 * 1, so an old entry that recorded a small version can never match again.
 */
export const freshVersion = (): string =>
  (BigInt(Date.now()) * 1_000_000n + BigInt(randomInt(1_000_000))).toString();

export interface LoadPreparation {
  readonly locked: boolean;
  /** Versions to store with the new entry, all present and numeric. */
  readonly versions: readonly string[];
}

/**
 * Before a load, in one round trip: take the stampede lock (`SET NX PX`) and create missing
 * or unreadable version keys (`SET NX` / `SET`), re-reading the versions if any was created.
 */
export const prepareLoad = async (
  redis: CacheRedisClient,
  lock: { key: string; token: string; ttlMs: number } | undefined,
  versionKeys: readonly string[],
  versionsRead: readonly (string | null)[],
): Promise<LoadPreparation> => {
  const pipeline = redis.pipeline();
  if (lock) pipeline.set(lock.key, lock.token, 'PX', lock.ttlMs, 'NX');
  let repairs = 0;
  versionKeys.forEach((key, i) => {
    const version = versionsRead[i];
    if (version === null || version === undefined) {
      pipeline.set(key, freshVersion(), 'NX');
      repairs += 1;
    } else if (!VERSION.test(version)) {
      pipeline.set(key, freshVersion());
      repairs += 1;
    }
  });
  if (repairs > 0) pipeline.mget(...versionKeys);
  const expected = (lock ? 1 : 0) + (repairs > 0 ? repairs + 1 : 0);
  if (expected === 0) return { locked: false, versions: versionsRead as string[] };
  const results = resultsOf(await pipeline.exec(), expected);
  for (const [error] of results) if (error) throw error;
  const locked = lock ? results[0]?.[1] === 'OK' : false;
  if (repairs === 0) return { locked, versions: versionsRead as string[] };
  const versions = results[results.length - 1]?.[1];
  if (
    !Array.isArray(versions) ||
    versions.length !== versionKeys.length ||
    !versions.every((v) => typeof v === 'string' && VERSION.test(v))
  ) {
    throw new Error('Redis MGET of table versions returned an unexpected reply');
  }
  return { locked, versions: versions as string[] };
};

/** Deletes the lock only if it still holds our token (it may have expired and been retaken). */
const RELEASE_LOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

/** Writes the entry (when given) and releases our lock (when held), in one round trip. */
export const storeEntry = async (
  redis: CacheRedisClient,
  entry: { key: string; value: string; ttlMs: number } | undefined,
  lock: { key: string; token: string } | undefined,
): Promise<void> => {
  if (!entry && !lock) return;
  const pipeline = redis.pipeline();
  if (entry) pipeline.set(entry.key, entry.value, 'PX', entry.ttlMs);
  if (lock) pipeline.eval(RELEASE_LOCK, 1, lock.key, lock.token);
  const results = resultsOf(await pipeline.exec(), (entry ? 1 : 0) + (lock ? 1 : 0));
  for (const [error] of results) if (error) throw error;
};

/**
 * INCR each version; a key that was missing (INCR gave 1) or held a non-integer gets a fresh
 * value instead (see {@link freshVersion}). All keys of one call share a hash tag, so the
 * script is valid on cluster-mode Redis.
 */
const BUMP_VERSIONS = `for i, key in ipairs(KEYS) do
  local v = redis.pcall('INCR', key)
  if type(v) ~= 'number' or v == 1 then
    redis.call('SET', key, ARGV[i])
  end
end
return #KEYS`;

export const bumpVersions = async (
  redis: CacheRedisClient,
  versionKeys: readonly string[],
): Promise<void> => {
  if (versionKeys.length === 0) return;
  await redis.eval(
    BUMP_VERSIONS,
    versionKeys.length,
    ...versionKeys,
    ...versionKeys.map(() => freshVersion()),
  );
};
