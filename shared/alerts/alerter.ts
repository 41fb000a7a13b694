import { setTimeout as delay } from 'node:timers/promises';
import { type MetricsSink, MetricUnit, noMetrics } from '#shared/metrics';
import { AlertError } from './errors.ts';
import { type AlertAnnouncement, buildPublishInput, formatAlertText } from './message.ts';
import { publishWithRetry, type SnsPublisher } from './publish.ts';
import {
  ALERT_SEVERITIES,
  type AlertCondition,
  type AlertEvent,
  type AlertLogger,
  type AlertOutcome,
  type AlertState,
  type AlertStateStore,
  severityRank,
} from './types.ts';

export interface AlerterDeps {
  /**
   * An `SNSClient` (construct it in the handler; `maxAttempts: 1` leaves retries to the
   * alerter). Needed only with a topic.
   */
  sns?: SnsPublisher | undefined;
  /** Unset: nothing is published, outcomes are logged (local mode prints them). */
  topicArn?: string | undefined;
  /** Open alerts between runs: the repository, or an in-memory store in tests. */
  store: AlertStateStore;
  /** How long an unchanged alert stays quiet before a reminder. */
  cooldownMs: number;
  /** Extra publish attempts for throttling, 5xx and network errors (default 3). */
  retries?: number;
  /** First retry delay in ms (default 200); doubles per attempt, capped at 5 s, half jittered. */
  retryBaseDelayMs?: number;
  logger: AlertLogger;
  /** Counts `AlertsPublished` and `AlertPublishFailures`. */
  metrics?: MetricsSink;
  now?: () => Date;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export interface ReconcileOptions {
  /**
   * Only some checks could run (e.g. the target was unreachable): alerts whose kind is absent
   * from `active` stay open instead of being resolved.
   */
  partial?: boolean;
  /**
   * Kinds whose check could not be evaluated this run (no value measured, e.g. no block reads
   * or no statements in the interval, a stats reset, history unavailable). Their open alerts
   * stay as they are: not measured is not "back within thresholds", and resolving would make
   * an alert flap resolved/opened on every idle interval.
   */
  unknownKinds?: readonly string[];
}

export interface Alerter {
  /**
   * Brings the open alerts of `target` in line with the conditions active now, publishing
   * opened / escalated / reminder / resolved messages. Resolves with one outcome per kind
   * touched; SNS and state-write failures are outcomes with `error`, never rejections.
   * Rejects only with AlertError `ALERT_INVALID` (bad input) or `ALERT_STATE_READ_FAILED`.
   */
  reconcile(
    target: string,
    active: readonly AlertCondition[],
    options?: ReconcileOptions,
  ): Promise<AlertOutcome[]>;
}

const DEFAULT_RETRIES = 3;
const DEFAULT_RETRY_BASE_DELAY_MS = 200;
const MAX_RETRY_DELAY_MS = 5_000;

/** What to do about one kind this run. */
interface Decision {
  event: AlertEvent | 'suppressed';
  /** State to store after a successful publish (or right away when nothing is published). */
  next: AlertState | undefined;
}

/**
 * Per (target, kind): new → opened; higher than the last announced severity → escalated at
 * once; same or lower within the cooldown → suppressed and nothing stored (the stored severity
 * stays the one announced, so a condition flapping across a level does not re-escalate to a
 * severity the subscribers were told about minutes ago); after the cooldown → reminder at the
 * current severity (which may be lower: "down from …").
 */
const decide = (
  prev: AlertState | undefined,
  condition: AlertCondition,
  target: string,
  now: Date,
  cooldownMs: number,
): Decision => {
  const fresh = { target, kind: condition.kind, severity: condition.severity };
  if (!prev) {
    return {
      event: 'opened',
      next: { ...fresh, openedAt: now, lastSentAt: now, summary: condition.summary },
    };
  }
  const sent = { ...prev, ...fresh, lastSentAt: now, summary: condition.summary };
  const change = severityRank(condition.severity) - severityRank(prev.severity);
  if (change > 0) return { event: 'escalated', next: sent };
  if (now.getTime() - prev.lastSentAt.getTime() >= cooldownMs) {
    return { event: 'reminder', next: sent };
  }
  return { event: 'suppressed', next: undefined };
};

const assertValid = (target: string, active: readonly AlertCondition[]): void => {
  const problems: string[] = [];
  if (typeof target !== 'string' || target.trim() === '') problems.push('target is empty');
  active.forEach((c, i) => {
    if (typeof c.kind !== 'string' || c.kind.trim() === '')
      problems.push(`active[${i}].kind is empty`);
    if (!ALERT_SEVERITIES.includes(c.severity))
      problems.push(`active[${i}].severity must be one of ${ALERT_SEVERITIES.join(', ')}`);
  });
  if (problems.length > 0) {
    throw new AlertError('ALERT_INVALID', `Cannot reconcile alerts: ${problems.join('; ')}`, {
      details: { target, problems },
    });
  }
};

/** One condition per kind: the most severe wins (first one on a tie). */
const worstPerKind = (active: readonly AlertCondition[]): Map<string, AlertCondition> => {
  const byKind = new Map<string, AlertCondition>();
  for (const condition of active) {
    const seen = byKind.get(condition.kind);
    if (!seen || severityRank(condition.severity) > severityRank(seen.severity)) {
      byKind.set(condition.kind, condition);
    }
  }
  return byKind;
};

/**
 * Builds the SNS alerter: de-duplication with a cooldown per (target, kind), immediate
 * escalation, "resolved" messages, bounded retries. State is written only after a successful
 * publish, so a failed publish is attempted again on the next run (at-least-once delivery;
 * a state write that fails after a publish can repeat that message once).
 *
 * @example
 * const alerter = createAlerter({ sns, topicArn: config.ALERT_TOPIC_ARN, store: repository,
 *   cooldownMs: config.ALERT_COOLDOWN_MS, retries: config.ALERT_PUBLISH_RETRIES, logger, metrics });
 * const report = evaluateHealth(sample, thresholds);
 * const outcomes = await alerter.reconcile(report.target, report.conditions);
 */
export const createAlerter = (deps: AlerterDeps): Alerter => {
  const sns = deps.sns;
  if (deps.topicArn && !sns) {
    throw new AlertError('ALERT_INVALID', 'createAlerter: a topicArn needs an sns client', {
      details: { topicArn: deps.topicArn },
    });
  }
  const now = deps.now ?? (() => new Date());
  const metrics = deps.metrics ?? noMetrics;
  const retryOptions = Object.freeze({
    retries: Math.max(0, deps.retries ?? DEFAULT_RETRIES),
    baseDelayMs: deps.retryBaseDelayMs ?? DEFAULT_RETRY_BASE_DELAY_MS,
    maxDelayMs: MAX_RETRY_DELAY_MS,
    sleep: deps.sleep ?? ((ms: number) => delay(ms)),
    random: deps.random ?? Math.random,
  });

  /** Publishes (or logs, without a topic); the outcome carries any failure. */
  const deliver = async (
    announcement: AlertAnnouncement,
  ): Promise<Pick<AlertOutcome, 'delivery' | 'messageId' | 'attempts' | 'error'>> => {
    if (!deps.topicArn || !sns) return { delivery: 'log', attempts: 0 };
    try {
      const input = buildPublishInput(deps.topicArn, announcement);
      const { messageId, attempts } = await publishWithRetry(sns, input, retryOptions);
      metrics.addMetric('AlertsPublished', MetricUnit.Count, 1);
      return messageId === undefined
        ? { delivery: 'sns', attempts }
        : { delivery: 'sns', messageId, attempts };
    } catch (err) {
      metrics.addMetric('AlertPublishFailures', MetricUnit.Count, 1);
      const error =
        err instanceof AlertError
          ? err
          : new AlertError('ALERT_PUBLISH_FAILED', `Could not publish the alert: ${err}`, {
              cause: err,
            });
      const attempts = Number(error.details.attempts ?? 1);
      return { delivery: 'none', attempts, error };
    }
  };

  const writeState = async (
    write: () => Promise<unknown>,
    target: string,
    kind: string,
  ): Promise<AlertError | undefined> => {
    try {
      await write();
      return undefined;
    } catch (err) {
      return new AlertError(
        'ALERT_STATE_WRITE_FAILED',
        `Could not store the alert state of (${target}, ${kind}); the message may repeat on the next run. Check the repository database`,
        { cause: err, details: { target, kind } },
      );
    }
  };

  const handleActive = async (
    target: string,
    condition: AlertCondition,
    prev: AlertState | undefined,
    at: Date,
  ): Promise<AlertOutcome> => {
    const { event, next } = decide(prev, condition, target, at, deps.cooldownMs);
    const base: AlertOutcome = {
      target,
      kind: condition.kind,
      event,
      severity: condition.severity,
      summary: condition.summary,
      openedAt: prev?.openedAt ?? at,
      at,
      delivery: 'none',
      attempts: 0,
      ...(prev ? { previousSeverity: prev.severity } : {}),
      ...(condition.recommendation ? { recommendation: condition.recommendation } : {}),
    };
    if (event !== 'suppressed') {
      const delivered = await deliver({ ...base, event, details: condition.details });
      Object.assign(base, delivered);
      if (delivered.error) return base;
    }
    if (next) {
      const error = await writeState(() => deps.store.saveAlertState(next), target, condition.kind);
      if (error) base.error = error;
    }
    return base;
  };

  const handleCleared = async (state: AlertState, at: Date): Promise<AlertOutcome> => {
    const outcome: AlertOutcome = {
      target: state.target,
      kind: state.kind,
      event: 'resolved',
      severity: state.severity,
      summary: state.summary,
      openedAt: state.openedAt,
      at,
      delivery: 'none',
      attempts: 0,
    };
    const delivered = await deliver({ ...outcome, event: 'resolved' });
    Object.assign(outcome, delivered);
    if (delivered.error) return outcome;
    const error = await writeState(
      () => deps.store.deleteAlertState(state.target, state.kind),
      state.target,
      state.kind,
    );
    if (error) outcome.error = error;
    return outcome;
  };

  const report = (outcome: AlertOutcome): void => {
    const fields = {
      target: outcome.target,
      kind: outcome.kind,
      event: outcome.event,
      severity: outcome.severity,
      delivery: outcome.delivery,
      attempts: outcome.attempts,
    };
    if (outcome.error) {
      deps.logger.error('alert not delivered or not stored', { ...fields, err: outcome.error });
    } else if (outcome.event !== 'suppressed') {
      deps.logger.info(formatAlertText(outcome), fields);
    }
  };

  const alerter: Alerter = {
    async reconcile(target, active, options = {}) {
      assertValid(target, active);
      const at = now();
      let states: readonly AlertState[];
      try {
        states = await deps.store.listAlertStates(target);
      } catch (err) {
        throw new AlertError(
          'ALERT_STATE_READ_FAILED',
          `Could not read the open alerts of ${target}; no alert was sent. Check the repository database`,
          { cause: err, details: { target } },
        );
      }
      const open = new Map(states.map((s) => [s.kind, s]));
      const wanted = worstPerKind(active);
      const work: Promise<AlertOutcome>[] = [];
      for (const condition of wanted.values()) {
        work.push(handleActive(target, condition, open.get(condition.kind), at));
      }
      if (!options.partial) {
        const unknown = new Set(options.unknownKinds ?? []);
        for (const state of states) {
          if (!wanted.has(state.kind) && !unknown.has(state.kind)) {
            work.push(handleCleared(state, at));
          }
        }
      }
      const outcomes = await Promise.all(work);
      for (const outcome of outcomes) report(outcome);
      return outcomes;
    },
  };
  return Object.freeze(alerter);
};
