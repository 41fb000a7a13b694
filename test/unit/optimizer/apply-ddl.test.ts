import { beforeAll, describe, expect, it } from 'vitest';
import { prepareIndexDdl } from '#shared/advisor';
import { initSqlParser } from '#shared/sql';

beforeAll(async () => {
  await initSqlParser();
});

describe('prepareIndexDdl', () => {
  it.each([
    [
      'adds CONCURRENTLY and a name',
      'CREATE INDEX ON orders (customer_id)',
      'CREATE INDEX CONCURRENTLY "dbopt_orders_customer_id_idx" ON orders (customer_id)',
      'dbopt_orders_customer_id_idx',
    ],
    [
      'keeps an existing CONCURRENTLY, name and trailing clauses; drops the semicolon',
      'CREATE UNIQUE INDEX CONCURRENTLY o_idx ON public.orders USING btree (a, lower(b)) WHERE c > 0;',
      'CREATE UNIQUE INDEX CONCURRENTLY o_idx ON public.orders USING btree (a, lower(b)) WHERE c > 0',
      'o_idx',
    ],
    [
      'lower-case keywords',
      'create index foo on t (a)',
      'create index CONCURRENTLY foo on t (a)',
      'foo',
    ],
  ])('%s', (_name, ddl, expected, name) => {
    // Act
    const prepared = prepareIndexDdl(ddl);
    // Assess
    expect(prepared.concurrentDdl).toBe(expected);
    expect(prepared.indexName).toBe(name);
    expect(prepared.plainDdl).not.toContain('CONCURRENTLY');
  });

  it('cuts a generated name to 63 bytes', () => {
    // Act
    const prepared = prepareIndexDdl(`CREATE INDEX ON t (${'x'.repeat(40)}, ${'y'.repeat(40)})`);
    // Assess
    expect(Buffer.byteLength(prepared.indexName)).toBeLessThanOrEqual(63);
    expect(prepared.indexName.endsWith('_idx')).toBe(true);
  });

  it.each([
    ['another statement', 'DROP INDEX foo'],
    ['two statements', 'CREATE INDEX a ON t (x); CREATE INDEX b ON t (y)'],
    ['a syntax error', 'CREATE INDEX ON'],
    ['nothing', ''],
  ])('refuses %s', (_name, ddl) => {
    // Act / Assess
    expect(() => prepareIndexDdl(ddl)).toThrow(
      expect.objectContaining({ code: 'APPLY_INVALID_DDL' }),
    );
  });
});
