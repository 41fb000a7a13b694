import { describe, expect, it } from 'vitest';
import type { Queryable } from '#shared/db';
import { DatabaseError } from '#shared/errors';
import { readStatementSnapshot, StatsError } from '#shared/stats';

const ACTIONABLE =
  'pg_stat_statements is not enabled on primary: add it to shared_preload_libraries (on RDS/Aurora: in the DB parameter group, then reboot) and run CREATE EXTENSION pg_stat_statements';

/** A server whose pg_extension lists the extension (or not) and whose view read fails with `err`. */
const server = (extension: boolean, err?: unknown): Queryable => ({
  query: async <R>(sql: string) => {
    if (sql.includes('pg_extension'))
      return { rows: (extension ? [{ extversion: '1.10' }] : []) as R[] };
    if (err) throw err;
    return { rows: [] as R[] };
  },
});

describe('readStatementSnapshot failures', () => {
  it.each<[string, Queryable, string]>([
    ['the extension is not created', server(false), 'extension not created'],
    [
      'the library is not preloaded (SQLSTATE 55000)',
      server(
        true,
        new DatabaseError('pg_stat_statements must be loaded via "shared_preload_libraries"', {
          details: { sqlState: '55000' },
        }),
      ),
      'not in shared_preload_libraries',
    ],
  ])('says how to enable pg_stat_statements when %s', async (_name, q, reason) => {
    // Act
    const failure = await readStatementSnapshot(q, {
      target: 'primary',
      serverVersionNum: 150_004,
    }).catch((e: unknown) => e);
    // Assess
    expect(failure).toBeInstanceOf(StatsError);
    expect(failure).toMatchObject({ code: 'PG_STAT_STATEMENTS_MISSING', message: ACTIONABLE });
    expect((failure as StatsError).details.reason).toBe(reason);
  });

  it('passes other failures through unchanged', async () => {
    // Prepare
    const other = new DatabaseError('disk full', { details: { sqlState: '53100' } });
    // Act
    const failure = await readStatementSnapshot(server(true, other), {
      target: 'primary',
      serverVersionNum: 150_004,
    }).catch((e: unknown) => e);
    // Assess
    expect(failure).toBe(other);
  });
});
