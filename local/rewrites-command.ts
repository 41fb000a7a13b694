import {
  adviseRewrites,
  type RewriteAdvice,
  type RewriteInput,
  workloadFromStatStatements,
} from '#shared/advisor';
import { loadConfig } from '#shared/config';
import { createDatabase, databaseOptionsFromConfig } from '#shared/db';
import { ConfigError, DatabaseUnavailableError } from '#shared/errors';
import { initSqlParser } from '#shared/sql';
import type { CommandIo } from './apply-command.ts';
import { redactUrl } from './format.ts';

export interface RewritesCommandOptions {
  readonly databaseUrl?: string;
  /** Statements to examine; default: the heaviest of pg_stat_statements. */
  readonly sql?: string[];
  readonly format?: 'text' | 'json';
  readonly limit?: number;
}

/**
 * `dbopt rewrites`: plan-changing rewrites of the given statements (or the heaviest
 * statements in pg_stat_statements, with sampled parameter values), each with the rewritten
 * SQL and the plan cost PostgreSQL estimates for both.
 */
export const runRewritesCommand = async (
  opts: RewritesCommandOptions,
  env: NodeJS.ProcessEnv,
  io: CommandIo,
): Promise<number> => {
  const url = opts.databaseUrl ?? env.ADVISOR_DATABASE_URL ?? env.DATABASE_URL;
  if (!url) throw new ConfigError('no database: pass --database-url postgres://…');
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:')) {
    throw new ConfigError(`--database-url must be a postgres:// URL; got ${redactUrl(url)}`);
  }
  const config = loadConfig({
    ...env,
    DATABASE_URL: url,
    DB_SSL_MODE: env.DB_SSL_MODE ?? (parsed.searchParams.get('sslmode') ? 'require' : 'disable'),
  });
  await initSqlParser();
  const db = createDatabase({ ...databaseOptionsFromConfig(config), connectionString: url });
  try {
    try {
      await db.pool().query('SELECT /* dbopt */ 1');
    } catch (err) {
      throw new DatabaseUnavailableError(
        `cannot connect to ${redactUrl(url)}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    const inputs: RewriteInput[] =
      opts.sql && opts.sql.length > 0
        ? opts.sql.map((sql) => ({ sql }))
        : (await workloadFromStatStatements(db, { limit: opts.limit ?? 50, minCalls: 1 }))
            .filter((w) => w.kind === 'read')
            .map((w) => ({ sql: w.sql, ...(w.params[0] ? { params: w.params[0] } : {}) }));
    const advice = await adviseRewrites(db, inputs, {
      timeoutMs: config.ADVISOR_STATEMENT_TIMEOUT_MS,
    });
    if (opts.format === 'json') {
      io.out(
        JSON.stringify(
          { ...advice, errors: advice.errors.map((e) => ({ ...e, error: e.error.message })) },
          null,
          2,
        ),
      );
    } else {
      for (const line of formatRewriteAdvice(advice, inputs.length)) io.out(line);
    }
    return 0;
  } finally {
    await db.end();
  }
};

export const formatRewriteAdvice = (advice: RewriteAdvice, examined: number): string[] => {
  const lines = [
    `Rewrite advisor: ${advice.suggestions.length} rewrite(s) for ${examined} statement(s)`,
  ];
  for (const [n, s] of advice.suggestions.entries()) {
    const change = s.costBefore > 0 ? ` (${Math.round((1 - s.costRatio) * 100)}% cheaper)` : '';
    lines.push(
      '',
      `${n + 1}. ${s.title}`,
      `   plan cost   ${s.costBefore} → ${s.costAfter}${s.costAfter < s.costBefore ? change : ''} [${s.planMode} plan]${s.correctnessFix ? ' — also a correctness fix' : ''}`,
      `   original    ${s.originalSql}`,
      `   rewritten   ${s.rewrittenSql.replaceAll('\n', '\n               ')}`,
      `   why         ${s.rationale}`,
    );
  }
  if (advice.errors.length > 0) {
    lines.push('', 'Not examined:');
    for (const e of advice.errors)
      lines.push(`  - ${e.rule ? `${e.rule}: ` : ''}${e.error.message} (${e.sql.slice(0, 80)})`);
  }
  return lines;
};
