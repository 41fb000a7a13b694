import { beforeAll, describe, expect, it } from 'vitest';
import { runApplyCommand, runHygieneCommand } from '../../../local/apply-command.ts';
import { runRewritesCommand } from '../../../local/rewrites-command.ts';
import { recreateDatabase, runSql } from '../optimizer/scratch-db.ts';

const SCHEMA = `
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE EXTENSION IF NOT EXISTS hypopg;
CREATE TABLE accounts (id int PRIMARY KEY, region int NOT NULL, name text NOT NULL);
INSERT INTO accounts SELECT g, g % 400, 'a' || g FROM generate_series(1, 40000) g;
CREATE INDEX accounts_name_idx ON accounts (name);
CREATE INDEX accounts_name_copy_idx ON accounts (name);
ANALYZE accounts;
`;

let url: string;

const capture = () => {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l) },
  };
};

beforeAll(async () => {
  url = await recreateDatabase('dbopt_it_opt_cli');
  await runSql(url, SCHEMA);
  for (let r = 1; r <= 5; r++)
    await runSql(url, 'SELECT id, name FROM accounts WHERE region = $1', [r]);
});

describe('dbopt apply / hygiene / rewrites', () => {
  it('hygiene --format sql prints exactly one DROP INDEX CONCURRENTLY per line and nothing else', async () => {
    // Prepare
    const { out, io } = capture();
    // Act
    const code = await runHygieneCommand({ databaseUrl: url, format: 'sql' }, {}, io);
    // Assess
    expect(code).toBe(0);
    expect(out).toEqual(['DROP INDEX CONCURRENTLY "public"."accounts_name_copy_idx";']);
  });

  it('apply --ddl --yes builds, verifies against pg_stat_statements and exits 0', async () => {
    // Prepare
    const { out, err, io } = capture();
    // Act
    const code = await runApplyCommand(
      { databaseUrl: url, ddl: 'CREATE INDEX accounts_region_idx ON accounts (region)', yes: true },
      {},
      io,
    );
    // Assess
    expect(code).toBe(0);
    expect(out[0]).toMatch(
      /^VERIFIED {2}accounts_region_idx: valid, makes 1 of \d+ served statement\(s\) cheaper/,
    );
    expect(err).toContain(
      'index      CREATE INDEX CONCURRENTLY accounts_region_idx ON accounts (region)',
    );
  });

  it('apply of an index nothing uses exits 3 and leaves nothing behind', async () => {
    // Prepare
    const { out, io } = capture();
    // Act
    const code = await runApplyCommand(
      {
        databaseUrl: url,
        ddl: 'CREATE INDEX accounts_id_name_idx ON accounts (id, name)',
        yes: true,
      },
      {},
      io,
    );
    // Assess
    expect(code).toBe(3);
    expect(out[0]).toMatch(/^REJECTED {2}accounts_id_name_idx: /);
    const { rows } = await runSql(
      url,
      "SELECT 1 FROM pg_indexes WHERE indexname = 'accounts_id_name_idx'",
    );
    expect(rows).toEqual([]);
  });

  it.each([
    [
      'without --yes and without a terminal',
      { ddl: 'CREATE INDEX x ON accounts (name)' },
      'pass --yes',
    ],
    [
      'with both --ddl and --suggestion',
      { ddl: 'CREATE INDEX x ON accounts (name)', suggestion: 1, yes: true },
      'exactly one',
    ],
    [
      'with a DROP as --ddl',
      { ddl: 'DROP INDEX accounts_name_idx', yes: true },
      'exactly one CREATE INDEX',
    ],
  ])('apply refuses to run %s', async (_name, opts, message) => {
    // Act
    const attempt = runApplyCommand({ databaseUrl: url, ...opts }, {}, capture().io);
    // Assess
    await expect(attempt).rejects.toThrow(message);
  });

  it('rewrites prints the rewritten SQL with both plan costs', async () => {
    // Prepare
    const { out, io } = capture();
    // Act
    const code = await runRewritesCommand(
      { databaseUrl: url, sql: ['SELECT name FROM accounts WHERE id = 77.0'] },
      {},
      io,
    );
    // Assess
    expect(code).toBe(0);
    expect(out).toContain('   rewritten   SELECT name FROM accounts WHERE id = 77');
    expect(out.find((l) => l.startsWith('   plan cost'))).toMatch(
      /plan cost {3}[\d.]+ → [\d.]+ \(\d+% cheaper\) \[custom plan\]/,
    );
  });
});
