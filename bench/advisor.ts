/**
 * Index advisor benchmark: loads a workload folder (schema.sql, data.sql, queries.json,
 * expected_indexes.json) into its own database, runs the advisor, and reports the proposals,
 * the runtime (median of --runs), precision/recall against expected_indexes.json and traps hit.
 * Key expressions are compared the way PostgreSQL normalises them: proposed and expected
 * indexes are created on empty `LIKE` copies inside a rolled-back transaction.
 *
 *   npm run bench:advisor -- --workload ../shared/workloads/bookings [--database-url URL] [--runs 3] [--out FILE] [--score]
 *
 * Last line: one JSON object (`bench: "advisor"`, runtime_s, precision, recall, traps, …).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import pg from 'pg';
import {
  type AdvisorReport,
  adviseIndexes,
  DEFAULT_ADVISOR_OPTIONS,
  workloadFromFile,
} from '#shared/advisor';
import { createDatabase } from '#shared/db';
import { median } from './support.ts';

interface Args {
  workload?: string;
  databaseUrl: string;
  runs: number;
  out: string;
  score: boolean;
}

const parseArgs = (argv: string[]): Args => {
  const args: Args = {
    databaseUrl: 'postgres://postgres@127.0.0.1:55432/postgres',
    runs: 3,
    out: '/tmp/advisor-output.sql',
    score: false,
  };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    const next = () => argv[++i] ?? '';
    if (a === '--workload') args.workload = next();
    else if (a === '--database-url') args.databaseUrl = next();
    else if (a === '--runs') args.runs = Math.max(1, Number(next()) || 1);
    else if (a === '--out') args.out = next();
    else if (a === '--score') args.score = true;
  }
  return args;
};

const USAGE =
  'usage: npm run bench:advisor -- --workload DIR [--database-url postgres://…/postgres] [--runs 3] [--out /tmp/advisor-output.sql] [--score]\n' +
  '  DIR holds schema.sql, data.sql, queries.json, expected_indexes.json (e.g. ../shared/workloads/bookings)';

const withClient = async <T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> => {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
};

const databaseUrl = (serverUrl: string, name: string): string => {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
};

/** Creates and loads the workload database unless the marker says it is loaded and unchanged. */
const ensureLoaded = async (args: Args, dir: string, dbName: string): Promise<string> => {
  const marker = createHash('sha1')
    .update(readFileSync(join(dir, 'schema.sql')))
    .update(readFileSync(join(dir, 'data.sql')))
    .digest('hex');
  const url = databaseUrl(args.databaseUrl, dbName);
  const current = await withClient(args.databaseUrl, async (c) => {
    const r = await c.query<{ marker: string | null }>(
      `SELECT /* dbopt */ shobj_description(d.oid, 'pg_database') AS marker
       FROM pg_database d WHERE d.datname = $1`,
      [dbName],
    );
    return r.rows.length === 0 ? undefined : (r.rows[0]?.marker ?? null);
  });
  if (current === `dbopt bench ${marker}`) {
    console.log(`database ${dbName}: loaded and unchanged (marker ${marker.slice(0, 8)})`);
    return url;
  }
  console.log(`database ${dbName}: loading ${dir} …`);
  const started = Date.now();
  await withClient(args.databaseUrl, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${dbName} TEMPLATE template0 LOCALE 'C.UTF-8'`);
  });
  for (const file of ['schema.sql', 'data.sql']) {
    const r = spawnSync('psql', ['-q', '-v', 'ON_ERROR_STOP=1', '-d', url, '-f', join(dir, file)], {
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`psql -f ${file} failed: ${r.stderr}`);
  }
  await withClient(url, (c) => c.query('CREATE EXTENSION IF NOT EXISTS hypopg'));
  await withClient(args.databaseUrl, (c) =>
    c.query(`COMMENT ON DATABASE ${dbName} IS 'dbopt bench ${marker}'`),
  );
  console.log(`  loaded in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return url;
};

interface Alternative {
  table: string;
  keys: string[];
  method?: string;
  where?: string;
  match?: 'prefix' | 'set_prefix' | 'exact';
  credit?: number;
  strict_opclass?: boolean;
}
interface Expected {
  id: string;
  required: boolean;
  any_of: Alternative[];
}
interface Trap {
  id: string;
  table: string;
  match: string;
  column?: string;
  keys?: string[];
}
interface IndexShape {
  name: string;
  table: string;
  am: string;
  keys: string[];
  opclasses: string[];
  collations: string[];
  include: string[];
  predicate: string | null;
}

const SHAPE_SQL = `
SELECT /* dbopt */ c.relname AS name, t.relname AS table, am.amname AS am,
  ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) k ORDER BY k) AS keys,
  ARRAY(SELECT oc.opcname FROM generate_series(1, i.indnkeyatts) k JOIN pg_opclass oc ON oc.oid = i.indclass[k - 1] ORDER BY k)::text[] AS opclasses,
  ARRAY(SELECT coalesce(co.collname, '') FROM generate_series(1, i.indnkeyatts) k LEFT JOIN pg_collation co ON co.oid = i.indcollation[k - 1] ORDER BY k)::text[] AS collations,
  ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(i.indnkeyatts + 1, i.indnatts) k ORDER BY k) AS include,
  pg_get_expr(i.indpred, i.indrelid, true) AS predicate
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_am am ON am.oid = c.relam
WHERE t.relnamespace = '_dbopt_shape'::regnamespace`;

/** Normalises proposals and expected alternatives by creating them on empty copies (rolled back). */
const normalise = async (
  url: string,
  report: AdvisorReport,
  expected: Expected[],
): Promise<{ proposals: IndexShape[]; alternatives: Map<string, IndexShape> }> =>
  withClient(url, async (c) => {
    const tables = new Set<string>();
    for (const e of expected) for (const a of e.any_of) tables.add(a.table);
    for (const p of report.proposals) tables.add(p.table.split('.').pop() as string);
    await c.query('BEGIN');
    try {
      await c.query('CREATE SCHEMA _dbopt_shape');
      for (const t of tables) await c.query(`CREATE TABLE _dbopt_shape.${t} (LIKE public.${t})`);
      let n = 0;
      for (const p of report.proposals) {
        const marker = ` ON ${p.table} `;
        const rest = p.ddl.slice(p.ddl.indexOf(marker) + marker.length).replace(/;$/, '');
        await c.query(
          `CREATE INDEX _prop_${n} ON _dbopt_shape.${p.table.split('.').pop()} ${rest}`,
        );
        n += 1;
      }
      let m = 0;
      const altKeys: string[] = [];
      for (const e of expected) {
        for (const [k, a] of e.any_of.entries()) {
          altKeys.push(`${e.id}#${k}`);
          const where = a.where ? ` WHERE ${a.where}` : '';
          await c.query(
            `CREATE INDEX _exp_${m} ON _dbopt_shape.${a.table} USING ${a.method ?? 'btree'} (${a.keys.join(', ')})${where}`,
          );
          m += 1;
        }
      }
      const shapes = (await c.query<IndexShape>(SHAPE_SQL)).rows;
      const proposals = report.proposals.map(
        (_, i) => shapes.find((s) => s.name === `_prop_${i}`) as IndexShape,
      );
      const alternatives = new Map<string, IndexShape>();
      for (const s of shapes) {
        const match = /^_exp_(\d+)$/.exec(s.name);
        const key = match ? altKeys[Number(match[1])] : undefined;
        if (key) alternatives.set(key, s);
      }
      return { proposals, alternatives };
    } finally {
      await c.query('ROLLBACK');
    }
  });

const keysMatch = (p: IndexShape, e: IndexShape, mode: string): boolean => {
  if (p.keys.length < e.keys.length) return false;
  if (mode === 'exact') return p.keys.join('\u0000') === e.keys.join('\u0000');
  const head = p.keys.slice(0, e.keys.length);
  if (mode === 'set_prefix')
    return [...head].sort().join('\u0000') === [...e.keys].sort().join('\u0000');
  return head.join('\u0000') === e.keys.join('\u0000');
};

const altMatches = (p: IndexShape, e: IndexShape, alt: Alternative): boolean => {
  if (p.table !== alt.table || p.am !== (alt.method ?? 'btree')) return false;
  if ((p.predicate ?? null) !== (e.predicate ?? null)) return false;
  const mode = alt.match ?? 'prefix';
  if (!keysMatch(p, e, mode)) return false;
  if (alt.strict_opclass) {
    const n = e.keys.length;
    const pair = (s: IndexShape, i: number) => `${s.keys[i]}|${s.opclasses[i]}|${s.collations[i]}`;
    const pp = Array.from({ length: n }, (_, i) => pair(p, i));
    const ee = Array.from({ length: n }, (_, i) => pair(e, i));
    return mode === 'set_prefix'
      ? [...pp].sort().join() === [...ee].sort().join()
      : pp.join() === ee.join();
  }
  return true;
};

const trapMatches = (p: IndexShape, trap: Trap): boolean => {
  if (p.table !== trap.table) return false;
  if (trap.match === 'table') return true;
  if (trap.match === 'leading') return p.keys[0] === trap.column;
  if (trap.match === 'exact') return p.keys.join() === (trap.keys ?? []).join() && !p.predicate;
  return false;
};

const main = async (): Promise<void> => {
  const args = parseArgs(process.argv.slice(2));
  if (!args.workload) {
    console.log(USAGE);
    process.exitCode = 2;
    return;
  }
  const dir = resolve(args.workload);
  const dbName = `dbopt_bench_${basename(dir)
    .replace(/[^a-z0-9_]/gi, '_')
    .toLowerCase()}`;
  const url = await ensureLoaded(args, dir, dbName);
  const workload = await workloadFromFile(join(dir, 'queries.json'));
  const expectedFile = JSON.parse(readFileSync(join(dir, 'expected_indexes.json'), 'utf8')) as {
    expected: Expected[];
    traps: Trap[];
  };

  const db = createDatabase({
    connectionString: url,
    port: 5432,
    database: dbName,
    user: 'postgres',
    sslMode: 'disable',
    poolMax: 1,
    connectTimeoutMs: 5_000,
    idleTimeoutMs: 10_000,
    queryTimeoutMs: 120_000,
  });
  const runtimes: number[] = [];
  let report: AdvisorReport | undefined;
  try {
    for (let run = 1; run <= args.runs; run += 1) {
      report = await adviseIndexes({ db }, workload, { ...DEFAULT_ADVISOR_OPTIONS });
      runtimes.push(report.runtimeMs);
      console.log(
        `run ${run}/${args.runs}: ${report.proposals.length} proposals in ${(report.runtimeMs / 1000).toFixed(2)} s (${report.method})`,
      );
    }
  } finally {
    await db.end();
  }
  if (!report) return;

  console.log('\nproposals:');
  for (const p of report.proposals) console.log(p.ddl);
  writeFileSync(args.out, `${report.proposals.map((p) => p.ddl).join('\n')}\n`);
  console.log(`\n(written to ${args.out})`);
  for (const w of report.warnings) console.log(`warning: ${w}`);

  const { proposals, alternatives } = await normalise(url, report, expectedFile.expected);
  const credits = proposals.map(() => 0);
  const matched = new Map<string, number>();
  const traps: string[] = [];
  proposals.forEach((p, i) => {
    for (const e of expectedFile.expected) {
      e.any_of.forEach((alt, k) => {
        const shape = alternatives.get(`${e.id}#${k}`);
        if (shape && altMatches(p, shape, alt)) {
          const credit = alt.credit ?? 1;
          credits[i] = Math.max(credits[i] as number, credit);
          matched.set(e.id, Math.max(matched.get(e.id) ?? 0, credit));
        }
      });
    }
    for (const t of expectedFile.traps) {
      if (trapMatches(p, t)) traps.push(`${t.id}: ${report?.proposals[i]?.ddl}`);
    }
  });
  const required = expectedFile.expected.filter((e) => e.required);
  const precision = proposals.length ? credits.filter((c) => c > 0).length / proposals.length : 0;
  const recall = required.length
    ? required.filter((e) => (matched.get(e.id) ?? 0) > 0).length / required.length
    : 0;
  const recallWeighted = required.length
    ? required.reduce((s, e) => s + (matched.get(e.id) ?? 0), 0) / required.length
    : 0;
  const missing = required.filter((e) => !matched.has(e.id)).map((e) => e.id);
  console.log(
    `\nprecision ${precision.toFixed(3)}  recall ${recall.toFixed(3)} (weighted ${recallWeighted.toFixed(3)})  traps ${traps.length}`,
  );
  if (missing.length) console.log(`missing expected: ${missing.join(', ')}`);
  for (const t of traps) console.log(`trap hit: ${t}`);
  proposals.forEach((_, i) => {
    if (credits[i] === 0) console.log(`unmatched proposal: ${report?.proposals[i]?.ddl}`);
  });

  let score: Record<string, unknown> = {};
  if (args.score) {
    const server = new URL(args.databaseUrl);
    const out = '/tmp/dbopt-advisor-score.json';
    const r = spawnSync(
      'python3',
      [
        join(dir, '../../tools/score-indexes.py'),
        '--workload-dir',
        dir,
        '--proposed',
        args.out,
        '--out',
        out,
      ],
      {
        encoding: 'utf8',
        env: {
          ...process.env,
          PGHOST: server.hostname,
          PGPORT: server.port || '5432',
          PGUSER: server.username || 'postgres',
        },
      },
    );
    console.log(r.stdout);
    if (r.status === 0) {
      const scored = JSON.parse(readFileSync(out, 'utf8')) as {
        totals?: { weighted_reduction_pct?: number; exec_speedup?: number };
        accuracy?: { precision?: number; recall?: number; trap_hit_count?: number };
        per_query?: { verdict?: string }[] | Record<string, { verdict?: string }>;
      };
      const perQuery = Object.values(scored.per_query ?? {});
      score = {
        score_file: out,
        score_weighted_db_time_change_pct: -(scored.totals?.weighted_reduction_pct ?? 0),
        score_exec_speedup: scored.totals?.exec_speedup,
        score_precision: scored.accuracy?.precision,
        score_recall: scored.accuracy?.recall,
        score_traps: scored.accuracy?.trap_hit_count,
        score_regressions: perQuery.filter((q) =>
          String(q.verdict ?? '')
            .toLowerCase()
            .startsWith('regression'),
        ).length,
      };
    } else console.log(`score-indexes.py failed: ${r.stderr}`);
  }

  console.log(
    JSON.stringify({
      bench: 'advisor',
      workload: basename(dir),
      runs: runtimes.length,
      runtime_s: Number((median(runtimes) / 1000).toFixed(2)),
      method: report.method,
      proposals: report.proposals.length,
      precision: Number(precision.toFixed(4)),
      recall: Number(recall.toFixed(4)),
      recall_weighted: Number(recallWeighted.toFixed(4)),
      traps: traps.length,
      missing,
      ...score,
    }),
  );
};

await main();
