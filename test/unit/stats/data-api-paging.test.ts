import {
  BadRequestException,
  BeginTransactionCommand,
  CommitTransactionCommand,
  ExecuteStatementCommand,
  type ExecuteStatementCommandInput,
  RDSDataClient,
  RollbackTransactionCommand,
  type SqlParameter,
} from '@aws-sdk/client-rds-data';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createDataApiQueryable } from '#shared/db';
import { noMetrics } from '#shared/metrics';
import { createRepository } from '#shared/repository';
import { createSqlAnalyzer, initSqlParser, type SqlAnalyzer } from '#shared/sql';
import {
  collectSlowQueries,
  DEFAULT_FINDING_THRESHOLDS,
  dataApiStatsTarget,
  diffStatementStats,
  isExplainableStatement,
  rankSlowStatements,
  type StatementEntry,
  type StatementSnapshot,
  type StatsSettings,
  type StatsTarget,
  toStoredStatementSnapshot,
} from '#shared/stats';
import { DataApiResponseTooLargeError } from '../../../shared/db/data-api.ts';

const ARNS = {
  resourceArn: 'arn:aws:rds:eu-west-1:000000000000:cluster:app',
  secretArn: 'arn:aws:secretsmanager:eu-west-1:000000000000:secret:app-ro',
  database: 'app',
};
const RESPONSE_LIMIT_BYTES = 1024 * 1024;
const ROW_LIMIT_BYTES = 64 * 1024;
const TEXT_BYTES = 2048;
const WORKLOAD = 5_000;

/** Two letters per digit base 26: distinct column names give distinct fingerprints. */
const letters = (i: number): string => {
  let out = '';
  let n = i;
  do {
    out = String.fromCharCode(97 + (n % 26)) + out;
    n = Math.floor(n / 26);
  } while (n > 0);
  return out;
};

const padTo = (sql: string, size: number): string =>
  `${sql} /* ${'x'.repeat(Math.max(0, size - sql.length - 6))} */`;

interface FakeEntry {
  userid: string;
  queryid: bigint;
  query: string;
  calls: number;
  totalMs: number;
}

/**
 * The workload: 5,000 statements with 2 KB texts, and ahead of them by time the statements the
 * ranking must skip once it sees their text (our own, other roles' hidden ones, utility
 * statements) and one 50,000-character text (cut server-side).
 */
const workload = (): FakeEntry[] => {
  const entries: FakeEntry[] = [];
  const add = (userid: string, query: string, calls: number, totalMs: number) =>
    entries.push({
      userid,
      // Spread over the whole signed int8 range, negative ones included.
      queryid: -9_000_000_000_000_000_000n + BigInt(entries.length) * 3_600_000_000_000_001n,
      query,
      calls,
      totalMs,
    });
  for (let i = 0; i < 15; i += 1) {
    add('16384', padTo(`SELECT /* dbopt */ c_${letters(i)} FROM pg_class`, TEXT_BYTES), 5, 1e6);
    add('10', '<insufficient privilege>', 5, 1e6);
    add('16384', padTo(`VACUUM orders_${letters(i)}`, TEXT_BYTES), 5, 1e6);
  }
  add('16384', padTo('SELECT c_long, amount FROM orders WHERE id = $1', 50_000), 5, 9e5);
  for (let i = 0; i < WORKLOAD; i += 1) {
    const sql = `SELECT c_${letters(i)}, amount FROM orders WHERE customer_id = $1`;
    add(i % 7 === 0 ? '10' : '16384', padTo(sql, TEXT_BYTES), 10, (WORKLOAD - i) * 10);
  }
  return entries;
};

const byKey = (a: FakeEntry, b: FakeEntry): number =>
  Number(a.userid) - Number(b.userid) ||
  (a.queryid < b.queryid ? -1 : a.queryid > b.queryid ? 1 : 0);

const parameterValue = (p: SqlParameter | undefined): string | number | boolean | null => {
  const v = p?.value;
  if (!v || v.isNull) return null;
  return v.stringValue ?? v.longValue ?? v.doubleValue ?? v.booleanValue ?? null;
};

/** Elements of a PostgreSQL array literal as the adapter writes them ({"a","b\"c"}). */
const arrayOf = (literal: string): string[] => {
  const out: string[] = [];
  for (let i = 1; i < literal.length - 1; i += 1) {
    if (literal[i] !== '"') continue;
    let text = '';
    for (i += 1; literal[i] !== '"'; i += 1)
      text += literal[i] === '\\' ? literal[++i] : literal[i];
    out.push(text);
  }
  return out;
};

const mockRdsData = () => mockClient(RDSDataClient);
type RdsMock = ReturnType<typeof mockRdsData>;

