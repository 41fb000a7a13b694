import { RepositoryError } from './errors.ts';
import { MIGRATIONS, type Migration } from './migrations.ts';

/** One session: the advisory lock and every migration transaction must share it. */
export interface MigrationSession {
  query(sql: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
  release(err?: Error | boolean): void;
}

/** Hands out a session; a `pg.Pool` fits (`db.pool()` of #shared/db). */
export interface MigrationConnector {
  connect(): Promise<MigrationSession>;
}

export interface MigrationResult {
  /** Versions applied by this call, ascending; empty when the schema was up to date. */
  readonly applied: number[];
  /** Schema version after the call. */
  readonly version: number;
}

export interface MigrateOptions {
  /** Progress lines (CLI); nothing is printed otherwise. */
  readonly onProgress?: (message: string) => void;
  /** For tests: a different migration list. */
  readonly migrations?: readonly Migration[];
}

// pg_advisory_lock key: the first 8 bytes of sha1('dbopt.repository'), fixed so that every
// process (CLI, every Lambda instance) serialises on the same lock.
const MIGRATION_LOCK_KEY = '3215224492943556802';

const SQL_LOCK = 'SELECT /* dbopt */ pg_advisory_lock($1::bigint)';
const SQL_UNLOCK = 'SELECT /* dbopt */ pg_advisory_unlock($1::bigint)';
const SQL_BOOTSTRAP = `
CREATE SCHEMA IF NOT EXISTS dbopt;
CREATE TABLE IF NOT EXISTS dbopt.schema_migrations (
  version integer PRIMARY KEY,
  name text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)`;
const SQL_APPLIED_VERSIONS = `
SELECT /* dbopt */ version
FROM dbopt.schema_migrations
ORDER BY version`;
const SQL_RECORD_VERSION = `
INSERT /* dbopt */ INTO dbopt.schema_migrations (version, name)
VALUES ($1, $2)`;

/**
 * Brings the `dbopt` schema to the newest version. Idempotent and safe to call concurrently
 * (an advisory lock serialises callers; the second finds nothing to do): the CLI runs it with
 * `dbopt migrate`, each Lambda once per cold start.
 *
 * A database already at a newer version than this code knows is left alone and reported
 * with `REPOSITORY_NEWER` (an older deployment must not run against a newer schema).
 *
 * @example
 * const { applied, version } = await migrateRepository(db.pool());
 */
export const migrateRepository = async (
  connector: MigrationConnector,
  options: MigrateOptions = {},
): Promise<MigrationResult> => {
  const migrations = [...(options.migrations ?? MIGRATIONS)].sort((a, b) => a.version - b.version);
  const newest = migrations.at(-1)?.version ?? 0;
  const session = await connector.connect();
  let broken: Error | undefined;
  try {
    await session.query(SQL_LOCK, [MIGRATION_LOCK_KEY]);
    try {
      await session.query(SQL_BOOTSTRAP);
      const { rows } = await session.query(SQL_APPLIED_VERSIONS);
      const done = new Set(rows.map((row) => Number(row.version)));
      const current = Math.max(0, ...done);
      if (current > newest) {
        throw new RepositoryError(
          'REPOSITORY_NEWER',
          `The dbopt schema is at version ${current}, newer than this release knows (${newest}): upgrade dbopt instead of running an older version against it`,
        );
      }
      const applied: number[] = [];
      for (const migration of migrations) {
        if (done.has(migration.version)) continue;
        options.onProgress?.(`applying migration ${migration.version}: ${migration.name}`);
        await applyMigration(session, migration);
        applied.push(migration.version);
      }
      return { applied, version: Math.max(current, ...applied) };
    } finally {
      await session.query(SQL_UNLOCK, [MIGRATION_LOCK_KEY]).catch((err: unknown) => {
        // Losing the session also drops the lock; the session is destroyed below.
        broken = err instanceof Error ? err : new Error(String(err));
      });
    }
  } catch (err) {
    broken ??= err instanceof Error ? err : new Error(String(err));
    throw err;
  } finally {
    session.release(broken);
  }
};

const applyMigration = async (session: MigrationSession, migration: Migration): Promise<void> => {
  try {
    await session.query('BEGIN');
    await session.query(migration.sql);
    await session.query(SQL_RECORD_VERSION, [migration.version, migration.name]);
    await session.query('COMMIT');
  } catch (err) {
    // The migration error below is what the caller needs; a failed ROLLBACK means the
    // session is gone, and the release in migrateRepository destroys it.
    await session.query('ROLLBACK').catch(() => undefined);
    throw new RepositoryError(
      'MIGRATION_FAILED',
      `Repository migration ${migration.version} (${migration.name}) failed: ${(err as Error).message}. The schema stays at the previous version; fix the cause (often missing CREATE privilege on the database) and run "dbopt migrate" again`,
      { cause: err },
    );
  }
};
