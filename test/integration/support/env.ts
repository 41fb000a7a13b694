import type { DatabaseOptions } from '#shared/db';

/**
 * Where the integration tests find their services. `.ci/services.sh` (run by `npm test`'s
 * pretest step) starts both; override to point at your own.
 */
export const TEST_DATABASE_URL =
  process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:55432/dbopt_test';
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** The URL of database `name` (optionally as `user`) on the test cluster. */
export const testDatabaseUrl = (name: string, user?: string): string => {
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  if (user) url.username = user;
  return url.toString();
};

/** An address nothing listens on, for "database unreachable" paths. */
export const DEAD_DATABASE_URL = 'postgres://postgres@127.0.0.1:1/dbopt_test';

/** Pool options for a test database at `url`: no TLS, short timeouts, pool of one. */
export const testDatabaseOptions = (
  url: string,
  overrides: Partial<DatabaseOptions> = {},
): DatabaseOptions => ({
  connectionString: url,
  port: 5432,
  database: new URL(url).pathname.slice(1),
  user: 'postgres',
  sslMode: 'disable',
  poolMax: 1,
  connectTimeoutMs: 2_000,
  idleTimeoutMs: 10_000,
  queryTimeoutMs: 10_000,
  ...overrides,
});
