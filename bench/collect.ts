/**
 * `npm run bench:collect [postgres://…]`: the slow-query collector's per-run work on 10,000
 * pg_stat_statements-shaped entries (synthetic): store the snapshot (serialise), load it back
 * (deserialise), diff, rank (with the real WASM fingerprinting). Baseline measured in the same
 * run: ranking that fingerprints every statement instead of only the candidates.
 * Then a real read of pg_stat_statements (TEST_DATABASE_URL or the argument, default the local
 * test cluster on 127.0.0.1:55432) and a jsonb round trip of the 10k snapshot through the
 * repository in a scratch database. Medians of several runs; last line is one JSON object.
 */
import pg from 'pg';
import { createDatabase, withReadOnlyTransaction } from '#shared/db';
import { createRepository, migrateRepository } from '#shared/repository';
import { createSqlAnalyzer, initSqlParser } from '#shared/sql';
import {
  diffStatementStats,
  isExplainableStatement,
  rankSlowStatements,
  readServerInfo,
  readStatementSnapshot,
  type StatementEntry,
  type StatementSnapshot,
  type StoredStatementSnapshot,
  toStoredStatementSnapshot,
} from '#shared/stats';
import { parseStoredStatementSnapshot } from '../shared/stats/statements.ts';
import { median } from './support.ts';

const N = 10_000;
const RUNS = 7;
const URL_ =
  process.argv[2] ??
  process.env.TEST_DATABASE_URL ??
  'postgres://postgres@127.0.0.1:55432/dbopt_test';

/** Deterministic pseudo-random numbers (mulberry32). */
const rng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

const TABLES = ['orders', 'customers', 'line_items', 'products', 'payments', 'shipments'];

const syntheticEntries = (count: number, random: () => number): StatementEntry[] =>
  Array.from({ length: count }, (_, i) => {
    const table = TABLES[i % TABLES.length] as string;
    const calls = 1 + Math.floor(random() * 10_000);
    const mean = random() * 50;
    return {
      key: `16384:${16_000 + (i % 3)}:${-9_000_000_000_000 + i * 7919}:t`,
      userId: '16384',
      dbId: String(16_000 + (i % 3)),
      queryId: String(-9_000_000_000_000 + i * 7919),
      toplevel: true,
      query: `SELECT id, c${i % 50}, c${i} FROM ${table} WHERE c${i} = $1 AND status = $2 ORDER BY created_at DESC LIMIT $3`,
      statsSince: null,
      calls,
      totalExecTimeMs: calls * mean,
      sumSquaresMs2: calls * mean * mean * 1.2,
      rows: calls * Math.floor(random() * 20),
      sharedBlksHit: calls * 12,
      sharedBlksRead: calls,
      tempBlksWritten: 0,
    };
  });

/** The next reading: most entries moved on, 5% are new, 1% were reset, some are idle. */
const nextReading = (prev: StatementEntry[], random: () => number): StatementEntry[] => {
  const out: StatementEntry[] = [];
  for (const [i, e] of prev.entries()) {
    const r = random();
    if (r < 0.05) continue; // evicted
    if (r < 0.06) {
      out.push({ ...e, calls: 1, totalExecTimeMs: 3, sumSquaresMs2: 9, rows: 1 });
      continue;
    }
    const more = r < 0.3 ? 0 : Math.floor(random() * 500);
    const mean = (e.totalExecTimeMs / e.calls) * (0.5 + random());
    out.push({
      ...e,
      calls: e.calls + more,
      totalExecTimeMs: e.totalExecTimeMs + more * mean,
      sumSquaresMs2: e.sumSquaresMs2 + more * mean * mean,
      rows: e.rows + more * (i % 7),
      sharedBlksHit: e.sharedBlksHit + more * 12,
      sharedBlksRead: e.sharedBlksRead + more,
    });
  }
  for (const e of syntheticEntries(N - out.length, rng(99))) {
    out.push({ ...e, key: `${e.key}:new`, queryId: `${e.queryId}1` });
  }
  return out;
};

