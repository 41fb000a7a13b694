import type { Config } from '#shared/config';
import { type DatabaseOptions, databaseOptionsFromConfig } from '#shared/db';

/**
 * Where the repository lives: REPOSITORY_DATABASE_URL when set, else the primary. The pool
 * settings (TLS, IAM auth, timeouts) are the primary's.
 */
export const repositoryDatabaseOptions = (config: Config): DatabaseOptions => {
  const primary = databaseOptionsFromConfig(config);
  if (!config.REPOSITORY_DATABASE_URL) return primary;
  const url = new URL(config.REPOSITORY_DATABASE_URL);
  return {
    ...primary,
    connectionString: config.REPOSITORY_DATABASE_URL,
    host: url.hostname,
    database: decodeURIComponent(url.pathname.slice(1)) || primary.database,
  };
};
