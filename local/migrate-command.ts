import pg from 'pg';
import { ConfigError } from '#shared/errors';
import { migrateRepository } from '#shared/repository';
import { redactUrl } from './format.ts';

export interface MigrateCommandOptions {
  readonly databaseUrl?: string;
}

/**
 * `dbopt migrate`: brings the `dbopt` schema of the repository database up to date. The
 * URL comes from --database-url, else REPOSITORY_DATABASE_URL, else DATABASE_URL.
 */
export const runMigrateCommand = async (
  opts: MigrateCommandOptions,
  env: NodeJS.ProcessEnv,
  print: (line: string) => void,
): Promise<void> => {
  const url = opts.databaseUrl ?? env.REPOSITORY_DATABASE_URL ?? env.DATABASE_URL;
  if (!url) {
    throw new ConfigError(
      'no repository database: pass --database-url, or set REPOSITORY_DATABASE_URL or DATABASE_URL',
    );
  }
  if (!/^postgres(ql)?:\/\//.test(url)) {
    throw new ConfigError('--database-url must be a postgres:// or postgresql:// URL');
  }
  const pool = new pg.Pool({ connectionString: url, max: 1, connectionTimeoutMillis: 5_000 });
  try {
    print(`Migrating the dbopt schema in ${redactUrl(url)}…`);
    const result = await migrateRepository(pool, { onProgress: (line) => print(`  ${line}`) });
    print(
      result.applied.length === 0
        ? `  up to date (version ${result.version})`
        : `  done: applied ${result.applied.join(', ')}; now at version ${result.version}`,
    );
  } finally {
    await pool.end();
  }
};
