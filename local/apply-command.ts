import { createInterface } from 'node:readline/promises';
import {
  type ApplyOutcome,
  applyIndex,
  findIndexHygiene,
  type HygieneReport,
  prepareIndexDdl,
  type ServedStatement,
  workloadFromStatStatements,
} from '#shared/advisor';
import { type Config, loadConfig } from '#shared/config';
import {
  createDatabase,
  type Database,
  databaseOptionsFromConfig,
  withReadOnlyTransaction,
} from '#shared/db';
import { ConfigError, DatabaseUnavailableError, ValidationError } from '#shared/errors';
import { optimizerSettingsFromConfig } from '#shared/optimizer';
import { createRepository } from '#shared/repository';
import { initSqlParser } from '#shared/sql';
import { formatCount, redactUrl } from './format.ts';

/** Where a command writes: `out` the result (stdout), `err` progress and notes (stderr). */
export interface CommandIo {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Asks a yes/no question on the terminal; undefined when there is no terminal. */
  confirm?: (question: string) => Promise<boolean>;
}

export interface ApplyCommandOptions {
  readonly databaseUrl?: string;
  /** Id of a stored create_index suggestion (repository). */
  readonly suggestion?: number;
  /** A CREATE INDEX statement given directly. */
  readonly ddl?: string;
  /** Build without asking. */
  readonly yes?: boolean;
}

export type HygieneFormat = 'text' | 'json' | 'sql';

export interface HygieneCommandOptions {
  readonly databaseUrl?: string;
  readonly format?: HygieneFormat;
}

/** Exit code of `dbopt apply` when the index was built, found wanting and dropped. */
export const EXIT_REJECTED = 3;

/** A y/N question on stdin/stderr, or undefined when stdin is not a terminal. */
export const terminalConfirm = (): CommandIo['confirm'] =>
  process.stdin.isTTY
    ? async (question) => {
        const rl = createInterface({ input: process.stdin, output: process.stderr });
        try {
          return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
        } finally {
          rl.close();
        }
      }
    : undefined;

