import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { findIndexHygiene, type HygieneReport } from '#shared/advisor';
import { recreateDatabase, runSql } from '../optimizer/scratch-db.ts';

// One table with one index of each category, plus the indexes that must never be flagged.
const SCHEMA = `
CREATE TABLE parents (id int PRIMARY KEY);
INSERT INTO parents SELECT generate_series(1, 100);
CREATE TABLE items (
  id int PRIMARY KEY,
  a int, b int, c int, d int, code text UNIQUE,
  parent_id int REFERENCES parents (id),
  used int
);
INSERT INTO items SELECT g, g % 10, g % 7, g, g % 3, 'c' || g, 1 + g % 100, g FROM generate_series(1, 5000) g;
CREATE INDEX items_a_idx ON items (a);
CREATE INDEX items_a_copy_idx ON items (a);
CREATE INDEX items_a_b_idx ON items (a, b);
CREATE INDEX items_c_idx ON items (c);
CREATE INDEX items_parent_idx ON items (parent_id);
CREATE UNIQUE INDEX items_code_id_unique_idx ON items (code, id);
CREATE INDEX items_used_idx ON items (used);
CREATE TABLE readings (at date NOT NULL, v int) PARTITION BY RANGE (at);
CREATE TABLE readings_2024 PARTITION OF readings FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
INSERT INTO readings SELECT date '2024-01-01' + g % 300, g FROM generate_series(1, 2000) g;
CREATE INDEX readings_v_idx ON readings (v);
ANALYZE;
`;

let url: string;
let report: HygieneReport;

beforeAll(async () => {
  url = await recreateDatabase('dbopt_it_opt_hygiene');
  await runSql(url, SCHEMA);
  // An invalid index: a unique build over duplicate values fails and leaves it behind.
  await runSql(url, 'CREATE UNIQUE INDEX CONCURRENTLY items_d_unique_idx ON items (d)').catch(
    (err: { code?: string }) => expect(err.code).toBe('23505'),
  );
  // Scan items_used_idx (and the wide index) once, then wait for the counters to reach the view.
  await runSql(
    url,
    'SET enable_seqscan = off; SET enable_bitmapscan = off; SELECT * FROM items WHERE used = 5; SELECT * FROM items WHERE a = 1 AND b = 1',
  );
  const client = new pg.Client(url);
  await client.connect();
  try {
    for (let i = 0; i < 50; i++) {
      const { rows } = await client.query(
        "SELECT pg_stat_clear_snapshot(), (SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'items_used_idx') AS scans",
      );
      if (Number(rows[0]?.scans) > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    report = await findIndexHygiene(client, { minIndexAgeDays: 0 });
  } finally {
    await client.end();
  }
});

const finding = (index: string) => report.findings.find((f) => f.index === index);

describe('index hygiene on PostgreSQL 15', () => {
  it.each([
    ['items_d_unique_idx', 'invalid'],
    ['items_a_copy_idx', 'duplicate'],
    ['items_a_idx', 'redundant_prefix'],
    ['items_c_idx', 'unused'],
  ])('reports %s as %s, with its size and a DROP INDEX CONCURRENTLY', (index, kind) => {
    // Assess
    const f = finding(index);
    expect(f).toMatchObject({ kind, schema: 'public', table: 'items', index });
    expect(f?.dropStatement).toBe(`DROP INDEX CONCURRENTLY "public"."${index}";`);
    // A failed unique build can leave an empty (0-byte) invalid index.
    expect(f?.sizeBytes).toBeGreaterThanOrEqual(kind === 'invalid' ? 0 : 8192);
    expect(f?.reason.length).toBeGreaterThan(10);
  });

  it('names the index a duplicate duplicates', () => {
    expect(finding('items_a_copy_idx')?.reason).toContain('"public"."items_a_idx"');
  });

  it.each([
    ['items_pkey', 'backs the primary key'],
    ['items_code_key', 'backs a UNIQUE constraint'],
    ['items_code_id_unique_idx', 'enforces uniqueness'],
    ['items_parent_idx', 'is the only index on a foreign key'],
    ['items_used_idx', 'was scanned'],
    ['items_a_b_idx', 'is the wider index the prefix one is redundant with'],
    ['readings_v_idx', 'is a partitioned index: its partitions count the scans'],
    ['readings_2024_v_idx', 'belongs to a partitioned index and cannot be dropped alone'],
  ])('never reports %s (it %s)', (index) => {
    expect(finding(index)).toBeUndefined();
  });

  it('never reports the index a prefix-redundant one is redundant with, even when unused', async () => {
    // Prepare: counters reset, so the wide index looks unused too
    await runSql(url, 'SELECT pg_stat_reset()');
    const client = new pg.Client(url);
    await client.connect();
    // Act
    const later = await findIndexHygiene(client, { minIndexAgeDays: 0 }).finally(() =>
      client.end(),
    );
    // Assess
    expect(later.findings.find((f) => f.index === 'items_c_idx')?.kind).toBe('unused');
    expect(later.findings.find((f) => f.index === 'items_a_b_idx')).toBeUndefined();
    expect(later.skipped).toContainEqual({
      index: '"public"."items_a_b_idx"',
      reason: expect.stringContaining('redundant'),
    });
  });

  it('says why the foreign-key index was skipped', () => {
    expect(report.skipped).toContainEqual({
      index: '"public"."items_parent_idx"',
      reason: expect.stringContaining('foreign key'),
    });
  });

  it('holds back unused indexes while the statistics window is shorter than the minimum age', async () => {
    // Prepare: counters reset just now
    await runSql(url, 'SELECT pg_stat_reset()');
    const client = new pg.Client(url);
    await client.connect();
    // Act
    const recent = await findIndexHygiene(client, { minIndexAgeDays: 7 }).finally(() =>
      client.end(),
    );
    // Assess
    expect(recent.statsResetAt).toBeInstanceOf(Date);
    expect(recent.findings.filter((f) => f.kind === 'unused')).toEqual([]);
    expect(recent.skipped.map((s) => s.index)).toContain('"public"."items_c_idx"');
    expect(recent.findings.map((f) => f.kind).sort()).toEqual([
      'duplicate',
      'invalid',
      'redundant_prefix',
    ]);
  });
});
