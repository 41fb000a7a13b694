import { CodedError } from '#shared/errors';

export type RepositoryErrorCode = 'MIGRATION_FAILED' | 'REPOSITORY_NEWER' | 'PAYLOAD_INVALID';

/** A repository operation failed; `code` says which kind, `cause` carries the driver error. */
export class RepositoryError extends CodedError<RepositoryErrorCode> {}
