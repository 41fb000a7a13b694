import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRepository,
  MIGRATIONS,
  migrateRepository,
  type Repository,
  RepositoryError,
} from '#shared/repository';
import { recreateDatabase } from '../support/databases.ts';

/** Every column, constraint and index of the dbopt schema: what a migration can change. */
const SQL_SCHEMA_SHAPE = `
SELECT 'column' AS what, table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable AS detail
FROM information_schema.columns
WHERE table_schema = 'dbopt'
UNION ALL
SELECT 'constraint', conrelid::regclass::text || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint
WHERE connamespace = 'dbopt'::regnamespace
UNION ALL
SELECT 'index', indexdef
FROM pg_indexes
WHERE schemaname = 'dbopt'
ORDER BY 1, 2`;

describe('repository migrations and store', () => {
  let pool: pg.Pool;
  let repo: Repository;

  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: await recreateDatabase('dbopt_it_repo'), max: 4 });
    repo = createRepository(pool);
  });

  afterAll(async () => {
    await pool.end();
  });

  it('creates the schema once: concurrent first runs apply each version exactly once', async () => {
    // Act
    const results = await Promise.all([migrateRepository(pool), migrateRepository(pool)]);

    // Assess
    const applied = results.flatMap((r) => r.applied).sort();
    expect(applied).toEqual(MIGRATIONS.map((m) => m.version));
    const newest = Math.max(...MIGRATIONS.map((m) => m.version));
    expect(results.map((r) => r.version)).toEqual([newest, newest]);
    const { rows } = await pool.query('SELECT version FROM dbopt.schema_migrations ORDER BY 1');
    expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
  });

  it('a second run changes nothing', async () => {
    // Prepare
    const before = (await pool.query(SQL_SCHEMA_SHAPE)).rows;

    // Act
    const again = await migrateRepository(pool);

    // Assess
    expect(again).toEqual({
      applied: [],
      version: Math.max(...MIGRATIONS.map((m) => m.version)),
    });
    expect((await pool.query(SQL_SCHEMA_SHAPE)).rows).toEqual(before);
    expect(before.length).toBeGreaterThan(20);
  });

  it('refuses to run against a schema newer than this release', async () => {
    // Act
    const run = migrateRepository(pool, { migrations: MIGRATIONS.slice(0, 1) });

    // Assess
    await expect(run).rejects.toMatchObject({ code: 'REPOSITORY_NEWER' });
  });

  it('rolls a failing migration back entirely and names it', async () => {
    // Prepare
    const broken = [
      ...MIGRATIONS,
      {
        version: Math.max(...MIGRATIONS.map((m) => m.version)) + 1,
        name: 'broken',
        sql: 'CREATE TABLE dbopt.half (a int); SELECT 1/0',
      },
    ];

    // Act
    const error = await migrateRepository(pool, { migrations: broken }).catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(RepositoryError);
    expect(error).toMatchObject({ code: 'MIGRATION_FAILED' });
    expect((error as Error).message).toContain(`migration ${broken.at(-1)?.version} (broken)`);
    const { rows } = await pool.query("SELECT to_regclass('dbopt.half') AS half");
    expect(rows[0].half).toBeNull();
    expect((await migrateRepository(pool)).version).toBe(
      Math.max(...MIGRATIONS.map((m) => m.version)),
    );
  });

  it('keeps only the latest snapshot per target and kind', async () => {
    // Prepare
    const first = {
      target: 'primary',
      kind: 'statements',
      takenAt: new Date('2026-01-01T00:00:00Z'),
      statsReset: null,
      serverVersionNum: 150007,
      payload: { rows: [{ queryid: '1', calls: '10' }] },
    };

    // Act
    await repo.saveSnapshot(first);
    await repo.saveSnapshot({
      ...first,
      takenAt: new Date('2026-01-01T00:05:00Z'),
      payload: { rows: [{ queryid: '1', calls: '25' }] },
    });

    // Assess
    const loaded = await repo.loadSnapshot<{ rows: { calls: string }[] }>('primary', 'statements');
    expect(loaded?.takenAt.toISOString()).toBe('2026-01-01T00:05:00.000Z');
    expect(loaded?.payload.rows[0]?.calls).toBe('25');
    expect(loaded?.serverVersionNum).toBe(150007);
    expect(await repo.loadSnapshot('primary', 'database')).toBeUndefined();
  });

  it('records metric history, returns a series oldest first and prunes it', async () => {
    // Prepare
    const at = (minute: number) => new Date(Date.UTC(2026, 0, 1, 0, minute));
    await repo.recordMetrics('s1', at(2), { cacheHitRatio: 0.97, tps: 12 });
    await repo.recordMetrics('s1', at(1), { cacheHitRatio: 0.99, skipped: Number.NaN });
    await repo.recordMetrics('s2', at(1), { cacheHitRatio: 0.5 });

    // Act
    const series = await repo.metricSeries('s1', 'cacheHitRatio', at(0));
    const pruned = await repo.pruneMetrics(at(2));

    // Assess
    expect(series).toEqual([
      { at: at(1), value: 0.99 },
      { at: at(2), value: 0.97 },
    ]);
    expect(await repo.metricSeries('s1', 'skipped', at(0))).toEqual([]);
    expect(pruned).toBe(2);
    expect(await repo.metricSeries('s1', 'cacheHitRatio', at(0))).toHaveLength(1);
  });

  it('prunes metric history through an index on its time, not a scan of the whole history', async () => {
    // Prepare: planner statistics of a big history table (a week of ten metrics a minute),
    // all younger than the 14 days kept, as in steady state.
    await pool.query(
      `INSERT INTO dbopt.metric_history (target, metric, at, value)
       SELECT 'prune', 'm' || m, now() - g * interval '1 minute', 1
       FROM generate_series(1, 10080) AS g, generate_series(1, 10) AS m
       ON CONFLICT DO NOTHING`,
    );
    await pool.query('ANALYZE dbopt.metric_history');
    // Act
    const { rows } = await pool.query(
      `EXPLAIN (FORMAT JSON) DELETE FROM dbopt.metric_history WHERE at < now() - interval '14 days'`,
    );
    // Assess
    const plan = JSON.stringify(rows[0]);
    expect(plan).not.toContain('Seq Scan');
    expect(plan).toContain('metric_history_at_idx');
    await pool.query(`DELETE FROM dbopt.metric_history WHERE target = 'prune'`);
  });

  it('stores, updates and deletes alert state per target and kind', async () => {
    // Prepare
    const state = {
      target: 'primary',
      kind: 'connections',
      severity: 'WARNING' as const,
      openedAt: new Date('2026-01-01T00:00:00Z'),
      lastSentAt: new Date('2026-01-01T00:00:00Z'),
      summary: 'connections at 81%',
    };

    // Act
    await repo.saveAlertState(state);
    await repo.saveAlertState({ ...state, severity: 'CRITICAL', summary: 'connections at 97%' });
    const open = await repo.listAlertStates('primary');
    await repo.deleteAlertState('primary', 'connections');

    // Assess
    expect(open).toEqual([{ ...state, severity: 'CRITICAL', summary: 'connections at 97%' }]);
    expect(await repo.listAlertStates('primary')).toEqual([]);
  });

  it('deduplicates suggestions by key and keeps their status when re-proposed', async () => {
    // Prepare
    const suggestion = {
      target: 'primary',
      kind: 'create_index' as const,
      key: 'public.orders(customer_id,created_at)',
      ddl: 'CREATE INDEX CONCURRENTLY ON public.orders (customer_id, created_at);',
      payload: { serves: ['q1'] },
    };

    // Act
    const first = await repo.upsertSuggestion(suggestion);
    await repo.setSuggestionStatus(first.id, 'applied', { buildMs: 120 });
    const again = await repo.upsertSuggestion({ ...suggestion, payload: { serves: ['q1', 'q2'] } });
    const other = await repo.upsertSuggestion({ ...suggestion, target: 's1' });

    // Assess
    expect(first.created).toBe(true);
    expect(again).toEqual({ id: first.id, created: false });
    expect(other.created).toBe(true);
    const stored = await repo.getSuggestion(first.id);
    expect(stored).toMatchObject({
      status: 'applied',
      outcome: { buildMs: 120 },
      payload: { serves: ['q1', 'q2'] },
    });
    expect(await repo.listSuggestions({ target: 'primary', status: 'applied' })).toHaveLength(1);
    expect(await repo.listSuggestions({ status: 'proposed' })).toEqual([
      expect.objectContaining({ id: other.id, target: 's1' }),
    ]);
    await expect(
      pool.query("UPDATE dbopt.suggestions SET status = 'done' WHERE id = $1", [first.id]),
    ).rejects.toMatchObject({ code: '23514' });
  });
});
