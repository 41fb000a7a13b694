import { describe, expect, it } from 'vitest';
import { findIndexHygiene } from '#shared/advisor';
import type { Queryable } from '#shared/db';

/** One pg_index row as SQL_INDEXES returns it; a plain, valid, unused btree by default. */
const index = (name: string, columns: number[], overrides: Record<string, unknown> = {}) => ({
  index_oid: String(1000 + name.length * 10 + columns.length),
  table_oid: '500',
  schema_name: 'app',
  index_name: name,
  table_name: 'items',
  access_method: 'btree',
  is_unique: false,
  is_valid: true,
  key_count: columns.length,
  column_count: columns.length,
  columns,
  opclasses: columns.map(() => '1978'),
  collations: columns.map(() => '0'),
  expressions: null,
  predicate: null,
  definition: `CREATE INDEX ${name} ON app.items USING btree (…)`,
  size_bytes: '16384',
  scans: '0',
  backs_constraint: false,
  building: false,
  created_at: null,
  ...overrides,
});

/** A catalog stand-in answering the three hygiene queries in order. */
const catalog = (
  indexes: ReturnType<typeof index>[],
  options: { foreignKeys?: number[][]; statsResetDaysAgo?: number } = {},
): Queryable => {
  const now = new Date('2026-11-27T10:00:00Z');
  const answers = [
    indexes,
    (options.foreignKeys ?? []).map((columns) => ({ table_oid: '500', columns })),
    [
      {
        now,
        stats_reset:
          options.statsResetDaysAgo === undefined
            ? null
            : new Date(now.getTime() - options.statsResetDaysAgo * 86_400_000),
      },
    ],
  ];
  return { query: async () => ({ rows: (answers.shift() ?? []) as never[] }) };
};

describe('findIndexHygiene (classification)', () => {
  it.each([
    ['an invalid index', [index('bad', [1], { is_valid: false })], 'bad', 'invalid'],
    [
      'an exact duplicate (the younger one)',
      [index('a', [1]), index('a_copy', [1])],
      'a_copy',
      'duplicate',
    ],
    [
      'a btree prefix of a wider btree',
      [index('ab', [1, 2], { scans: '9' }), index('a', [1])],
      'a',
      'redundant_prefix',
    ],
    ['a never-scanned index', [index('c', [3])], 'c', 'unused'],
  ])('reports %s', async (_name, indexes, name, kind) => {
    // Act
    const report = await findIndexHygiene(catalog(indexes), { minIndexAgeDays: 7 });
    // Assess
    expect(report.findings.find((f) => f.index === name)).toMatchObject({
      kind,
      dropStatement: `DROP INDEX CONCURRENTLY "app"."${name}";`,
      sizeBytes: 16384,
    });
  });

  it.each([
    ['a unique index', [index('u', [1], { is_unique: true })]],
    ['a constraint-backing index', [index('pk', [1], { backs_constraint: true })]],
    ['an index being built', [index('building', [1], { is_valid: false, building: true })]],
    ['a scanned index', [index('used', [1], { scans: '3' })]],
    [
      'a prefix with INCLUDE columns',
      [index('ab', [1, 2], { scans: '1' }), index('a_inc', [1, 4], { key_count: 1, scans: '1' })],
    ],
    [
      'a prefix under another predicate',
      [
        index('ab', [1, 2], { scans: '1' }),
        index('a_part', [1], { predicate: 'x > 0', scans: '1' }),
      ],
    ],
    [
      'a prefix with another operator class',
      [
        index('ab', [1, 2], { scans: '1' }),
        index('a_ops', [1], { opclasses: ['3126'], scans: '1' }),
      ],
    ],
    [
      'a prefix of a hash index',
      [index('ab', [1, 2], { scans: '1', access_method: 'hash' }), index('a', [1], { scans: '1' })],
    ],
    ['the only index on a foreign key', [index('fk', [5])]],
  ])('does not report %s', async (_name, indexes) => {
    // Act
    const report = await findIndexHygiene(catalog(indexes, { foreignKeys: [[5]] }), {
      minIndexAgeDays: 0,
    });
    // Assess
    expect(report.findings).toEqual([]);
  });

  it('keeps the constraint-backing copy of a duplicate pair', async () => {
    // Act
    const report = await findIndexHygiene(
      catalog([
        index('plain', [1], { scans: '5' }),
        index('a_key', [1], { backs_constraint: true, is_unique: true }),
      ]),
      { minIndexAgeDays: 0 },
    );
    // Assess
    expect(report.findings.map((f) => [f.index, f.kind])).toEqual([['plain', 'duplicate']]);
  });

  it('holds back unused indexes while the stats window is younger than the minimum age', async () => {
    // Act
    const report = await findIndexHygiene(catalog([index('c', [3])], { statsResetDaysAgo: 2 }), {
      minIndexAgeDays: 7,
    });
    // Assess
    expect(report.findings).toEqual([]);
    expect(report.skipped).toEqual([
      { index: '"app"."c"', reason: 'statistics were reset 2.0 days ago (< 7)' },
    ]);
  });

  it('holds back an index created more recently than the minimum age (commit timestamps on)', async () => {
    // Act
    const report = await findIndexHygiene(
      catalog([index('c', [3], { created_at: new Date('2026-11-26T10:00:00Z') })], {
        statsResetDaysAgo: 30,
      }),
      { minIndexAgeDays: 7 },
    );
    // Assess
    expect(report.skipped).toEqual([{ index: '"app"."c"', reason: 'created 1.0 days ago (< 7)' }]);
  });

  it('quotes identifiers in the DROP statement', async () => {
    // Act
    const report = await findIndexHygiene(
      catalog([index('Odd "name"', [3], { schema_name: 'My App' })]),
      {
        minIndexAgeDays: 0,
      },
    );
    // Assess
    expect(report.findings[0]?.dropStatement).toBe(
      'DROP INDEX CONCURRENTLY "My App"."Odd ""name""";',
    );
  });
});
