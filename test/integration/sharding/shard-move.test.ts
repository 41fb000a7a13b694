import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createShardRouter,
  parseShardMap,
  planRebalance,
  type ShardMap,
  validateShardMap,
} from '#shared/sharding';
import { type MoveIo, processMoveIo, runShardMove } from '../../../local/shard-move.ts';
import { TEST_DATABASE_URL } from '../support/env.ts';

/**
 * Three real databases as shards: `a` and `b` hold the rows, `c` is added. Two tables: one
 * keyed by its primary key, one with a composite primary key and a shard key inside it.
 */
const SHARDS = ['a', 'b', 'c'] as const;
const urlOf = (name: string) => {
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/dbopt_it_shard_${name}`;
  return url.toString();
};
const USERS = Array.from({ length: 600 }, (_, i) => `user:${i}`);
const TABLES = [
  { name: 'accounts', shardKey: 'id', primaryKey: ['id'] },
  { name: 'events', shardKey: 'user_id', primaryKey: ['user_id', 'seq'] },
];
const CURRENT: ShardMap = validateShardMap({ version: 1, shards: [{ name: 'a' }, { name: 'b' }] });
const NEXT = planRebalance(CURRENT, { add: ['c'] }).next;

describe('dbopt shard move with three PostgreSQL databases', () => {
  const clients = new Map<string, pg.Client>();
  const db = (name: string) => clients.get(name) as pg.Client;
  let dir: string;
  let paths: { map: string; to: string; tables: string; urls: string; state: string };
  const output: string[] = [];

  const io = (afterBatch?: MoveIo['afterBatch']): MoveIo => ({
    ...processMoveIo({
      out: (line) => output.push(line),
      err: (line) => output.push(line),
      env: {},
      readFile: (path) => readFileSync(path, 'utf8'),
    }),
    afterBatch,
  });
  const options = (extra: Record<string, unknown> = {}) => ({
    map: paths.map,
    to: paths.to,
    tables: paths.tables,
    urls: paths.urls,
    state: paths.state,
    batchSize: 100,
    ...extra,
  });

  /** Rows per shard: `home` is the shard the current map routes the key to. */
  const snapshot = async () => {
    const result: Record<string, { accounts: string[]; events: string[] }> = {};
    for (const name of SHARDS) {
      const accounts = await db(name).query<{ id: string }>('SELECT id FROM accounts ORDER BY id');
      const events = await db(name).query<{ k: string }>(
        "SELECT user_id || '#' || seq AS k FROM events ORDER BY 1",
      );
      result[name] = {
        accounts: accounts.rows.map((r) => r.id),
        events: events.rows.map((r) => r.k),
      };
    }
    return result;
  };

  beforeAll(async () => {
    const admin = new pg.Client(TEST_DATABASE_URL);
    await admin.connect();
    for (const name of SHARDS) {
      const datname = `dbopt_it_shard_${name}`;
      const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [datname]);
      if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${datname}`);
      const client = new pg.Client(urlOf(name));
      await client.connect();
      clients.set(name, client);
    }
    await admin.end();
  });

  beforeEach(async () => {
    const router = createShardRouter(CURRENT);
    for (const name of SHARDS) {
      await db(name).query(`
        DROP TABLE IF EXISTS accounts, events;
        CREATE TABLE accounts (id text PRIMARY KEY, balance numeric(12,2) NOT NULL, tags text[], note text,
          id_len int GENERATED ALWAYS AS (length(id)) STORED);
        CREATE TABLE events (user_id text, seq int, payload jsonb, at timestamptz, PRIMARY KEY (user_id, seq));
      `);
      const mine = USERS.filter((key) => router.route(key).shard === name);
      if (mine.length === 0) continue;
      await db(name).query(
        `INSERT INTO accounts (id, balance, tags, note)
         SELECT k, (ordinality * 1.25)::numeric(12,2), ARRAY['x', k], CASE WHEN ordinality % 7 = 0 THEN NULL ELSE 'n' || ordinality END
         FROM unnest($1::text[]) WITH ORDINALITY AS u(k, ordinality)`,
        [mine],
      );
      await db(name).query(
        `INSERT INTO events
         SELECT k, s, jsonb_build_object('k', k, 's', s, 'big', 12345678901234567890.5), '2026-01-01T00:00:00Z'::timestamptz + s * interval '1 hour'
         FROM unnest($1::text[]) AS k, generate_series(1, 3) AS s`,
        [mine],
      );
    }
    dir = mkdtempSync(join(tmpdir(), 'dbopt-move-'));
    paths = {
      map: join(dir, 'map.json'),
      to: join(dir, 'next.json'),
      tables: join(dir, 'tables.json'),
      urls: join(dir, 'urls.json'),
      state: join(dir, 'move.state.json'),
    };
    writeFileSync(paths.map, JSON.stringify(CURRENT));
    writeFileSync(paths.to, JSON.stringify(NEXT));
    writeFileSync(paths.tables, JSON.stringify(TABLES));
    writeFileSync(paths.urls, JSON.stringify(Object.fromEntries(SHARDS.map((n) => [n, urlOf(n)]))));
    output.length = 0;
  });

  afterAll(async () => {
    for (const client of clients.values()) {
      await client.query('DROP TABLE IF EXISTS accounts, events');
      await client.end();
    }
    rmSync(dir, { recursive: true, force: true });
  });

  /** Every key lives exactly once, on the shard the new map routes it to, rows unchanged. */
  const expectPlacedByNewMap = async (original: Awaited<ReturnType<typeof snapshot>>) => {
    const router = createShardRouter(NEXT);
    const now = await snapshot();
    for (const name of SHARDS) {
      const expected = USERS.filter((key) => router.route(key).shard === name).sort();
      expect(now[name]?.accounts).toEqual(expected);
      expect(now[name]?.events).toHaveLength(expected.length * 3);
    }
    const all = (s: typeof now) => SHARDS.flatMap((n) => s[n]?.events ?? []).sort();
    expect(all(now)).toEqual(all(original));
  };

  it('dry run counts the rows to move and changes nothing', async () => {
    // Prepare
    const before = await snapshot();
    const moving = USERS.filter(
      (key) =>
        createShardRouter(NEXT).route(key).shard !== createShardRouter(CURRENT).route(key).shard,
    ).length;
    // Act
    const report = await runShardMove(options({ dryRun: true }), io());
    // Assess
    const copied = Object.values(report.copied).reduce((a, b) => a + b, 0);
    expect(moving).toBeGreaterThan(100);
    expect(copied).toBe(moving * 4);
    expect(await snapshot()).toEqual(before);
    expect(parseShardMap(readFileSync(paths.map, 'utf8')).version).toBe(1);
    expect(existsSync(paths.state)).toBe(false);
  });

  it('moves every moving key to the shard the new map names, verifies, switches and cleans up', async () => {
    // Prepare
    const before = await snapshot();
    const sample = await db('a').query('SELECT * FROM accounts ORDER BY id');
    const events = await db('b').query(
      'SELECT payload::text, at FROM events ORDER BY user_id, seq',
    );
    // Act: the first run stops at the switch (deploy), the second one cleans up.
    const switching = await runShardMove(options(), io());
    const afterSwitch = await snapshot();
    const report = await runShardMove(options(), io());
    // Assess: until the cleanup run, every old owner still holds all of its rows.
    expect(switching.phase).toBe('cleanup');
    for (const name of ['a', 'b'] as const) {
      expect(afterSwitch[name]).toEqual(before[name]);
    }
    expect(output.join('\n')).toContain('run the same command again');
    await expectPlacedByNewMap(before);
    expect(report.movedSlots).toBeGreaterThan(5_000);
    expect(report).toMatchObject({ phase: 'done', verifiedSlots: report.movedSlots, kept: 0 });
    expect(report.deleted).toBe(Object.values(switching.copied).reduce((a, b) => a + b, 0));
    const switched = parseShardMap(readFileSync(paths.map, 'utf8'));
    expect(switched.version).toBe(2);
    expect(createShardRouter(switched).route('user:1')).toEqual(
      createShardRouter(NEXT).route('user:1'),
    );
    // Values survive exactly (numeric scale, arrays, NULLs, jsonb with a big number, timestamps).
    const union = async (sql: string) =>
      (await Promise.all(SHARDS.map((n) => db(n).query(sql)))).flatMap((r) => r.rows);
    const sortBy = (key: string) => (x: Record<string, unknown>, y: Record<string, unknown>) =>
      String(x[key]).localeCompare(String(y[key]));
    const accountsNow = (await union('SELECT * FROM accounts')).filter((r) =>
      sample.rows.some((s) => s.id === r.id),
    );
    expect(accountsNow.sort(sortBy('id'))).toEqual([...sample.rows].sort(sortBy('id')));
    const eventsNow = await union(
      "SELECT payload::text, at FROM events WHERE payload->>'big' IS NOT NULL",
    );
    expect(eventsNow.map((r) => r.payload).sort()).toEqual(
      expect.arrayContaining(events.rows.map((r) => r.payload)),
    );
  });

  it('an interrupted move resumes from its state file without duplicates', async () => {
    // Prepare
    const before = await snapshot();
    let batches = 0;
    const abortAfterFirst: MoveIo['afterBatch'] = () => {
      batches += 1;
      if (batches === 1) throw new Error('injected crash after the first batch');
    };
    // Act
    const first = runShardMove(options(), io(abortAfterFirst));
    await expect(first).rejects.toThrow('injected crash');
    const saved = JSON.parse(readFileSync(paths.state, 'utf8'));
    await runShardMove(options(), io());
    const report = await runShardMove(options(), io());
    // Assess
    expect(saved.phase).toBe('copy');
    expect(Object.values(saved.copy).some((p) => (p as { lastPk: unknown }).lastPk !== null)).toBe(
      true,
    );
    expect(report.phase).toBe('done');
    await expectPlacedByNewMap(before);
  });

  it('rows written to the old shard during the copy are caught by verification and re-copied', async () => {
    // Prepare: after the first copied batch, change every account on shard a (the old owner).
    const before = await snapshot();
    let changed = false;
    const writeDuringCopy: MoveIo['afterBatch'] = async (event) => {
      if (changed || event.phase !== 'copy') return;
      changed = true;
      await db('a').query('UPDATE accounts SET balance = balance + 1000');
    };
    const fromA = USERS.filter(
      (k) =>
        createShardRouter(CURRENT).route(k).shard === 'a' &&
        createShardRouter(NEXT).route(k).shard === 'c',
    );
    // Act
    const report = await runShardMove(options(), io(writeDuringCopy));
    await runShardMove(options(), io());
    // Assess
    await expectPlacedByNewMap(before);
    const stale = await db('c').query<{ n: string }>(
      'SELECT count(*) AS n FROM accounts WHERE id = ANY($1) AND balance < 1000',
      [fromA],
    );
    expect(fromA.length).toBeGreaterThan(0);
    expect(stale.rows[0]?.n).toBe('0');
    expect(report.catchUpSlots).toBeGreaterThan(0);
  });

  it('cleanup keeps a row changed on the old shard after the switch and reports it', async () => {
    // Prepare: run up to the switch, then write to a moved row on its old shard.
    await runShardMove(options({ stopAfter: 'switch' }), io());
    const oldRouter = createShardRouter(CURRENT);
    const newRouter = createShardRouter(NEXT);
    const moved = USERS.find(
      (k) => oldRouter.route(k).shard === 'a' && newRouter.route(k).shard === 'c',
    );
    await db('a').query("UPDATE accounts SET note = 'late write' WHERE id = $1", [moved]);
    // Act
    const report = await runShardMove(options(), io());
    // Assess
    expect(report.kept).toBe(1);
    const left = await db('a').query('SELECT id, note FROM accounts WHERE id = $1', [moved]);
    expect(left.rows).toEqual([{ id: moved, note: 'late write' }]);
    expect(output.join('\n')).toContain('reconcile');
  });

  it("cleanup keeps a row that changes between reading the new owner's copy and the delete", async () => {
    // Prepare: switch, then race one write on the old shard against the cleanup's delete.
    await runShardMove(options(), io());
    let moved: string | undefined;
    const base = io();
    const racing: MoveIo = {
      ...base,
      connect: async (url) => {
        const client = await base.connect(url);
        if (url !== urlOf('c')) return client;
        return {
          end: () => client.end(),
          query: async (sql, params) => {
            const result = await client.query(sql, params);
            // The new owner's hashes were just read: the old row changes before the delete.
            if (moved === undefined && sql.includes('JOIN jsonb_populate_recordset')) {
              // The first account of this batch (its pk list is the first parameter).
              const [first] = JSON.parse(String(params?.[0])) as { id?: string }[];
              if (first?.id !== undefined) {
                moved = first.id;
                await db('a').query("UPDATE accounts SET note = 'raced' WHERE id = $1", [moved]);
              }
            }
            return result as never;
          },
        };
      },
    };
    // Act
    const report = await runShardMove(options(), racing);
    // Assess
    expect(moved).toBeDefined();
    const left = await db('a').query('SELECT note FROM accounts WHERE id = $1', [moved]);
    expect(left.rows).toEqual([{ note: 'raced' }]);
    expect(report.kept).toBeGreaterThanOrEqual(1);
  });

  it('never overwrites a row of another key that has the same primary key on the new shard', async () => {
    // Prepare: per-shard ids — order 1 of a moving user on a, order 1 of someone else on c.
    const movingUser = USERS.find(
      (k) =>
        createShardRouter(CURRENT).route(k).shard === 'a' &&
        createShardRouter(NEXT).route(k).shard === 'c',
    );
    for (const name of SHARDS) {
      await db(name).query(`DROP TABLE IF EXISTS orders;
        CREATE TABLE orders (id int PRIMARY KEY, user_id text NOT NULL, note text)`);
    }
    await db('a').query("INSERT INTO orders VALUES (1, $1, 'moving')", [movingUser]);
    await db('c').query("INSERT INTO orders VALUES (1, 'someone-else', 'keep me')");
    writeFileSync(
      paths.tables,
      JSON.stringify([{ name: 'orders', shardKey: 'user_id', primaryKey: ['id'] }]),
    );
    try {
      // Act
      const attempt = runShardMove(options(), io());
      // Assess
      await expect(attempt).rejects.toThrow(/primary key that shard c already uses/);
      const onC = await db('c').query('SELECT id, user_id, note FROM orders');
      const onA = await db('a').query('SELECT id, user_id, note FROM orders');
      expect(onC.rows).toEqual([{ id: 1, user_id: 'someone-else', note: 'keep me' }]);
      expect(onA.rows).toEqual([{ id: 1, user_id: movingUser, note: 'moving' }]);
    } finally {
      for (const name of SHARDS) await db(name).query('DROP TABLE IF EXISTS orders');
    }
  });

  it("copies floats exactly and verifies whatever the shards' session defaults are", async () => {
    // Prepare: shard a rounds floats (extra_float_digits 0), shard c speaks Tokyo time.
    const measures = [{ name: 'measures', shardKey: 'id', primaryKey: ['id'] }];
    for (const name of SHARDS) {
      await db(name).query(`DROP TABLE IF EXISTS measures;
        CREATE TABLE measures (id text PRIMARY KEY, ratio float8 NOT NULL, at timestamptz NOT NULL)`);
    }
    const router = createShardRouter(CURRENT);
    const onA = USERS.filter((key) => router.route(key).shard === 'a');
    await db('a').query(
      `INSERT INTO measures
       SELECT k, 0.1::float8 + n / 3.0::float8, '2026-01-01T00:00:00Z'::timestamptz + n * interval '1 minute'
       FROM unnest($1::text[]) WITH ORDINALITY AS u(k, n)`,
      [onA],
    );
    const expected = await db('a').query('SELECT id, ratio, at FROM measures ORDER BY id');
    writeFileSync(paths.tables, JSON.stringify(measures));
    await db('a').query('ALTER DATABASE dbopt_it_shard_a SET extra_float_digits = 0');
    await db('c').query("ALTER DATABASE dbopt_it_shard_c SET TimeZone = 'Asia/Tokyo'");
    try {
      // Act
      await runShardMove(options(), io());
      const report = await runShardMove(options(), io());
      // Assess: every row once, on its new owner, bit for bit.
      const rows = (
        await Promise.all(
          SHARDS.map((n) => db(n).query('SELECT id, ratio, at FROM measures ORDER BY id')),
        )
      ).flatMap((r) => r.rows);
      expect(report).toMatchObject({ phase: 'done', kept: 0 });
      expect(rows.sort((x, y) => String(x.id).localeCompare(String(y.id)))).toEqual(
        [...expected.rows].sort((x, y) => String(x.id).localeCompare(String(y.id))),
      );
    } finally {
      await db('a').query('ALTER DATABASE dbopt_it_shard_a RESET extra_float_digits');
      await db('c').query('ALTER DATABASE dbopt_it_shard_c RESET TimeZone');
      for (const name of SHARDS) await db(name).query('DROP TABLE IF EXISTS measures');
    }
  });

  it('refuses a new map whose version is not the current version + 1', async () => {
    // Prepare
    writeFileSync(paths.to, JSON.stringify({ ...NEXT, version: 5 }));
    // Act
    const attempt = runShardMove(options(), io());
    // Assess
    await expect(attempt).rejects.toThrow(/version 2/);
  });
});