const time = <T>(fn: () => T): { ms: number; value: T } => {
  const started = performance.now();
  const value = fn();
  return { ms: performance.now() - started, value };
};

const timeAsync = async <T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> => {
  const started = performance.now();
  const value = await fn();
  return { ms: performance.now() - started, value };
};

const fmt = (ms: number): string => `${ms.toFixed(1).padStart(8)} ms`;

const syntheticPart = async () => {
  await initSqlParser();
  const random = rng(42);
  const prevEntries = syntheticEntries(N, random);
  const prev: StatementSnapshot = {
    takenAt: '2026-11-27T10:00:00.000Z',
    serverVersionNum: 150_004,
    statsResetAt: null,
    dealloc: 0,
    entries: prevEntries,
  };
  const curr: StatementSnapshot = {
    ...prev,
    takenAt: '2026-11-27T10:05:00.000Z',
    entries: nextReading(prevEntries, random),
  };
  const limits = { topN: 20, minMeanMs: 10, minCalls: 1 };
  const samples = { serialise: [] as number[], deserialise: [] as number[], diff: [] as number[] };
  const rank: number[] = [];
  const rankAll: number[] = [];
  let bytes = 0;
  let slow = 0;
  let deltas = 0;
  for (let run = 0; run < RUNS; run += 1) {
    // A fresh analyzer per run: its parse cache would otherwise make later runs free.
    const sql = createSqlAnalyzer({ cacheEntries: 20_000 });
    const fingerprintOf = (q: string) => sql.analyze(q).fingerprint;
    const s = time(() => JSON.stringify(toStoredStatementSnapshot(prev)));
    bytes = s.value.length;
    const d = time(
      () => parseStoredStatementSnapshot(JSON.parse(s.value)) as StoredStatementSnapshot,
    );
    const diff = time(() => diffStatementStats(d.value, curr));
    // As the collector ranks: DML only, fingerprints for the candidates.
    const r = time(() =>
      rankSlowStatements(diff.value.deltas, limits, fingerprintOf, (q) =>
        isExplainableStatement(q, sql),
      ),
    );
    // Baseline: fingerprint every statement with calls in the interval, then rank.
    const sqlAll = createSqlAnalyzer({ cacheEntries: 20_000 });
    const all = time(() => {
      const groups = new Map<string, number>();
      for (const x of diff.value.deltas) {
        const key = sqlAll.analyze(x.entry.query).fingerprint;
        groups.set(key, (groups.get(key) ?? 0) + x.totalExecTimeMs);
      }
      return [...groups.entries()].sort((a, b) => b[1] - a[1]).slice(0, limits.topN);
    });
    samples.serialise.push(s.ms);
    samples.deserialise.push(d.ms);
    samples.diff.push(diff.ms);
    rank.push(r.ms);
    rankAll.push(all.ms);
    slow = r.value.length;
    deltas = diff.value.deltas.length;
  }
  const m = {
    serialise: median(samples.serialise),
    deserialise: median(samples.deserialise),
    diff: median(samples.diff),
    rank: median(rank),
    rankAll: median(rankAll),
  };
  const total = m.serialise + m.deserialise + m.diff + m.rank;
  console.log(
    `synthetic: ${N} statements, ${deltas} with calls in the interval, median of ${RUNS} runs`,
  );
  console.log(
    `  serialise (stored form + JSON)  ${fmt(m.serialise)}   ${(bytes / 1e6).toFixed(2)} MB`,
  );
  console.log(`  deserialise (JSON + check)      ${fmt(m.deserialise)}`);
  console.log(`  diff                            ${fmt(m.diff)}`);
  console.log(`  rank (fingerprint candidates)   ${fmt(m.rank)}   ${slow} slow`);
  console.log(
    `  baseline: fingerprint all       ${fmt(m.rankAll)}   (${(m.rankAll / m.rank).toFixed(0)}× slower)`,
  );
  console.log(`  total                           ${fmt(total)}   (target ≤ 1000 ms)`);
  return {
    summary: {
      statements: N,
      serialise_10k_ms: Number(m.serialise.toFixed(2)),
      deserialise_10k_ms: Number(m.deserialise.toFixed(2)),
      diff_10k_ms: Number(m.diff.toFixed(2)),
      rank_10k_ms: Number(m.rank.toFixed(2)),
      rank_fingerprint_all_10k_ms: Number(m.rankAll.toFixed(2)),
      rank_speedup_vs_fingerprint_all: Number((m.rankAll / m.rank).toFixed(1)),
      snapshot_bytes: bytes,
      total_10k_ms: Number(total.toFixed(2)),
      target_met: total <= 1_000,
    },
    stored: toStoredStatementSnapshot(prev),
  };
};

