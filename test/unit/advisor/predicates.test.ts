import { beforeAll, describe, expect, it } from 'vitest';
import { initSqlParser, parseStatements } from '#shared/sql';
import {
  extractShape,
  type RawPredicate,
  resolveAccess,
  type TableLookup,
} from '../../../shared/advisor/predicates.ts';

const shapeOf = (sql: string) => extractShape(parseStatements(sql)[0]?.stmt);

const strip = (p: RawPredicate) => ({
  target: p.target.kind === 'column' ? p.target.ref.column : p.target.sql,
  op: p.op,
  params: p.params,
  ...(p.bound ? { bound: p.bound } : {}),
  ...(p.literal ? { literal: p.literal.sql } : {}),
  ...(p.caseInsensitive ? { ci: true } : {}),
});

const TABLES: Record<string, string[]> = {
  bookings: ['id', 'guest_id', 'room_id', 'status', 'check_in', 'created_at'],
  guests: ['id', 'email', 'full_name'],
};
const lookup: TableLookup = (t) =>
  TABLES[t.name] ? { key: `public.${t.name}`, columns: new Set(TABLES[t.name]) } : undefined;

beforeAll(async () => {
  await initSqlParser();
});

describe('extractShape', () => {
  it.each([
    [
      'SELECT id FROM guests WHERE lower(email) = lower($1)',
      [{ target: 'lower(email)', op: 'eq', params: [1] }],
    ],
    [
      'SELECT id FROM bookings WHERE $1 < created_at',
      [{ target: 'created_at', op: 'range', params: [1], bound: 'lower' }],
    ],
    [
      'SELECT id FROM bookings WHERE check_in BETWEEN $1 AND $2',
      [
        { target: 'check_in', op: 'range', params: [1], bound: 'lower' },
        { target: 'check_in', op: 'range', params: [2], bound: 'upper' },
      ],
    ],
    [
      'SELECT id FROM bookings WHERE room_id IN ($1, $2)',
      [{ target: 'room_id', op: 'eq', params: [1, 2] }],
    ],
    [
      'SELECT id FROM bookings WHERE room_id = ANY($1)',
      [{ target: 'room_id', op: 'eq', params: [1] }],
    ],
    [
      'SELECT id FROM guests WHERE full_name LIKE $1',
      [{ target: 'full_name', op: 'like', params: [1] }],
    ],
    [
      'SELECT id FROM guests WHERE full_name ILIKE $1',
      [{ target: 'full_name', op: 'like', params: [1], ci: true }],
    ],
    [
      'SELECT id FROM guests WHERE prefs @> $1::jsonb',
      [{ target: 'prefs', op: 'contains', params: [1] }],
    ],
    [
      "SELECT id FROM bookings WHERE status = 'hold'",
      [{ target: 'status', op: 'eq', params: [], literal: "'hold'" }],
    ],
    [
      'SELECT id FROM bookings WHERE check_in = $1::date',
      [{ target: 'check_in', op: 'eq', params: [1] }],
    ],
    // A partial index's WHERE stays on one line and means the same with
    // standard_conforming_strings off: E'…' with escapes.
    [
      "SELECT id FROM notes WHERE label = E'two\\nlines \\\\ it''s'",
      [{ target: 'label', op: 'eq', params: [], literal: "E'two\\nlines \\\\ it''s'" }],
    ],
  ])('%s', (sql, expected) => {
    // Act
    const shape = shapeOf(sql);

    // Assess
    expect(shape.blocks[0]?.predicates.map(strip)).toEqual(expected);
  });

  it('keeps non-indexable conditions (<>, OR) as other filters, not predicates', () => {
    // Act
    const block = shapeOf(
      "SELECT id FROM bookings WHERE status <> 'x' AND (room_id = 1 OR guest_id = 2)",
    ).blocks[0];

    // Assess
    expect(block?.predicates).toEqual([]);
    expect(block?.otherFilters.map((c) => c.column).sort()).toEqual([
      'guest_id',
      'room_id',
      'status',
    ]);
  });

  it('reads UPDATE targets and SET columns, and the WHERE of the update', () => {
    // Act
    const shape = shapeOf('UPDATE bookings SET status = $2, check_in = $3 WHERE id = $1');

    // Assess
    expect(shape.kind).toBe('update');
    expect(shape.writeTarget?.name).toBe('bookings');
    expect(shape.setColumns).toEqual(['status', 'check_in']);
    expect(shape.blocks[0]?.predicates.map(strip)).toEqual([
      { target: 'id', op: 'eq', params: [1] },
    ]);
  });

  it('finds sub-selects (EXISTS) as blocks of their own', () => {
    // Act
    const shape = shapeOf(
      'SELECT id FROM guests g WHERE EXISTS (SELECT 1 FROM bookings b WHERE b.guest_id = g.id AND b.room_id = $1)',
    );

    // Assess
    expect(shape.blocks).toHaveLength(2);
    expect(shape.blocks[1]?.predicates.map(strip)).toEqual([
      { target: 'room_id', op: 'eq', params: [1] },
    ]);
  });
});

describe('resolveAccess', () => {
  it('maps aliases and unqualified columns to tables, with join columns and ORDER BY of one table', () => {
    // Prepare
    const shape = shapeOf(
      'SELECT g.id, b.check_in FROM bookings b JOIN guests g ON g.id = b.guest_id WHERE room_id = $1 AND b.check_in >= $2 ORDER BY b.check_in LIMIT 5',
    );

    // Act
    const accesses = resolveAccess(shape, lookup);

    // Assess
    const bookings = accesses.find((a) => a.table === 'public.bookings');
    const guests = accesses.find((a) => a.table === 'public.guests');
    expect(
      bookings?.predicates.map((p) => [p.key.kind === 'column' ? p.key.column : '', p.op]),
    ).toEqual([
      ['room_id', 'eq'],
      ['check_in', 'range'],
    ]);
    expect(bookings?.joinColumns).toEqual(['guest_id']);
    expect(bookings?.orderBy).toEqual([
      { key: { kind: 'column', column: 'check_in' }, desc: false },
    ]);
    expect(bookings?.hasLimit).toBe(true);
    expect(guests?.joinColumns).toEqual(['id']);
    expect(guests?.orderBy).toEqual([]);
  });

  it('drops an ORDER BY spanning two tables and ambiguous unqualified columns', () => {
    // Prepare
    const shape = shapeOf(
      'SELECT 1 FROM bookings b JOIN guests g ON g.id = b.guest_id WHERE id = $1 ORDER BY b.check_in, g.full_name',
    );

    // Act
    const accesses = resolveAccess(shape, lookup);

    // Assess
    for (const a of accesses) {
      expect(a.orderBy).toEqual([]);
      expect(a.predicates).toEqual([]);
    }
  });
});
