import { beforeAll, describe, expect, it } from 'vitest';
import { initSqlParser, parseStatements } from '#shared/sql';
import { candidateDdl, generateCandidates } from '../../../shared/advisor/candidates.ts';
import type { ColumnStats, ExistingIndex, TableInfo } from '../../../shared/advisor/catalog.ts';
import { extractShape, resolveAccess } from '../../../shared/advisor/predicates.ts';

const table = (
  name: string,
  columns: Record<string, string>,
  options: {
    rows?: number;
    indexes?: ExistingIndex[];
    stats?: Record<string, Partial<ColumnStats>>;
    cCollation?: boolean;
  } = {},
): TableInfo => ({
  key: `public.${name}`,
  oid: 1,
  schema: 'public',
  name,
  rows: options.rows ?? 100_000,
  pages: 1_000,
  analysed: true,
  columns: new Map(
    Object.entries(columns).map(([col, typeName]) => [
      col,
      {
        name: col,
        type: typeName,
        typeName,
        cCollation: options.cCollation ?? false,
        collatable: typeName === 'text',
      },
    ]),
  ),
  indexes: options.indexes ?? [],
  foreignKeys: [],
  stats: new Map(
    Object.entries(options.stats ?? {}).map(([col, s]) => [
      col,
      {
        nullFraction: 0,
        distinct: -1,
        mostCommonValues: [],
        mostCommonFrequencies: [],
        histogramBounds: [],
        avgWidth: 8,
        ...s,
      },
    ]),
  ),
});

const pk = (name: string, keys: string[]): ExistingIndex => ({
  name,
  method: 'btree',
  valid: true,
  primary: true,
  keys,
  predicate: null,
  sizeBytes: 1,
});

const ORDERS = table(
  'orders',
  {
    id: 'int4',
    customer_id: 'int4',
    created_at: 'timestamptz',
    status: 'text',
    name: 'text',
    doc: 'jsonb',
  },
  {
    indexes: [pk('orders_pkey', ['id'])],
    stats: {
      status: {
        mostCommonValues: ['done', 'hold'],
        mostCommonFrequencies: [0.95, 0.01],
        distinct: 3,
      },
      customer_id: { distinct: 1000 },
    },
  },
);

const generate = (
  sql: string,
  params: unknown[][] = [],
  tables: TableInfo[] = [ORDERS],
  extensions: string[] = ['pg_trgm'],
) => {
  const byKey = new Map(tables.map((t) => [t.key, t]));
  const accesses = resolveAccess(extractShape(parseStatements(sql)[0]?.stmt), (t) => {
    const info = byKey.get(`public.${t.name}`);
    return info ? { key: info.key, columns: new Set(info.columns.keys()) } : undefined;
  });
  return generateCandidates([{ id: 'q', accesses, params }], byKey, new Set(extensions), {
    minTableRows: 10_000,
    partialMaxFraction: 0.1,
  });
};

const keysOf = (r: ReturnType<typeof generate>) =>
  r.candidates.map(
    (c) =>
      `${c.method}(${c.keys.map((k) => k.sql).join(', ')})${c.where ? ` WHERE ${c.where}` : ''}`,
  );

beforeAll(async () => {
  await initSqlParser();
});