const openTarget = async (
  databaseUrl: string | undefined,
  env: NodeJS.ProcessEnv,
): Promise<{ url: string; config: Config; db: Database }> => {
  const url = databaseUrl ?? env.ADVISOR_DATABASE_URL ?? env.DATABASE_URL;
  if (!url) {
    throw new ConfigError(
      'no database: pass --database-url postgres://… (or set ADVISOR_DATABASE_URL / DATABASE_URL)',
    );
  }
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:')) {
    throw new ConfigError(
      `--database-url must be a postgres:// or postgresql:// URL; got ${redactUrl(url)}`,
    );
  }
  const config = loadConfig({
    ...env,
    DATABASE_URL: url,
    DB_SSL_MODE: env.DB_SSL_MODE ?? (parsed.searchParams.get('sslmode') ? 'require' : 'disable'),
  });
  const db = createDatabase({
    ...databaseOptionsFromConfig(config),
    connectionString: url,
    poolMax: 2,
  });
  try {
    await db.pool().query('SELECT /* dbopt */ 1');
  } catch (err) {
    await db.end();
    throw new DatabaseUnavailableError(
      `cannot connect to ${redactUrl(url)}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  return { url, config, db };
};

/**
 * `dbopt apply`: builds one index CONCURRENTLY within APPLY_* limits and keeps it only if
 * the statements it serves use it and none gets more expensive (see applyIndex). With
 * `--suggestion ID` the DDL and statements come from the repository and the outcome is
 * recorded there; with `--ddl` the statements are the top of pg_stat_statements.
 * Exit 0: verified and kept; 3: rejected (dropped or not built); 1: error.
 */
export const runApplyCommand = async (
  opts: ApplyCommandOptions,
  env: NodeJS.ProcessEnv,
  io: CommandIo,
): Promise<number> => {
  if ((opts.suggestion === undefined) === (opts.ddl === undefined)) {
    throw new ValidationError(
      'APPLY_ARGUMENTS',
      'pass exactly one of --suggestion ID or --ddl "CREATE INDEX …"',
    );
  }
  await initSqlParser();
  if (opts.ddl) prepareIndexDdl(opts.ddl); // refuse anything but one CREATE INDEX before connecting
  const { url, config, db } = await openTarget(opts.databaseUrl, env);
  const repositoryDb =
    opts.suggestion !== undefined && config.REPOSITORY_DATABASE_URL
      ? createDatabase({
          ...databaseOptionsFromConfig(config),
          connectionString: config.REPOSITORY_DATABASE_URL,
        })
      : db;
  try {
    const repository = createRepository({
      query: (sql, params) => repositoryDb.pool().query(sql, params) as never,
    });
    let ddl: string;
    let statements: ServedStatement[];
    let sizeBytes: number | undefined;
    if (opts.suggestion !== undefined) {
      const suggestion = await repository.getSuggestion(opts.suggestion);
      if (suggestion?.kind !== 'create_index' || !suggestion.ddl) {
        throw new ValidationError(
          'APPLY_ARGUMENTS',
          `suggestion ${opts.suggestion} is not a stored create_index suggestion (list them in the dbopt.suggestions table)`,
        );
      }
      ddl = suggestion.ddl;
      statements = (
        (suggestion.payload.statements ?? []) as Array<{ sql?: string; params?: unknown[] }>
      )
        .filter((s): s is { sql: string; params?: unknown[] } => typeof s.sql === 'string')
        .map((s) => ({ sql: s.sql, ...(s.params?.length ? { params: s.params } : {}) }));
      sizeBytes = Number(suggestion.payload.sizeBytes) || undefined;
    } else {
      ddl = opts.ddl as string;
      statements = [];
    }
    if (statements.length === 0) {
      io.err('reading the statements to verify against from pg_stat_statements');
      statements = (await workloadFromStatStatements(db, { limit: 50, minCalls: 1 }))
        .filter((w) => w.kind === 'read')
        .map((w) => ({ sql: w.sql, ...(w.params[0] ? { params: w.params[0] } : {}) }));
    }
    const { applyLimits } = optimizerSettingsFromConfig(config);
    io.err(`database   ${redactUrl(url)}`);
    io.err(`index      ${prepareIndexDdl(ddl).concurrentDdl}`);
    io.err(`verify on  ${statements.length} statement(s)`);
    io.err(
      `limits     lock_timeout ${applyLimits.lockTimeoutMs} ms, size ≤ ${formatCount(applyLimits.maxIndexBytes)} bytes, build ≤ ${applyLimits.maxBuildMs} ms`,
    );
    if (!opts.yes) {
      if (!io.confirm)
        throw new ValidationError(
          'APPLY_ARGUMENTS',
          'not a terminal: pass --yes to build without asking',
        );
      if (!(await io.confirm('Build this index now?'))) {
        io.err('nothing done');
        return 1;
      }
    }
    const outcome = await applyIndex(
      {
        connect: () => db.pool().connect(),
        ...(opts.suggestion !== undefined ? { suggestions: repository } : {}),
      },
      { ddl, statements, limits: applyLimits, suggestionId: opts.suggestion, sizeBytes },
    );
    for (const line of formatApplyOutcome(outcome)) io.out(line);
    return outcome.status === 'verified' ? 0 : EXIT_REJECTED;
  } finally {
    await Promise.all([...new Set([db, repositoryDb])].map((d) => d.end()));
  }
};

/** The readable result of `dbopt apply`. */
export const formatApplyOutcome = (outcome: ApplyOutcome): string[] => [
  `${outcome.status === 'verified' ? 'VERIFIED' : 'REJECTED'}  ${outcome.indexName}: ${outcome.reason}`,
  ...(outcome.sizeBytes !== undefined
    ? [`  size ${formatCount(outcome.sizeBytes)} bytes, built in ${outcome.buildMs} ms`]
    : []),
  ...outcome.statements.map(
    (s) =>
      `  ${s.usesIndex ? 'uses it ' : 'does not'}  cost ${s.costBefore} → ${s.costAfter}  ${s.sql.replace(/\s+/g, ' ').slice(0, 100)}`,
  ),
];

/**
 * `dbopt hygiene`: invalid, duplicate, prefix-redundant and unused indexes. `--format sql`
 * prints exactly one `DROP INDEX CONCURRENTLY …;` per line and nothing else.
 */
export const runHygieneCommand = async (
  opts: HygieneCommandOptions,
  env: NodeJS.ProcessEnv,
  io: CommandIo,
): Promise<number> => {
  const { config, db } = await openTarget(opts.databaseUrl, env);
  try {
    const report = await withReadOnlyTransaction(db, { timeoutMs: 30_000 }, (tx) =>
      findIndexHygiene(tx, { minIndexAgeDays: config.HYGIENE_MIN_INDEX_AGE_DAYS }),
    );
    const format = opts.format ?? 'text';
    if (format === 'sql') {
      for (const f of report.findings) io.out(f.dropStatement);
    } else if (format === 'json') {
      io.out(JSON.stringify(report, null, 2));
    } else {
      for (const line of formatHygieneReport(report)) io.out(line);
    }
    return 0;
  } finally {
    await db.end();
  }
};

export const formatHygieneReport = (report: HygieneReport): string[] => {
  const total = report.findings.reduce((sum, f) => sum + f.sizeBytes, 0);
  const lines = [
    `Index hygiene: ${report.findings.length} index(es) to drop, ${formatCount(total)} bytes (scans counted since ${report.statsResetAt?.toISOString() ?? 'statistics began'})`,
  ];
  for (const f of report.findings) {
    lines.push(
      '',
      `${f.kind.padEnd(16)} ${f.schema}.${f.index} on ${f.table}, ${formatCount(f.sizeBytes)} bytes`,
    );
    lines.push(`  why   ${f.reason}`, `  drop  ${f.dropStatement}`);
  }
  if (report.skipped.length > 0) {
    lines.push('', 'Not reported:');
    for (const s of report.skipped) lines.push(`  ${s.index}: ${s.reason}`);
  }
  return lines;
};
