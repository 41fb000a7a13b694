import { CodedError } from '#shared/errors';

/**
 * - `SNAPSHOT_INCOMPLETE`: a snapshot stored in parts lacks some, or mixes two saves (a save
 *   was interrupted); the next save replaces it;
 * - `REPOSITORY_OUTDATED`: a table of a newer migration is missing: run `dbopt migrate`.
 */
export type RepositoryErrorCode =
  | 'MIGRATION_FAILED'
  | 'REPOSITORY_NEWER'
  | 'PAYLOAD_INVALID'
  | 'SNAPSHOT_INCOMPLETE'
  | 'REPOSITORY_OUTDATED';

/** A repository operation failed; `code` says which kind, `cause` carries the driver error. */
export class RepositoryError extends CodedError<RepositoryErrorCode> {}
