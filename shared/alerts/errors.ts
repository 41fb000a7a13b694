import { CodedError } from '#shared/errors';

/**
 * An alert could not be delivered or remembered. Returned as data on an {@link AlertOutcome}
 * (publish and state-write failures) or thrown by `reconcile` when the open alerts cannot be
 * read at all (`ALERT_STATE_READ_FAILED`), since nothing could be decided without them.
 */
export class AlertError extends CodedError<
  'ALERT_PUBLISH_FAILED' | 'ALERT_STATE_READ_FAILED' | 'ALERT_STATE_WRITE_FAILED' | 'ALERT_INVALID'
> {}
