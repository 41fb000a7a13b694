import { describe, expect, it } from 'vitest';
import * as catalog from '../../../shared/stats/catalog.ts';

const { statementColumnsFor, statementsSqlFor, statementTotalsSqlFor } = catalog;

describe('catalog SQL', () => {
  it.each<[number, string | null, string, boolean, boolean]>([
    [120_000, '1.6', 'time', false, false],
    [130_000, '1.8', 'exec_time', false, false],
    [140_000, '1.9', 'exec_time', true, false],
    [150_004, '1.10', 'exec_time', true, false],
    [170_000, '1.11', 'exec_time', true, true],
    // Upgraded server, extension not updated: the old columns are still there.
    [140_000, '1.7', 'time', false, false],
  ])(
    'picks the pg_stat_statements columns of server %i with extension %s',
    (server, ext, execTime, toplevel, statsSince) => {
      // Act
      const columns = statementColumnsFor(server, ext);
      // Assess
      expect(columns).toMatchObject({ execTime, toplevel, info: toplevel, statsSince });
    },
  );

  it('reads total_exec_time on 13+ and total_time before', () => {
    // Act
    const v15 = statementsSqlFor(statementColumnsFor(150_000, '1.10'));
    const v12 = statementsSqlFor(statementColumnsFor(120_000, '1.7'));
    // Assess
    expect(v15).toContain('s.total_exec_time::float8 AS total_ms');
    expect(v15).toContain('s.stddev_exec_time');
    expect(v15).toContain('s.toplevel AS toplevel');
    expect(v12).toContain('s.total_time::float8 AS total_ms');
    expect(v12).toContain('NULL::boolean AS toplevel');
    expect(v12).not.toContain('exec_time');
    expect(statementTotalsSqlFor(statementColumnsFor(150_000, '1.10'))).toContain('AND s.toplevel');
  });

  it('marks every catalog statement with /* dbopt */ right after its first keyword', () => {
    // Prepare
    const texts = [
      ...(Object.values(catalog) as unknown[]).filter((v): v is string => typeof v === 'string'),
      statementsSqlFor(statementColumnsFor(150_000, '1.10')),
      statementTotalsSqlFor(statementColumnsFor(150_000, '1.10')),
    ];
    // Assess
    expect(texts.length).toBeGreaterThan(10);
    for (const sql of texts) expect(sql).toMatch(/^SELECT \/\* dbopt \*\/\n/);
  });
});