describe('generateCandidates', () => {
  it('puts equality first, then the ORDER BY column, and never the ORDER BY column alone when the table is filtered', () => {
    // Act
    const result = generate(
      'SELECT id FROM orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 10',
      [[1]],
    );

    // Assess
    expect(keysOf(result)).toEqual(['btree(customer_id)', 'btree(customer_id, created_at)']);
  });

  it('offers a partial index for a rare literal and none for a common one', () => {
    // Act
    const rare = generate(
      "SELECT id FROM orders WHERE status = 'hold' AND created_at < $1 ORDER BY created_at LIMIT 5",
      [['2024-01-01']],
    );
    const common = generate("SELECT id FROM orders WHERE status = 'done' AND created_at < $1", [
      ['2024-01-01'],
    ]);

    // Assess
    expect(keysOf(rare)).toContain("btree(created_at) WHERE status = 'hold'");
    expect(keysOf(common).some((k) => k.includes('WHERE'))).toBe(false);
  });

  it.each([
    ['prefix values under a non-C collation', [['Ab%']], false, ['btree(name text_pattern_ops)']],
    ['prefix values under C collation', [['Ab%']], true, ['btree(name)']],
    ['infix values', [['%ab%']], false, ['gin(name gin_trgm_ops)']],
  ])('LIKE with %s', (_, params, cCollation, expected) => {
    // Prepare
    const t = table('orders', { id: 'int4', name: 'text' }, { cCollation });

    // Act
    const result = generate('SELECT id FROM orders WHERE name LIKE $1', params, [t]);

    // Assess
    expect(keysOf(result)).toEqual(expected);
  });

  it("treats '%' || $1 || '%' as a substring search whatever the example values are", () => {
    // Act
    const result = generate("SELECT id FROM orders WHERE name LIKE '%' || $1 || '%'", [['ab']]);

    // Assess
    expect(keysOf(result)).toContain('gin(name gin_trgm_ops)');
  });

  it('warns instead of proposing a trigram index when pg_trgm is not installed', () => {
    // Act
    const result = generate('SELECT id FROM orders WHERE name ILIKE $1', [['%x%']], [ORDERS], []);

    // Assess
    expect(result.candidates).toEqual([]);
    expect(result.warnings.join(' ')).toContain('CREATE EXTENSION pg_trgm');
  });

  it('proposes GIN for jsonb containment', () => {
    // Act
    const result = generate('SELECT id FROM orders WHERE doc @> $1::jsonb', [['{"a":1}']]);

    // Assess
    expect(keysOf(result)).toEqual(['gin(doc)']);
  });

  it('rejects candidates on tiny tables and those an existing index already leads with', () => {
    // Prepare
    const tiny = table('codes', { id: 'int4', code: 'text' }, { rows: 40 });
    const events = table(
      'events',
      { id: 'int4', account_id: 'int4', at: 'timestamptz' },
      {
        indexes: [{ ...pk('events_account_at_idx', ['account_id', 'at']), primary: false }],
      },
    );

    // Act
    const small = generate('SELECT id FROM codes WHERE code = $1', [['a']], [tiny]);
    const covered = generate('SELECT id FROM events WHERE account_id = $1', [[1]], [events]);

    // Assess
    expect(small.candidates).toEqual([]);
    expect(small.rejected[0]?.reason).toContain('ADVISOR_MIN_TABLE_ROWS');
    expect(covered.candidates).toEqual([]);
    expect(covered.rejected[0]?.reason).toContain('events_account_at_idx');
  });

  it("keeps a composite primary key's second column queried alone", () => {
    // Prepare
    const m = table(
      'memberships',
      { group_id: 'int4', user_id: 'int4' },
      { indexes: [pk('memberships_pkey', ['group_id', 'user_id'])] },
    );

    // Act
    const result = generate('SELECT group_id FROM memberships WHERE user_id = $1', [[1]], [m]);

    // Assess
    expect(keysOf(result)).toEqual(['btree(user_id)']);
  });
});

describe('generateCandidates INCLUDE variants', () => {
  it.each([
    [
      'narrow columns',
      'SELECT id, created_at FROM orders WHERE customer_id = $1',
      ['id', 'created_at'],
    ],
    ['a jsonb column', 'SELECT id, doc FROM orders WHERE customer_id = $1', undefined],
    ['SELECT *', 'SELECT * FROM orders WHERE customer_id = $1', undefined],
  ])('for %s', (_, sql, include) => {
    // Prepare
    const t = table(
      'orders',
      { id: 'int4', customer_id: 'int4', created_at: 'timestamptz', doc: 'jsonb' },
      {
        stats: {
          id: { avgWidth: 4 },
          created_at: { avgWidth: 8 },
          doc: { avgWidth: 20 },
          customer_id: { avgWidth: 4 },
        },
      },
    );

    // Act
    const result = generate(sql, [[1]], [t]);

    // Assess
    expect(result.candidates.find((c) => c.include.length > 0)?.include).toEqual(include);
  });
});

describe('candidateDdl', () => {
  it('renders expression keys in parentheses, the predicate and a deterministic name', () => {
    // Prepare
    const users = table('users', { id: 'int4', email: 'text' });

    // Act
    const [c] = generate(
      'SELECT id FROM users WHERE lower(email) = lower($1)',
      [['a']],
      [users],
    ).candidates;

    // Assess
    expect(c && candidateDdl(c)).toBe(
      'CREATE INDEX CONCURRENTLY users_lower_email_idx ON public.users USING btree ((lower(email)));',
    );
  });
});
