import { CodedError } from '#shared/errors';

export type ApplyErrorCode =
  | 'APPLY_INVALID_DDL'
  | 'APPLY_INVALID_STATEMENT'
  | 'APPLY_INDEX_EXISTS'
  | 'APPLY_LOCK_TIMEOUT'
  | 'APPLY_BUILD_TIMEOUT'
  | 'APPLY_BUILD_FAILED'
  | 'APPLY_CLEANUP_FAILED';

/** Applying an index failed; the message says what was left behind and what to do. */
export class ApplyError extends CodedError<ApplyErrorCode> {}
