import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_ADVISOR_OPTIONS } from '#shared/advisor';
import { createDatabase, type Database } from '#shared/db';
import { type OptimizerDeps, optimizeSlowQuery, parseSlowQueryMessage } from '#shared/optimizer';
import type { NewSuggestion } from '#shared/repository';
import { initSqlParser } from '#shared/sql';
import { testDatabaseOptions } from '../support/env.ts';
import { recreateDatabase, runSql } from './scratch-db.ts';

const SCHEMA = `
CREATE EXTENSION IF NOT EXISTS hypopg;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE TABLE tickets (id bigint PRIMARY KEY, owner_id int NOT NULL, title text NOT NULL);
INSERT INTO tickets SELECT g, 1 + (g * 7919) % 30000, 't' || g FROM generate_series(1, 60000) g;
ANALYZE tickets;
`;

/** The repository's suggestion calls, in memory. */
const memoryRepository = () => {
  const rows = new Map<number, NewSuggestion & { id: number; status: string; outcome: unknown }>();
  const statuses: Array<[number, string]> = [];
  return {
    rows,
    statuses,
    upsertSuggestion: async (s: NewSuggestion) => {
      const existing = [...rows.values()].find((r) => r.key === s.key && r.target === s.target);
      if (existing) return { id: existing.id, created: false };
      const id = rows.size + 1;
      rows.set(id, { ...s, id, status: 'proposed', outcome: null });
      return { id, created: true };
    },
    getSuggestion: async () => undefined,
    listSuggestions: async (filter: { status?: string; kind?: string }) =>
      [...rows.values()].filter(
        (r) =>
          (!filter.status || r.status === filter.status) &&
          (!filter.kind || r.kind === filter.kind),
      ),
    setSuggestionStatus: async (id: number, status: string, outcome?: unknown) => {
      statuses.push([id, status]);
      const row = rows.get(id);
      if (row) rows.set(id, { ...row, status, outcome });
    },
  };
};

let url: string;
let db: Database;

beforeAll(async () => {
  await initSqlParser();
  url = await recreateDatabase('dbopt_it_opt_autoapply');
  await runSql(url, SCHEMA);
  // The slow statement as pg_stat_statements saw it (the collector's source).
  for (let owner = 1; owner <= 5; owner++) {
    await runSql(url, 'SELECT id, title FROM tickets WHERE owner_id = $1', [owner * 101]);
  }
  db = createDatabase(testDatabaseOptions(url, { poolMax: 2 }));
});

afterAll(async () => {
  await db?.end();
});

describe('optimizer with ADVISOR_AUTO_APPLY', () => {
  it('builds the new index proposal, verifies it and records applied → verified', async () => {
    // Prepare
    const repository = memoryRepository();
    const silent = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
    const deps = {
      databaseFor: (target: string) => (target === 'primary' ? db : undefined),
      repository,
      logger: silent,
      settings: {
        advisor: { ...DEFAULT_ADVISOR_OPTIONS, statementTimeoutMs: 10_000 },
        workloadStatements: 10,
        hygieneMinIndexAgeDays: 7,
        autoApply: true,
        applyLimits: { lockTimeoutMs: 1_000, maxIndexBytes: 100_000_000, maxBuildMs: 20_000 },
        recheckMinCalls: 5,
      },
    } as unknown as OptimizerDeps;
    const message = parseSlowQueryMessage(
      JSON.stringify({
        version: 1,
        target: 'primary',
        database: 'dbopt_it_opt_autoapply',
        queryId: '555',
        fingerprint: 'fp-owner',
        query: 'SELECT id, title FROM tickets WHERE owner_id = $1',
        calls: 600,
        totalExecTimeMs: 6000,
        meanExecTimeMs: 10,
        stddevExecTimeMs: 1,
        rows: 1200,
        sharedBlksHit: 10,
        sharedBlksRead: 0,
        tempBlksWritten: 0,
        intervalSeconds: 300,
        observedAt: '2026-11-27T10:00:00.000Z',
        findings: [],
      }),
    );
    // Act
    const result = await optimizeSlowQuery(deps, message);
    // Assess
    const proposal = [...repository.rows.values()].find((r) => r.kind === 'create_index');
    expect(proposal?.ddl).toContain('(owner_id)');
    expect(result.applied).toHaveLength(1);
    expect(result.applied[0]).toMatchObject({ status: 'verified' });
    expect(repository.statuses).toEqual([
      [proposal?.id, 'applied'],
      [proposal?.id, 'verified'],
    ]);
    const { rows } = await runSql(
      url,
      "SELECT indexdef FROM pg_indexes WHERE tablename = 'tickets' AND indexname <> 'tickets_pkey'",
    );
    expect(rows.map((r) => r.indexdef)).toEqual([expect.stringContaining('(owner_id)')]);

    // Act: the statement runs on with the index; the next message compares real mean times.
    for (let owner = 1; owner <= 6; owner++) {
      await runSql(url, 'SELECT id, title FROM tickets WHERE owner_id = $1', [owner * 7]);
    }
    const next = await optimizeSlowQuery(deps, message);
    // Assess
    expect(next.rechecked).toEqual([
      { suggestionId: proposal?.id, verdict: 'not_slower', dropped: false },
    ]);
    const check = (
      repository.rows.get(proposal?.id ?? 0)?.outcome as {
        meanTimeCheck?: { statements: unknown[] };
      }
    )?.meanTimeCheck;
    expect(check?.statements).toEqual([
      expect.objectContaining({ queryId: expect.any(String), callsAfter: expect.any(Number) }),
    ]);
  });
});
