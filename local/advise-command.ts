import {
  AdvisorError,
  type AdvisorReport,
  adviseIndexes,
  advisorOptionsFromConfig,
  type WorkloadStatement,
  workloadFromFile,
  workloadFromStatStatements,
} from '#shared/advisor';
import { loadConfig } from '#shared/config';
import { createDatabase, databaseOptionsFromConfig } from '#shared/db';
import { ConfigError, DatabaseUnavailableError, isAppError } from '#shared/errors';
import { formatCount, formatSeconds, redactUrl } from './format.ts';

export type AdviseFormat = 'sql' | 'json' | 'text';

export interface AdviseCommandOptions {
  readonly databaseUrl?: string;
  readonly workload?: string;
  readonly format?: AdviseFormat;
  readonly maxIndexes?: number;
  /** pg_stat_statements input only: statements read (heaviest first) and minimum calls. */
  readonly limit?: number;
  readonly minCalls?: number;
}

/** Where the command writes: `out` is stdout (the result), `err` is stderr (progress, notes). */
export interface AdviseIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

const formatBytes = (bytes: number): string =>
  bytes >= 1024 * 1024
    ? `${(bytes / 1024 / 1024).toFixed(1)} MB`
    : `${formatCount(Math.max(1, Math.round(bytes / 1024)))} kB`;

const formatCost = (cost: number): string => formatCount(Math.round(cost));

/** The readable report of `--format text`. */
export const formatAdvisorReport = (report: AdvisorReport): string[] => {
  const lines: string[] = [];
  lines.push(
    `Index advisor: ${report.proposals.length} proposal(s) in ${formatSeconds(report.runtimeMs)} (what-if method: ${report.method})`,
  );
  report.proposals.forEach((p, n) => {
    lines.push('');
    lines.push(`${n + 1}. ${p.ddl}`);
    lines.push(`   serves      ${p.serves.join(', ')}`);
    lines.push(
      `   benefit     ${formatCost(p.benefit.weightedCostReduction)} cost units/hour (plan cost ${formatCost(p.benefit.costBefore)} → ${formatCost(p.benefit.costAfter)})${p.benefit.estimatedTimeSavedMsPerHour !== undefined ? `, ~${formatSeconds(p.benefit.estimatedTimeSavedMsPerHour)} saved per hour` : ''}`,
    );
    lines.push(`   size        ${formatBytes(p.sizeBytes)} (estimated)`);
    lines.push(
      `   writes      ${p.writeOverhead.statements.length === 0 ? 'none in the workload' : `${formatCount(Math.round(p.writeOverhead.entriesPerHour))} index entries/hour from ${p.writeOverhead.statements.join(', ')}${p.writeOverhead.hotUpdatesLost ? ` (updates of ${p.writeOverhead.updatedColumns.join(', ')} lose HOT)` : ''}`}`,
    );
    lines.push(`   evaluated   ${p.evaluatedWith}`);
    lines.push(`   why         ${p.rationale}`);
  });
  if (report.rejected.length > 0) {
    lines.push('');
    lines.push(`Rejected candidates (${report.rejected.length}):`);
    for (const r of report.rejected) {
      lines.push(`  - ${r.candidate.ddl}`);
      lines.push(`      ${r.reason}`);
    }
  }
  if (report.warnings.length > 0) {
    lines.push('');
    lines.push('Warnings:');
    for (const w of report.warnings) lines.push(`  - ${w}`);
  }
  return lines;
};

/**
 * `dbopt advise`: proposes indexes for a workload file, or for the statements in
 * pg_stat_statements, on the database at --database-url (default ADVISOR_DATABASE_URL, then
 * DATABASE_URL). `--format sql` prints exactly one `CREATE INDEX …;` per line on stdout and
 * nothing else; `text` prints progress on stderr and a readable report; `json` the report.
 */
export const runAdviseCommand = async (
  opts: AdviseCommandOptions,
  env: NodeJS.ProcessEnv,
  io: AdviseIo,
): Promise<number> => {
  const format = opts.format ?? 'text';
  const url = opts.databaseUrl ?? env.ADVISOR_DATABASE_URL ?? env.DATABASE_URL;
  if (!url) {
    throw new ConfigError(
      'no database to advise on: pass --database-url postgres://… (or set ADVISOR_DATABASE_URL / DATABASE_URL)',
    );
  }
  let parsedUrl: URL | undefined;
  try {
    parsedUrl = new URL(url);
  } catch {
    parsedUrl = undefined;
  }
  if (!parsedUrl || !/^postgres(ql)?:$/.test(parsedUrl.protocol)) {
    throw new ConfigError(
      `--database-url must be a postgres:// or postgresql:// URL; got ${redactUrl(url)}`,
    );
  }
  const config = loadConfig({
    ...env,
    DATABASE_URL: url,
    DB_SSL_MODE: env.DB_SSL_MODE ?? (parsedUrl.searchParams.get('sslmode') ? 'require' : 'disable'),
  });
  const options = {
    ...advisorOptionsFromConfig(config),
    ...(opts.maxIndexes !== undefined ? { maxIndexes: opts.maxIndexes } : {}),
  };
  const db = createDatabase({
    ...databaseOptionsFromConfig(config),
    connectionString: url,
    poolMax: 1,
    queryTimeoutMs: options.statementTimeoutMs + 5_000,
  });
  const progress = format === 'text' ? (line: string) => io.err(`  ${line}`) : undefined;
  try {
    try {
      await db.pool().query('SELECT /* dbopt */ 1');
    } catch (err) {
      throw new DatabaseUnavailableError(
        `cannot connect to --database-url ${redactUrl(url)}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    let workload: WorkloadStatement[];
    if (opts.workload) {
      progress?.(`reading workload ${opts.workload}`);
      workload = await workloadFromFile(opts.workload);
    } else {
      progress?.('reading statements from pg_stat_statements');
      try {
        workload = await workloadFromStatStatements(db, {
          limit: opts.limit ?? 50,
          minCalls: opts.minCalls ?? 2,
        });
      } catch (err) {
        if (isAppError(err) && err.code === 'STAT_STATEMENTS_UNAVAILABLE') {
          throw new AdvisorError(
            'STAT_STATEMENTS_UNAVAILABLE',
            `pg_stat_statements is not available in ${redactUrl(url)}: add it to shared_preload_libraries and run CREATE EXTENSION pg_stat_statements there, or pass --workload FILE`,
            { cause: err },
          );
        }
        throw err;
      }
      if (workload.length === 0) {
        throw new AdvisorError(
          'WORKLOAD_EMPTY',
          'pg_stat_statements has no statements for this database yet; run the workload first, or pass --workload FILE',
        );
      }
    }
    progress?.(`${workload.length} statements; advising on ${redactUrl(url)}`);
    const report = await adviseIndexes(
      { db, ...(progress ? { onProgress: progress } : {}) },
      workload,
      options,
    );
    if (format === 'sql') {
      for (const p of report.proposals) io.out(p.ddl);
      // stdout stays pure DDL; what was skipped (or a missing HypoPG) still reaches the user.
      for (const w of report.warnings) io.err(`warning: ${w}`);
    } else if (format === 'json') {
      io.out(JSON.stringify(report, null, 2));
    } else {
      for (const line of formatAdvisorReport(report)) io.out(line);
    }
    return 0;
  } finally {
    await db.end();
  }
};
