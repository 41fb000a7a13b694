import { CodedError } from '#shared/errors';

export type OptimizerErrorCode =
  | 'MESSAGE_INVALID'
  | 'UNKNOWN_TARGET'
  | 'OPTIMIZE_FAILED'
  | 'NO_TIME_LEFT';

/** The optimizer could not handle one slow-query message; the message says why. */
export class OptimizerError extends CodedError<OptimizerErrorCode> {}
