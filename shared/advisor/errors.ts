import { CodedError } from '#shared/errors';

/** Codes of the errors the advisor raises itself. */
export type AdvisorErrorCode =
  | 'WORKLOAD_INVALID'
  | 'WORKLOAD_EMPTY'
  | 'STAT_STATEMENTS_UNAVAILABLE'
  | 'ADVISOR_FAILED';

/** An advisor failure whose message says what to do. */
export class AdvisorError extends CodedError<AdvisorErrorCode> {}
