/**
 * Alerts: health conditions → SNS messages, de-duplicated per (target, kind) with a cooldown,
 * escalated at once when the severity rises, and resolved when a condition clears. Messages
 * carry `severity`, `target`, `kind` and `event` as message attributes so subscriptions can
 * filter; the body is plain text for people.
 */
export { type Alerter, type AlerterDeps, createAlerter, type ReconcileOptions } from './alerter.ts';
export { AlertError } from './errors.ts';
export { createMemoryAlertStateStore } from './memory-store.ts';
export {
  type AlertAnnouncement,
  buildPublishInput,
  formatAlertText,
  MAX_SUBJECT_CHARS,
} from './message.ts';
export { isRetryablePublishError, type SnsPublisher } from './publish.ts';
export {
  ALERT_SEVERITIES,
  type AlertCondition,
  type AlertEvent,
  type AlertLogger,
  type AlertOutcome,
  type AlertSeverity,
  type AlertState,
  type AlertStateStore,
  severityRank,
} from './types.ts';