interface Response {
  sql: string;
  parameters: (string | number | boolean | null)[];
  rows: number;
  bytes: number;
  maxRowBytes: number;
}

/**
 * A Data API in front of pg_stat_statements and the dbopt repository tables: it answers the
 * SQL the collector sends, and refuses a response over 1 MiB with the Data API's own error.
 */
const createFakeDataApi = (rds: RdsMock) => {
  const state = {
    entries: workload(),
    statsReset: '2026-11-01 00:00:00+00',
    snapshots: new Map<string, Record<string, unknown>>(),
    parts: new Map<string, { generation: string; body: string }>(),
    responses: [] as Response[],
  };
  const counterRow = (e: FakeEntry) => ({
    userid: e.userid,
    dbid: '16385',
    queryid: String(e.queryid),
    toplevel: true,
    stats_since: null,
    calls: e.calls,
    total_ms: e.totalMs,
    sum_squares_ms2: (e.totalMs / e.calls) ** 2 * e.calls,
    rows: e.calls,
    shared_blks_hit: e.calls * 3,
    shared_blks_read: 0,
    temp_blks_written: 0,
  });
  const afterKey = (params: (string | number | boolean | null)[], at: number) => {
    if (params[at] === null) return () => true;
    const key = {
      userid: String(params[at]),
      queryid: BigInt(String(params[at + 1])),
    } as FakeEntry;
    return (e: FakeEntry) => byKey(e, key) > 0 || (byKey(e, key) === 0 && params[at + 2] === false);
  };
  const answer = (sql: string, p: (string | number | boolean | null)[]): unknown[] | undefined => {
    const sorted = () => [...state.entries].sort(byKey);
    if (sql.includes('TRANSACTION READ ONLY') || sql.includes('statement_timeout'))
      return undefined;
    if (sql.includes('pg_postmaster_start_time')) {
      return [
        {
          server_version_num: 150004,
          database: 'app',
          in_recovery: false,
          server_started_at: '2026-11-27 09:00:00+00',
        },
      ];
    }
    if (sql.includes("e.extname = 'pg_stat_statements'")) return [{ extversion: '1.10' }];
    if (sql.includes('FROM pg_stat_statements_info'))
      return [{ dealloc: 0, stats_reset: state.statsReset }];
    if (sql.includes('showtext := false')) {
      return sorted().filter(afterKey(p, 0)).slice(0, Number(p[3])).map(counterRow);
    }
    if (sql.includes('showtext := true')) {
      const ids = new Set(arrayOf(String(p[0])));
      const rows: unknown[] = [];
      let bytes = 0;
      for (const e of sorted().filter(afterKey(p, 3))) {
        if (!ids.has(String(e.queryid))) continue;
        if (bytes >= Number(p[2])) break;
        const query = e.query.slice(0, Number(p[1]));
        bytes += Buffer.byteLength(JSON.stringify(query));
        rows.push({
          userid: e.userid,
          queryid: String(e.queryid),
          toplevel: true,
          query,
          end_bytes: bytes,
        });
      }
      return rows;
    }
    if (sql.includes('FROM pg_stat_statements AS s')) {
      return sorted().map((e) => ({ ...counterRow(e), query: e.query }));
    }
    if (sql.includes('INTO dbopt.snapshot_parts')) {
      const parts = arrayOf(String(p[3]));
      arrayOf(String(p[4])).forEach((body, i) => {
        state.parts.set(`${p[0]}/${p[1]}/${parts[i]}`, { generation: String(p[2]), body });
      });
      return undefined;
    }
    if (sql.includes('DELETE /* dbopt */ FROM dbopt.snapshot_parts')) {
      for (const key of state.parts.keys()) {
        if (key.startsWith(`${p[0]}/${p[1]}/`) && Number(key.split('/')[2]) >= Number(p[2])) {
          state.parts.delete(key);
        }
      }
      return undefined;
    }
    if (sql.includes('FROM dbopt.snapshot_parts')) {
      const rows: unknown[] = [];
      for (let part = Number(p[2]); rows.length < Number(p[3]); part += 1) {
        const stored = state.parts.get(`${p[0]}/${p[1]}/${part}`);
        if (!stored) break;
        rows.push({ part, ...stored });
      }
      return rows;
    }
    if (sql.includes('INTO dbopt.snapshots')) {
      state.snapshots.set(`${p[0]}/${p[1]}`, {
        target: p[0],
        kind: p[1],
        taken_at: p[2],
        stats_reset: p[3],
        server_version_num: p[4],
        payload: p[5],
      });
      return undefined;
    }
    if (sql.includes('FROM dbopt.snapshots')) {
      const row = state.snapshots.get(`${p[0]}/${p[1]}`);
      return row ? [row] : [];
    }
    throw new Error(`the fake Data API does not know this statement: ${sql}`);
  };
  rds.on(BeginTransactionCommand).resolves({ transactionId: 'tx-1' });
  rds.on(CommitTransactionCommand).resolves({ transactionStatus: 'Transaction Committed' });
  rds.on(RollbackTransactionCommand).resolves({ transactionStatus: 'Rollback Complete' });
  rds.on(ExecuteStatementCommand).callsFake(async (input: ExecuteStatementCommandInput) => {
    const params = (input.parameters ?? []).map(parameterValue);
    const rows = answer(input.sql ?? '', params);
    if (rows === undefined) return { numberOfRecordsUpdated: 0 };
    const formattedRecords = JSON.stringify(rows);
    const bytes = Buffer.byteLength(formattedRecords);
    state.responses.push({
      sql: input.sql ?? '',
      parameters: params,
      rows: rows.length,
      bytes,
      maxRowBytes: Math.max(0, ...rows.map((r) => Buffer.byteLength(JSON.stringify(r)))),
    });
    if (bytes > RESPONSE_LIMIT_BYTES) {
      throw new BadRequestException({
        message: 'Database returned more than the allowed response size limit',
        $metadata: {},
      });
    }
    return { formattedRecords };
  });
  return state;
};