const realPart = async (stored: StoredStatementSnapshot) => {
  const db = createDatabase({
    connectionString: URL_,
    port: 5432,
    database: new URL(URL_).pathname.slice(1),
    user: 'postgres',
    sslMode: 'disable',
    poolMax: 1,
    connectTimeoutMs: 3_000,
    idleTimeoutMs: 10_000,
    queryTimeoutMs: 30_000,
  });
  const scratch = 'dbopt_it_stats_bench';
  const scratchUrl = new URL(URL_);
  scratchUrl.pathname = `/${scratch}`;
  try {
    const reads: number[] = [];
    let entries = 0;
    for (let run = 0; run < 5; run += 1) {
      const r = await timeAsync(() =>
        withReadOnlyTransaction(db, { timeoutMs: 10_000 }, async (q) => {
          const server = await readServerInfo(q);
          return readStatementSnapshot(q, {
            target: 'bench',
            serverVersionNum: server.serverVersionNum,
          });
        }),
      );
      reads.push(r.ms);
      entries = r.value.entries.length;
    }
    const readMs = median(reads);
    console.log(`real read of pg_stat_statements (${new URL(URL_).host}): ${entries} entries`);
    console.log(`  read (one transaction)          ${fmt(readMs)}`);

    const admin = new pg.Client(URL_);
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${scratch} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${scratch}`);
    const repoDb = createDatabase({
      connectionString: scratchUrl.toString(),
      port: 5432,
      database: scratch,
      user: 'postgres',
      sslMode: 'disable',
      poolMax: 1,
      connectTimeoutMs: 3_000,
      idleTimeoutMs: 10_000,
      queryTimeoutMs: 30_000,
    });
    try {
      await migrateRepository(repoDb.pool());
      const repo = createRepository(repoDb.pool());
      const trips: number[] = [];
      for (let run = 0; run < 5; run += 1) {
        const t = await timeAsync(async () => {
          await repo.saveSnapshot({
            target: 'bench',
            kind: 'statements',
            takenAt: new Date(),
            statsReset: null,
            serverVersionNum: stored.serverVersionNum,
            payload: stored,
          });
          return repo.loadSnapshot<StoredStatementSnapshot>('bench', 'statements');
        });
        trips.push(t.ms);
      }
      const tripMs = median(trips);
      console.log(`  repository jsonb save + load 10k ${fmt(tripMs)}`);
      return {
        real_statements: entries,
        real_read_ms: Number(readMs.toFixed(2)),
        repository_roundtrip_10k_ms: Number(tripMs.toFixed(2)),
      };
    } finally {
      await repoDb.end();
      await admin.query(`DROP DATABASE IF EXISTS ${scratch} WITH (FORCE)`);
      await admin.end();
    }
  } catch (err) {
    console.log(`real read skipped: ${(err as Error).message}`);
    return { real_error: (err as Error).message };
  } finally {
    await db.end();
  }
};

const main = async () => {
  const started = performance.now();
  const synthetic = await syntheticPart();
  const real = await realPart(synthetic.stored);
  console.log(
    JSON.stringify({
      bench: 'collect',
      ...synthetic.summary,
      ...real,
      elapsed_s: Number(((performance.now() - started) / 1000).toFixed(1)),
    }),
  );
};

await main();
