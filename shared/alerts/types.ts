/** How bad a condition is; the order is WARNING < DEGRADED < CRITICAL. */
export type AlertSeverity = 'WARNING' | 'DEGRADED' | 'CRITICAL';

/** Severities from least to most severe. */
export const ALERT_SEVERITIES: readonly AlertSeverity[] = Object.freeze([
  'WARNING',
  'DEGRADED',
  'CRITICAL',
]);

/** Rank of a severity for comparisons (higher is worse). */
export const severityRank = (severity: AlertSeverity): number => ALERT_SEVERITIES.indexOf(severity);

/**
 * Something wrong with one target right now. `kind` identifies the condition for
 * de-duplication: one open alert per (target, kind).
 */
export interface AlertCondition {
  /** Stable identifier of the check, e.g. `connections`, `long_transaction`, `unreachable`. */
  kind: string;
  severity: AlertSeverity;
  /** One line saying what is wrong, with the number, e.g. "Connections at 92% of max_connections". */
  summary: string;
  /** What to do about it, in words; printed in the message body. */
  recommendation?: string;
  /** Facts for the message body (value, thresholds, pid, …); JSON-serialisable. */
  details?: Record<string, unknown>;
}

/** What the alerter remembers about one open alert (the repository's `AlertState`). */
export interface AlertState {
  target: string;
  kind: string;
  severity: AlertSeverity;
  openedAt: Date;
  lastSentAt: Date;
  summary: string;
}

/**
 * Where open alerts are kept between runs. The repository (`createRepository(db)`) satisfies
 * it; {@link createMemoryAlertStateStore} is the in-process variant for tests.
 */
export interface AlertStateStore {
  listAlertStates(target: string): Promise<readonly AlertState[]>;
  saveAlertState(state: AlertState): Promise<unknown>;
  deleteAlertState(target: string, kind: string): Promise<unknown>;
}

/** What an SNS message announces; also the `event` message attribute. */
export type AlertEvent = 'opened' | 'escalated' | 'reminder' | 'resolved';

/** What reconcile did for one (target, kind). */
export interface AlertOutcome {
  target: string;
  kind: string;
  /** The announcement, or `suppressed` when the cooldown held it back. */
  event: AlertEvent | 'suppressed';
  /** Severity now (for `resolved`: the severity the alert had while open). */
  severity: AlertSeverity;
  /** Stored severity before this run, when there was an open alert. */
  previousSeverity?: AlertSeverity;
  summary: string;
  recommendation?: string;
  /** When the alert was first opened. */
  openedAt: Date;
  /** When this run decided (the alerter's clock). */
  at: Date;
  /**
   * `sns`: published to the topic; `log`: no topic configured, logged only (local mode);
   * `none`: nothing was sent (suppressed or failed).
   */
  delivery: 'sns' | 'log' | 'none';
  /** SNS MessageId on success. */
  messageId?: string;
  /** Publish attempts made (0 when nothing had to be published). */
  attempts: number;
  /** Set when the publish or the state write failed; the alert is retried on the next run. */
  error?: Error;
}

/** The narrow logging surface the alerter needs (Powertools Logger satisfies it). */
export interface AlertLogger {
  info(message: string, ...extra: unknown[]): void;
  warn(message: string, ...extra: unknown[]): void;
  error(message: string, ...extra: unknown[]): void;
}