const settings: StatsSettings = {
  readTimeoutMs: 5_000,
  explainTimeoutMs: 2_000,
  historyDays: 14,
  trendWindowMinutes: 60,
  trendMinConfidence: 0.99,
  slowQueries: { topN: 10, minMeanMs: 0, minCalls: 1 },
  findings: DEFAULT_FINDING_THRESHOLDS,
};
const logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

const fingerprintOf = (sql: SqlAnalyzer) => (query: string) => {
  try {
    const a = sql.analyze(query);
    return a.statementCount === 1 ? a.fingerprint : null;
  } catch {
    return null;
  }
};

/** The one-read path's ranking of the same two readings, with every text whole. */
const rankWithAllTexts = (before: FakeEntry[], after: FakeEntry[], sql: SqlAnalyzer) => {
  const snapshot = (entries: FakeEntry[], takenAt: string): StatementSnapshot => ({
    takenAt,
    serverVersionNum: 150004,
    statsResetAt: '2026-11-01 00:00:00+00',
    dealloc: 0,
    entries: entries.map(
      (e): StatementEntry => ({
        key: `${e.userid}:16385:${e.queryid}:t`,
        userId: e.userid,
        dbId: '16385',
        queryId: String(e.queryid),
        toplevel: true,
        query: e.query,
        statsSince: null,
        calls: e.calls,
        totalExecTimeMs: e.totalMs,
        sumSquaresMs2: (e.totalMs / e.calls) ** 2 * e.calls,
        rows: e.calls,
        sharedBlksHit: e.calls * 3,
        sharedBlksRead: 0,
        tempBlksWritten: 0,
      }),
    ),
  });
  const diff = diffStatementStats(
    toStoredStatementSnapshot(snapshot(before, '2026-11-27T11:00:00.000Z')),
    snapshot(after, '2026-11-27T11:05:00.000Z'),
  );
  return rankSlowStatements(diff.deltas, settings.slowQueries, fingerprintOf(sql), (q) =>
    isExplainableStatement(q, sql),
  );
};

