import { CodedError } from '#shared/errors';

/**
 * A step of a freshness sweep failed. The sweep saves nothing after a failure, so the next
 * sweep diffs against the same previous snapshot and reports the same changes again.
 */
export class FreshnessError extends CodedError<
  | 'COUNTERS_READ_FAILED'
  | 'SNAPSHOT_LOAD_FAILED'
  | 'SNAPSHOT_INVALID'
  | 'SNAPSHOT_SAVE_FAILED'
  | 'VERSION_BUMP_FAILED'
> {}
