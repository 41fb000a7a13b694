import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Database } from '#shared/db';
import {
  createRedisSnapshotStore,
  createSweeper,
  FreshnessError,
  type Sweeper,
  TABLE_COUNTERS_SQL,
} from '#shared/freshness';
import { noMetrics } from '#shared/metrics';
import { TEST_DATABASE_URL, TEST_REDIS_URL, testDatabaseOptions } from '../support/env.ts';

const SCHEMA = 'freshness_it';
const TABLES = ['fx_events', 'fx_events_2026', 'fx_items', 'fx_notes', 'fx_orders'];

/**
 * A writer that disconnects right after its write flushes its table stats on exit (measured:
 * visible to other sessions within ~25 ms). A writer that stays idle may hold them for up to
 * PGSTAT_IDLE_INTERVAL (10 s); that case has its own test.
 */
const FLUSH_ON_EXIT_BOUND_MS = 2_000;
/** PGSTAT_IDLE_INTERVAL (10 s) plus one 250 ms poll and scheduling slack. */
const IDLE_WRITER_BOUND_MS = 11_500;
const POLL_MS = 50;

const logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** Runs `sql` on a fresh plain `pg` connection that then disconnects: a write outside the API. */
const writeOutOfBand = async (sql: string): Promise<void> => {
  const client = new pg.Client(TEST_DATABASE_URL);
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
};

/**
 * Sweeps until `expected` has been reported (or the bound passes) and returns everything the
 * sweeps reported plus how long it took. Collects across sweeps: a change is reported by
 * exactly one sweep, and nothing else may show up meanwhile.
 */
