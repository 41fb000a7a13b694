import { describe, expect, it } from 'vitest';
import {
  type CounterSnapshot,
  diffTableCounters,
  FreshnessError,
  parseCounterSnapshot,
  type TableCounters,
} from '#shared/freshness';

const table = (relName: string, overrides: Partial<TableCounters> = {}): TableCounters => ({
  relid: `oid:${relName}`,
  schemaName: 'app',
  relName,
  relfilenode: '100',
  nTupIns: '10',
  nTupUpd: '5',
  nTupDel: '1',
  nLiveTup: '9',
  nDeadTup: '6',
  ancestors: [],
  ...overrides,
});

const snapshot = (
  tables: TableCounters[],
  epoch: Partial<CounterSnapshot['epoch']> = {},
): CounterSnapshot => ({
  formatVersion: 1,
  takenAt: '2026-01-01T00:00:00.000Z',
  epoch: {
    statsResetAt: null,
    serverStartedAt: '2026-01-01 00:00:00+00',
    transactionCount: '1000',
    ...epoch,
  },
  tables,
});

const base = [table('orders'), table('items'), table('users')];
const replace = (name: string, overrides: Partial<TableCounters>): TableCounters[] =>
  base.map((t) => (t.relName === name ? { ...t, ...overrides } : t));

describe('diffTableCounters', () => {
  it.each<[string, TableCounters[], string[]]>([
    ['nothing changed', base, []],
    ['an INSERT', replace('orders', { nTupIns: '11', nLiveTup: '10' }), ['orders']],
    ['an UPDATE', replace('items', { nTupUpd: '6' }), ['items']],
    ['a DELETE', replace('users', { nTupDel: '2' }), ['users']],
    ['a TRUNCATE (only relfilenode moves)', replace('orders', { relfilenode: '200' }), ['orders']],
    ['a per-table reset (counters go down)', replace('items', { nTupIns: '0' }), ['items']],
    ['a rename (old and new name)', replace('users', { relName: 'people' }), ['people', 'users']],
    ['a new table', [...base, table('audit')], ['audit']],
    ['a dropped table', base.slice(1), ['orders']],
    [
      'a re-created table (same name, new relid)',
      replace('orders', { relid: 'oid:orders2', nTupIns: '0' }),
      ['orders'],
    ],
  ])('reports %s', (_case, currTables, expected) => {
    // Prepare
    const prev = snapshot(base);
    const curr = snapshot(currTables, { transactionCount: '1010' });
    // Act
    const result = diffTableCounters(prev, curr);
    // Assess
    expect(result).toEqual({ changed: expected, reset: false });
  });

  it.each<[string, Partial<CounterSnapshot['epoch']>]>([
    ['pg_stat_reset() moved stats_reset', { statsResetAt: '2026-01-02 00:00:00+00' }],
    ['the server restarted or failed over', { serverStartedAt: '2026-01-02 00:00:00+00' }],
    ['the transaction counter went down (crash recovery)', { transactionCount: '3' }],
  ])('treats every table as changed when %s', (_case, epoch) => {
    // Prepare
    const prev = snapshot(base);
    const curr = snapshot([table('orders'), table('items'), table('fresh')], epoch);
    // Act
    const result = diffTableCounters(prev, curr);
    // Assess
    expect(result).toEqual({ changed: ['fresh', 'items', 'orders', 'users'], reset: true });
  });

  it('ignores n_live_tup/n_dead_tup moves from autovacuum and ANALYZE', () => {
    // Prepare
    const curr = snapshot(replace('orders', { nLiveTup: '12', nDeadTup: '0' }));
    // Act
    const result = diffTableCounters(snapshot(base), curr);
    // Assess
    expect(result.changed).toEqual([]);
  });

  it('treats every current table as changed without a previous snapshot', () => {
    // Act
    const result = diffTableCounters(undefined, snapshot(base));
    // Assess
    expect(result).toEqual({ changed: ['items', 'orders', 'users'], reset: false });
  });

  it('reports the ancestors of a written partition, once, with names unique across schemas', () => {
    // Prepare
    const partitions = [
      table('events'),
      table('events_2026', { ancestors: ['events'] }),
      table('events', { relid: 'oid:other-schema-events', schemaName: 'other' }),
    ];
    const curr = partitions.map((t) => (t.relName === 'events_2026' ? { ...t, nTupIns: '99' } : t));
    // Act
    const result = diffTableCounters(snapshot(partitions), snapshot(curr));
    // Assess
    expect(result.changed).toEqual(['events', 'events_2026']);
  });

  it('reports a partition and both parents when it moves between parents', () => {
    // Prepare
    const prev = snapshot([table('p_2026', { ancestors: ['old_parent'] })]);
    const curr = snapshot([table('p_2026', { ancestors: ['new_parent'] })]);
    // Act
    const result = diffTableCounters(prev, curr);
    // Assess
    expect(result.changed).toEqual(['new_parent', 'old_parent', 'p_2026']);
  });
});

describe('parseCounterSnapshot', () => {
  it('round-trips a snapshot through JSON', () => {
    // Prepare
    const original = snapshot(base);
    // Act
    const parsed = parseCounterSnapshot(JSON.stringify(original));
    // Assess
    expect(parsed).toEqual(original);
  });

  it.each(['not json', '{"formatVersion":2}', '{"formatVersion":1,"tables":[]}'])(
    'rejects %s as SNAPSHOT_INVALID',
    (json) => {
      // Act
      const act = () => parseCounterSnapshot(json);
      // Assess
      expect(act).toThrow(FreshnessError);
      expect(act).toThrow(expect.objectContaining({ code: 'SNAPSHOT_INVALID' }));
    },
  );
});
