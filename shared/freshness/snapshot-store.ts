import { z } from 'zod';
import type { CounterSnapshot } from './counters.ts';
import { FreshnessError } from './errors.ts';

/** Where a sweeper keeps the previous {@link CounterSnapshot}, one per target. */
export interface SnapshotStore {
  /** The saved snapshot, or undefined when none was saved. Throws `SNAPSHOT_INVALID` on garbage. */
  load(target: string): Promise<CounterSnapshot | undefined>;
  save(target: string, snapshot: CounterSnapshot): Promise<void>;
}

/** The narrow Redis surface the store needs; an ioredis `Redis` or `Cluster` fits. */
export interface SnapshotRedis {
  get(key: string): Promise<string | null>;
  set(key: string, value: string): Promise<unknown>;
}

const CounterString = z.string().regex(/^-?\d+$/);

const TableCountersSchema = z.object({
  relid: z.string(),
  schemaName: z.string(),
  relName: z.string(),
  relfilenode: CounterString,
  nTupIns: CounterString,
  nTupUpd: CounterString,
  nTupDel: CounterString,
  nLiveTup: CounterString,
  nDeadTup: CounterString,
  ancestors: z.array(z.string()),
});

const CounterSnapshotSchema = z.object({
  formatVersion: z.literal(1),
  takenAt: z.string(),
  epoch: z.object({
    statsResetAt: z.string().nullable(),
    serverStartedAt: z.string(),
    transactionCount: CounterString,
  }),
  tables: z.array(TableCountersSchema),
});

/** Parses stored JSON; anything else (old format, truncated value) is a typed error. */
export const parseCounterSnapshot = (json: string): CounterSnapshot => {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    throw new FreshnessError('SNAPSHOT_INVALID', 'stored counter snapshot is not JSON', {
      cause: err,
    });
  }
  const parsed = CounterSnapshotSchema.safeParse(value);
  if (!parsed.success) {
    throw new FreshnessError('SNAPSHOT_INVALID', 'stored counter snapshot has the wrong shape', {
      cause: parsed.error,
    });
  }
  return parsed.data;
};

/** The default Redis key prefix; the target follows it. */
export const SNAPSHOT_KEY_PREFIX = 'dbopt:freshness:snapshot:';

/**
 * Keeps each target's snapshot as one JSON string in Redis, without TTL: an expired snapshot
 * would only cost one "everything changed" sweep, but there is no reason to pay it. The key
 * holds no hash tag; it is read and written alone, never in a multi-key command.
 * Redis errors are rethrown as {@link FreshnessError} (`SNAPSHOT_LOAD_FAILED`/`SNAPSHOT_SAVE_FAILED`).
 */
export const createRedisSnapshotStore = (
  redis: SnapshotRedis,
  options: { keyPrefix?: string } = {},
): SnapshotStore => {
  const keyPrefix = options.keyPrefix ?? SNAPSHOT_KEY_PREFIX;
  return Object.freeze({
    async load(target: string) {
      let json: string | null;
      try {
        json = await redis.get(keyPrefix + target);
      } catch (err) {
        throw new FreshnessError(
          'SNAPSHOT_LOAD_FAILED',
          'counter snapshot read from Redis failed',
          {
            cause: err,
            details: { target },
          },
        );
      }
      return json === null ? undefined : parseCounterSnapshot(json);
    },
    async save(target: string, snapshot: CounterSnapshot) {
      try {
        await redis.set(keyPrefix + target, JSON.stringify(snapshot));
      } catch (err) {
        throw new FreshnessError('SNAPSHOT_SAVE_FAILED', 'counter snapshot write to Redis failed', {
          cause: err,
          details: { target },
        });
      }
    },
  });
};

/**
 * Keeps snapshots in this process, for local mode without Redis. Stores a copy, so a caller
 * mutating its snapshot afterwards cannot change what the next sweep compares against.
 */
export const createMemorySnapshotStore = (): SnapshotStore => {
  const snapshots = new Map<string, CounterSnapshot>();
  return Object.freeze({
    load: async (target: string) => {
      const snapshot = snapshots.get(target);
      return snapshot ? structuredClone(snapshot) : undefined;
    },
    save: async (target: string, snapshot: CounterSnapshot) => {
      snapshots.set(target, structuredClone(snapshot));
    },
  });
};