describe('slow-query collection through the RDS Data API (1 MiB per response)', () => {
  const rds = mockRdsData();
  const q = createDataApiQueryable({ client: new RDSDataClient({ region: 'eu-west-1' }), ...ARNS });
  let sql: SqlAnalyzer;

  beforeAll(async () => {
    await initSqlParser();
    sql = createSqlAnalyzer({ cacheEntries: 1_000 });
  });
  beforeEach(() => rds.reset());
  afterAll(() => rds.restore());

  const depsFor = (target: StatsTarget, at: string[]) => {
    let run = 0;
    return {
      targets: [target],
      repository: createRepository(q),
      sql,
      publisher: { publish: () => undefined },
      metrics: noMetrics,
      logger,
      settings,
      explain: false,
      now: () => new Date(at[Math.min(run++, at.length - 1)] as string),
    };
  };

  it('collects 5,000+ statements with 2 KB texts in pages under 1 MiB and ranks them as the one-read path would', async () => {
    // Prepare: a baseline run, then an interval in which every statement ran again.
    const fake = createFakeDataApi(rds);
    const target = dataApiStatsTarget('primary', 'app', q);
    const deps = depsFor(target, ['2026-11-27T11:00:00.000Z', '2026-11-27T11:05:00.000Z']);
    const first = await collectSlowQueries(deps);
    const before = fake.entries.map((e) => ({ ...e }));
    for (const e of fake.entries) {
      e.calls += 10;
      e.totalMs *= 2;
    }
    fake.responses.length = 0;

    // Act
    const second = await collectSlowQueries(deps);

    // Assess: every response under the limits, every counter page keyed after the last one.
    expect(first.targets[0]?.status).toBe('baseline');
    const result = second.targets[0];
    expect(result?.error).toBeUndefined();
    expect(result?.status).toBe('collected');
    expect(result?.diff?.statements).toBe(fake.entries.length);
    expect(Math.max(...fake.responses.map((r) => r.bytes))).toBeLessThan(RESPONSE_LIMIT_BYTES / 2);
    expect(Math.max(...fake.responses.map((r) => r.maxRowBytes))).toBeLessThan(ROW_LIMIT_BYTES);
    const counterPages = fake.responses.filter((r) => r.sql.includes('showtext := false'));
    expect(counterPages).toHaveLength(Math.floor(fake.entries.length / 1000) + 1);
    const sorted = [...fake.entries].sort(byKey);
    counterPages.forEach((page, i) => {
      const last = sorted[i * 1000 - 1];
      expect(page.parameters).toEqual(
        last ? [last.userid, String(last.queryid), true, 1000] : [null, null, null, 1000],
      );
    });
    // Texts only for candidates: a few batches, never the whole workload.
    const textPages = fake.responses.filter((r) => r.sql.includes('showtext := true'));
    const textRows = textPages.reduce((n, r) => n + r.rows, 0);
    // 46 skipped statements lead the ranking: 2 batches of 3 × topN + 10, one page each.
    expect(textPages).toHaveLength(2);
    expect(textRows).toBeGreaterThan(46);
    expect(textRows).toBeLessThan(300);
    // The same statements, counters and order as ranking with every text whole; the long
    // text arrives cut to 16,000 characters.
    const expected = rankWithAllTexts(before, fake.entries, sql);
    expect(result?.slow.map((s) => [s.queryId, s.calls, s.totalExecTimeMs])).toEqual(
      expected.map((s) => [s.queryId, s.calls, s.totalExecTimeMs]),
    );
    expect(result?.slow).toHaveLength(10);
    expect(result?.slow.some((s) => s.query.includes('/* dbopt */'))).toBe(false);
    expect(result?.slow[0]?.query).toHaveLength(16_000);
    expect(result?.slow.slice(1).map((s) => s.query)).toEqual(
      expected.slice(1).map((s) => s.query),
    );
  });

  it('stores the snapshot in parts: no repository response or row over the Data API limits', async () => {
    // Prepare
    const fake = createFakeDataApi(rds);
    const deps = depsFor(dataApiStatsTarget('primary', 'app', q), [
      '2026-11-27T11:00:00.000Z',
      '2026-11-27T11:05:00.000Z',
    ]);
    await collectSlowQueries(deps);

    // Act: the second run loads what the first saved.
    fake.responses.length = 0;
    const second = await collectSlowQueries(deps);

    // Assess
    expect(second.targets[0]?.status).toBe('collected');
    expect(fake.parts.size).toBeGreaterThan(1);
    for (const { body } of fake.parts.values())
      expect(Buffer.byteLength(body)).toBeLessThanOrEqual(60_000);
    const partPages = fake.responses.filter((r) => r.sql.includes('FROM dbopt.snapshot_parts'));
    expect(partPages.length).toBeGreaterThan(0);
    for (const r of partPages) {
      expect(r.bytes).toBeLessThan(RESPONSE_LIMIT_BYTES / 2);
      expect(r.maxRowBytes).toBeLessThan(ROW_LIMIT_BYTES);
    }
  });

  it('fails a target read in one statement with DataApiResponseTooLargeError, saying what to do', async () => {
    // Prepare: the same Data API, read without paging (as before the fix).
    createFakeDataApi(rds);
    const paged = dataApiStatsTarget('primary', 'app', q);
    const unpaged: StatsTarget = {
      name: paged.name,
      database: paged.database,
      readOnly: paged.readOnly,
    };

    // Act
    const run = await collectSlowQueries(depsFor(unpaged, ['2026-11-27T11:00:00.000Z']));

    // Assess
    const result = run.targets[0];
    expect(result?.status).toBe('failed');
    expect(result?.error).toBeInstanceOf(DataApiResponseTooLargeError);
    expect(result?.error).toMatchObject({ code: 'DATA_API_RESPONSE_TOO_LARGE' });
    expect(result?.error?.message).toMatch(/page the statement by key/);
    expect(rds.commandCalls(RollbackTransactionCommand)).toHaveLength(1);
  });
});
