/**
 * dbopt's own state in the `dbopt` schema of the repository database (default: the primary):
 * counter snapshots, metric history, open alerts and advisor suggestions. Versioned,
 * idempotent migrations create it (`dbopt migrate`, or each Lambda on first use).
 */
export { RepositoryError, type RepositoryErrorCode } from './errors.ts';
export {
  type MigrateOptions,
  type MigrationConnector,
  type MigrationResult,
  type MigrationSession,
  migrateRepository,
} from './migrate.ts';
export { MIGRATIONS, type Migration, REPOSITORY_SCHEMA } from './migrations.ts';
export { repositoryDatabaseOptions } from './options.ts';
export {
  type AlertSeverity,
  type AlertState,
  createRepository,
  type NewSuggestion,
  type Repository,
  type StoredSnapshot,
  type Suggestion,
  type SuggestionFilter,
  type SuggestionKind,
  type SuggestionStatus,
} from './store.ts';
