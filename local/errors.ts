import { CodedError } from '#shared/errors';

/** Codes of the errors local mode raises itself (the CLI maps each to a message and exit 1). */
export type LocalErrorCode =
  | 'PORT_IN_USE'
  | 'EMBEDDED_POSTGRES_FAILED'
  | 'DEMO_CONFLICT'
  | 'DEMO_MISSING'
  | 'DEMO_LOAD_FAILED'
  | 'WORKLOAD_INVALID'
  | 'WORKLOAD_FAILED';

/** A local-mode failure with a message that tells the user what to do next. */
export class LocalModeError extends CodedError<LocalErrorCode> {}
