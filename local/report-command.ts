import { formatDuration, formatPercent, healthThresholdsFromConfig } from '#shared/analysis';
import { loadConfig } from '#shared/config';
import { createDatabase, databaseOptionsFromConfig } from '#shared/db';
import { ConfigError, DatabaseUnavailableError } from '#shared/errors';
import { createSqlAnalyzer, initSqlParser } from '#shared/sql';
import {
  type HealthReportData,
  pgStatsTarget,
  readHealthReport,
  statsSettingsFromConfig,
} from '#shared/stats';
import { formatCount, formatSeconds, redactUrl } from './format.ts';

export interface ReportCommandOptions {
  readonly databaseUrl?: string;
  readonly json?: boolean;
  /** Statements listed (default 10). */
  readonly top?: number;
  /** Skip EXPLAIN of the listed statements. */
  readonly noExplain?: boolean;
}

/** `out` is stdout (the report), `err` is stderr (progress). */
export interface ReportIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

const formatBytes = (bytes: number): string =>
  bytes >= 1024 * 1024
    ? `${(bytes / 1024 / 1024).toFixed(1)} MB`
    : `${formatCount(Math.max(0, Math.round(bytes / 1024)))} kB`;

const oneLine = (sql: string, max = 100): string => {
  const flat = sql.split(/\s+/).join(' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};

const versionText = (num: number): string =>
  num >= 100_000 ? `${Math.floor(num / 10_000)}.${num % 10_000}` : String(num);

const pct = (ratio: number | null): string => (ratio === null ? 'n/a' : formatPercent(ratio));

/** The readable report. */
export const formatHealthReport = (r: HealthReportData): string[] => {
  const lines: string[] = [];
  const a = r.snapshot.activity;
  lines.push(
    `dbopt health report: ${r.database} on PostgreSQL ${versionText(r.serverVersionNum)}, statistics since ${r.statsSince ?? 'the server started'}`,
  );
  lines.push('');
  lines.push(
    `Verdict: ${r.health.status}${r.health.bottleneck ? ` (bottleneck: ${r.health.bottleneck})` : ''}`,
  );
  if (r.health.recommendation) lines.push(`  ${r.health.recommendation}`);
  for (const c of r.health.conditions.slice(1)) lines.push(`  also ${c.severity}: ${c.summary}`);
  lines.push('');
  lines.push(
    `Connections: ${a.connections} of ${a.maxConnections} (active ${a.active}, idle ${a.idle}, idle in transaction ${a.idleInTransaction}, waiting for locks ${a.waiting})`,
  );
  lines.push(
    `Longest running query ${formatDuration(a.longestQuerySeconds)}, oldest transaction ${formatDuration(a.oldestTransactionSeconds)}`,
  );
  lines.push(
    `Cache hit ratios: database ${pct(r.cacheHitRatios.database)}, tables ${pct(r.cacheHitRatios.tables)}, indexes ${pct(r.cacheHitRatios.indexes)}`,
  );
  lines.push(
    `Replication: ${r.snapshot.replication.replicas === 0 ? 'no replicas' : `${r.snapshot.replication.replicas} replica(s), lag ${r.snapshot.replication.lagSeconds === null ? 'n/a' : formatDuration(r.snapshot.replication.lagSeconds)}`}`,
  );
  lines.push('');
  if (r.slowQueriesError) {
    lines.push(`Slow queries: ${r.slowQueriesError}`);
  } else {
    lines.push(
      `Slow queries (DML, by total time since pg_stat_statements was reset): ${r.slowQueries.length}`,
    );
    r.slowQueries.forEach((s, i) => {
      lines.push(
        `${String(i + 1).padStart(3)}. ${formatPercent(s.shareOfTotalTime).padStart(6)} of time  ${formatCount(s.calls)} calls  mean ${s.meanExecTimeMs.toFixed(1)} ms  total ${formatSeconds(s.totalExecTimeMs)}`,
      );
      lines.push(`       ${oneLine(s.query)}`);
      for (const f of s.findings) lines.push(`       - ${f.kind}: ${f.detail}`);
    });
  }
  lines.push('');
  lines.push(`Unused indexes (never scanned, not backing a constraint): ${r.unusedIndexes.length}`);
  for (const u of r.unusedIndexes) {
    lines.push(`  ${u.schema}.${u.index} on ${u.table}  ${formatBytes(u.sizeBytes)}`);
  }
  lines.push('');
  lines.push('Dead tuples (bloat signals):');
  if (r.deadTupleTables.length === 0) lines.push('  none');
  for (const d of r.deadTupleTables) {
    lines.push(
      `  ${d.schema}.${d.table}  ${formatCount(d.deadTuples)} dead / ${formatCount(d.liveTuples)} live (${formatPercent(d.deadTupleRatio)}), last autovacuum ${d.lastAutovacuum ?? 'never'}`,
    );
  }
  return lines;
};

/**
 * `dbopt report`: a one-shot health report of any database (--database-url, else
 * DATABASE_URL): the verdict, connections, cache hit ratios, the statements that consumed the
 * most time (with findings), unused indexes and dead tuples. Text, or `--json`. Progress goes
 * to stderr. Returns the exit code: 0, or 1 when the database cannot be reached.
 */
export const runReportCommand = async (
  opts: ReportCommandOptions,
  env: NodeJS.ProcessEnv,
  io: ReportIo,
): Promise<number> => {
  const url = opts.databaseUrl ?? env.DATABASE_URL;
  if (!url) {
    throw new ConfigError('no database: pass --database-url or set DATABASE_URL');
  }
  let host = '';
  try {
    host = new URL(url).hostname;
  } catch {
    throw new ConfigError('--database-url must be a postgres:// or postgresql:// URL');
  }
  const config = loadConfig({
    ...env,
    DATABASE_URL: url,
    // A database on this machine almost never has TLS.
    ...(env.DB_SSL_MODE || !LOCAL_HOSTS.has(host) ? {} : { DB_SSL_MODE: 'disable' }),
  });
  const db = createDatabase({ ...databaseOptionsFromConfig(config), poolMax: 1 });
  const database = decodeURIComponent(new URL(url).pathname.slice(1)) || config.DB_NAME;
  try {
    io.err(`Reading statistics from ${redactUrl(url)}…`);
    await initSqlParser();
    const report = await readHealthReport(pgStatsTarget('report', database, db), {
      thresholds: healthThresholdsFromConfig(config),
      sql: createSqlAnalyzer({ cacheEntries: 1_000 }),
      timeoutMs: config.STATS_READ_TIMEOUT_MS,
      topN: opts.top ?? 10,
      explain: !opts.noExplain,
      findings: statsSettingsFromConfig(config).findings,
      onProgress: (step) => io.err(`  ${step}`),
    });
    if (opts.json) io.out(JSON.stringify(report, null, 2));
    else for (const line of formatHealthReport(report)) io.out(line);
    return 0;
  } catch (err) {
    if (err instanceof DatabaseUnavailableError) {
      io.err(`dbopt report: cannot reach ${redactUrl(url)}: ${err.message}`);
      return 1;
    }
    throw err;
  } finally {
    await db.end();
  }
};