const sweepUntilReported = async (
  sweeper: Sweeper,
  expected: readonly string[],
  boundMs: number,
) => {
  const startedMs = performance.now();
  const reported = new Set<string>();
  while (performance.now() - startedMs < boundMs) {
    for (const table of (await sweeper.sweepOnce()).changed) reported.add(table);
    if (expected.every((table) => reported.has(table))) break;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  return { reported: [...reported].sort(), elapsedMs: performance.now() - startedMs };
};

describe('shared/freshness sweeper against PostgreSQL 15 and Redis', () => {
  let db: Database;
  let redis: Redis;
  const target = `freshness-it-${process.pid}-${Date.now()}`;
  const keyPrefix = 'dbopt:test:freshness:';
  const bumps: string[][] = [];
  let failNextBump = false;
  let sweeper: Sweeper;

  beforeAll(async () => {
    // A disconnecting client: one that stayed connected and idle would flush its INSERT counts
    // up to 10 s later, in the middle of a later test.
    await writeOutOfBand(`
      DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE;
      CREATE SCHEMA ${SCHEMA};
      CREATE TABLE ${SCHEMA}.fx_orders (id int PRIMARY KEY, total int NOT NULL);
      CREATE TABLE ${SCHEMA}.fx_items (id int PRIMARY KEY, name text NOT NULL);
      CREATE TABLE ${SCHEMA}.fx_notes (id int PRIMARY KEY, body text);
      CREATE TABLE ${SCHEMA}.fx_events (id int, year int NOT NULL) PARTITION BY LIST (year);
      CREATE TABLE ${SCHEMA}.fx_events_2026 PARTITION OF ${SCHEMA}.fx_events FOR VALUES IN (2026);
      INSERT INTO ${SCHEMA}.fx_orders SELECT g, g * 10 FROM generate_series(1, 20) g;
      INSERT INTO ${SCHEMA}.fx_items SELECT g, 'item ' || g FROM generate_series(1, 20) g;
    `);
    db = createDatabase(testDatabaseOptions(TEST_DATABASE_URL));
    redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    sweeper = createSweeper({
      db,
      target,
      store: createRedisSnapshotStore(redis, { keyPrefix }),
      bump: async (tables) => {
        if (failNextBump) {
          failNextBump = false;
          throw new Error('Redis went away');
        }
        bumps.push([...tables]);
      },
      metrics: noMetrics,
      logger,
      // Other suites share this database; watch only ours so "exactly these tables" holds.
      schemas: [SCHEMA],
    });
  });

  afterAll(async () => {
    await redis?.del(keyPrefix + target);
    redis?.disconnect();
    await db?.end();
    await writeOutOfBand(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  });

  it('marks our catalog SQL with the /* dbopt */ marker after SELECT', () => {
    expect(TABLE_COUNTERS_SQL.startsWith('SELECT /* dbopt */\n')).toBe(true);
  });

  it('reports every table on the first sweep (no snapshot), then nothing', async () => {
    // Act
    const first = await sweeper.sweepOnce();
    const second = await sweeper.sweepOnce();
    // Assess
    expect(first.changed).toEqual(TABLES);
    expect(bumps.at(-1)).toEqual(TABLES);
    expect(second.changed).toEqual([]);
    expect(await redis.get(keyPrefix + target)).toContain('"formatVersion":1');
  });

  it.each<[string, string, string[]]>([
    ['INSERT', `INSERT INTO ${SCHEMA}.fx_orders VALUES (100, 1)`, ['fx_orders']],
    ['UPDATE', `UPDATE ${SCHEMA}.fx_items SET name = 'renamed' WHERE id = 3`, ['fx_items']],
    ['DELETE', `DELETE FROM ${SCHEMA}.fx_orders WHERE id <= 5`, ['fx_orders']],
    ['TRUNCATE', `TRUNCATE ${SCHEMA}.fx_items`, ['fx_items']],
    ['TRUNCATE of an empty table', `TRUNCATE ${SCHEMA}.fx_notes`, ['fx_notes']],
    [
      'INSERT into a partition',
      `INSERT INTO ${SCHEMA}.fx_events VALUES (1, 2026)`,
      ['fx_events', 'fx_events_2026'],
    ],
  ])('reports exactly the table an out-of-band %s changed', async (_case, sql, expected) => {
    // Prepare
    expect((await sweeper.sweepOnce()).changed).toEqual([]);
    // Act
    await writeOutOfBand(sql);
    const { reported } = await sweepUntilReported(sweeper, expected, FLUSH_ON_EXIT_BOUND_MS);
    // Assess
    expect(reported).toEqual(expected);
    expect((await sweeper.sweepOnce()).changed).toEqual([]);
  });

  it('sees a write from a writer that stays connected and idle within PGSTAT_IDLE_INTERVAL', async () => {
    // Prepare: the writer's connection setup just flushed its stats, so the INSERT that
    // follows within 1 s (PGSTAT_MIN_INTERVAL) is held back until the idle timeout fires.
    const writer = new pg.Client(TEST_DATABASE_URL);
    await writer.connect();
    try {
      await writer.query('SELECT 1');
      // Act
      await writer.query(`INSERT INTO ${SCHEMA}.fx_notes VALUES (1, 'idle writer')`);
      const { reported, elapsedMs } = await sweepUntilReported(
        sweeper,
        ['fx_notes'],
        IDLE_WRITER_BOUND_MS,
      );
      // Assess
      expect(reported).toEqual(['fx_notes']);
      expect(elapsedMs).toBeLessThan(IDLE_WRITER_BOUND_MS);
    } finally {
      await writer.end();
    }
  });

  it('keeps the old snapshot when the bump fails, so the next sweep reports the change again', async () => {
    // Prepare
    expect((await sweeper.sweepOnce()).changed).toEqual([]);
    const savedBefore = await redis.get(keyPrefix + target);
    await writeOutOfBand(`INSERT INTO ${SCHEMA}.fx_orders VALUES (101, 1)`);
    failNextBump = true;
    // Act: sweep until the change reaches the bump (and the bump fails)
    let failure: unknown;
    const startedMs = performance.now();
    while (!failure && performance.now() - startedMs < FLUSH_ON_EXIT_BOUND_MS) {
      failure = await sweeper.sweepOnce().then(
        () => undefined,
        (err: unknown) => err,
      );
    }
    const savedAfterFailure = await redis.get(keyPrefix + target);
    const retry = await sweeper.sweepOnce();
    // Assess
    expect(failure).toBeInstanceOf(FreshnessError);
    expect(failure).toMatchObject({ code: 'VERSION_BUMP_FAILED' });
    expect(savedAfterFailure).toBe(savedBefore);
    expect(retry.changed).toEqual(['fx_orders']);
    expect(bumps.at(-1)).toEqual(['fx_orders']);
    expect(await redis.get(keyPrefix + target)).not.toBe(savedBefore);
  });

  it('treats every table as changed after pg_stat_reset()', async () => {
    // Prepare
    expect((await sweeper.sweepOnce()).changed).toEqual([]);
    // Act
    await writeOutOfBand('SELECT pg_stat_reset()');
    const result = await sweeper.sweepOnce();
    // Assess
    expect(result).toMatchObject({ changed: TABLES, reset: true });
    expect((await sweeper.sweepOnce()).changed).toEqual([]);
  });

  it('treats an unreadable stored snapshot as "everything changed" and overwrites it', async () => {
    // Prepare
    await redis.set(keyPrefix + target, '{"formatVersion":0}');
    // Act
    const result = await sweeper.sweepOnce();
    // Assess
    expect(result.changed).toEqual(TABLES);
    expect((await sweeper.sweepOnce()).changed).toEqual([]);
  });
});
