import type { PublishCommandInput } from '@aws-sdk/client-sns';
import { formatDuration } from '#shared/analysis';
import { type AlertEvent, type AlertOutcome, type AlertSeverity, severityRank } from './types.ts';

/** SNS: a Subject is printable ASCII without line breaks, fewer than 100 characters. */
export const MAX_SUBJECT_CHARS = 99;
/** Details beyond this many characters are cut (SNS allows 256 KB per message; mail stays readable). */
const MAX_DETAILS_CHARS = 8_000;
const SUBJECT_PREFIX = '[dbopt]';

/** The facts a message is built from: an outcome that is about to be published. */
export type AlertAnnouncement = Pick<
  AlertOutcome,
  | 'target'
  | 'kind'
  | 'severity'
  | 'previousSeverity'
  | 'summary'
  | 'recommendation'
  | 'openedAt'
  | 'at'
> & { event: AlertEvent; details?: Record<string, unknown> | undefined };

const COMBINING_MARKS = /\p{M}+/gu;
const NON_PRINTABLE_ASCII = /[^\x20-\x7e]+/g;
const WHITESPACE_RUNS = /\s+/g;

/** Printable ASCII only: accents dropped ("é" → "e"), anything else becomes "?". */
const toAsciiLine = (text: string): string =>
  text
    .normalize('NFKD')
    .replace(COMBINING_MARKS, '')
    .replace(WHITESPACE_RUNS, ' ')
    .replace(NON_PRINTABLE_ASCII, '?')
    .trim();

const truncate = (text: string, maxChars: number): string =>
  text.length <= maxChars ? text : `${text.slice(0, maxChars - 3)}...`;

const headline = (a: AlertAnnouncement): string => {
  switch (a.event) {
    case 'opened':
      return `${a.severity} on ${a.target}: ${a.summary}`;
    case 'escalated':
      return `${a.severity} (was ${a.previousSeverity ?? '?'}) on ${a.target}: ${a.summary}`;
    case 'reminder':
      return a.previousSeverity && severityRank(a.previousSeverity) > severityRank(a.severity)
        ? `${a.severity} (down from ${a.previousSeverity}) on ${a.target}: ${a.summary}`
        : `Still ${a.severity} on ${a.target}: ${a.summary}`;
    case 'resolved':
      return `RESOLVED on ${a.target}: ${a.kind} is back within thresholds`;
  }
};

/** The SNS Subject: ASCII, one line, at most {@link MAX_SUBJECT_CHARS} characters. */
export const formatSubject = (a: AlertAnnouncement): string =>
  truncate(toAsciiLine(`${SUBJECT_PREFIX} ${headline(a)}`), MAX_SUBJECT_CHARS);

const EVENT_EXPLANATIONS: Readonly<Record<AlertEvent, string>> = {
  opened: 'opened (first notification)',
  escalated: 'escalated (severity rose; sent regardless of the cooldown)',
  reminder: 'reminder (still open after the cooldown)',
  resolved: 'resolved (the condition cleared)',
};

const renderValue = (value: unknown): string => {
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
};

const renderDetails = (details: Record<string, unknown> | undefined): string[] => {
  const entries = Object.entries(details ?? {});
  if (entries.length === 0) return [];
  const text = entries.map(([key, value]) => `  ${key}: ${renderValue(value)}`).join('\n');
  return ['Details:', truncate(text, MAX_DETAILS_CHARS)];
};

const severityLine = (a: AlertAnnouncement): string => {
  if (a.event === 'resolved') return `${a.severity} while open, now cleared`;
  if (a.previousSeverity && a.previousSeverity !== a.severity)
    return `${a.severity} (was ${a.previousSeverity})`;
  return a.severity;
};

/**
 * The human-readable message body: what, where, severity, when, recommendation, details.
 * Plain text so e-mail, SMS-length previews and chat integrations all render it.
 */
export const formatMessage = (a: AlertAnnouncement): string => {
  const openSeconds = Math.max(0, (a.at.getTime() - a.openedAt.getTime()) / 1000);
  const lines = [
    headline(a),
    '',
    `What:      ${a.kind}: ${a.summary}`,
    `Where:     target ${a.target}`,
    `Severity:  ${severityLine(a)}`,
    `Event:     ${EVENT_EXPLANATIONS[a.event]}`,
    `When:      ${a.at.toISOString()} (open since ${a.openedAt.toISOString()}, ${formatDuration(openSeconds)})`,
  ];
  if (a.event !== 'resolved' && a.recommendation) {
    lines.push('', 'Recommendation:', `  ${a.recommendation}`);
  }
  const details = renderDetails(a.details);
  if (details.length > 0) lines.push('', ...details);
  lines.push('', `-- dbopt alert for (${a.target}, ${a.kind})`);
  return lines.join('\n');
};

const stringAttribute = (value: string) => ({ DataType: 'String', StringValue: value });

/**
 * The exact SNS Publish input for an announcement. The message attributes `severity`,
 * `target`, `kind` and `event` let subscriptions filter (FilterPolicyScope MessageAttributes).
 */
export const buildPublishInput = (
  topicArn: string,
  a: AlertAnnouncement,
): PublishCommandInput & { Subject: string; Message: string } => ({
  TopicArn: topicArn,
  Subject: formatSubject(a),
  Message: formatMessage(a),
  MessageAttributes: {
    severity: stringAttribute(a.severity),
    target: stringAttribute(a.target),
    kind: stringAttribute(a.kind),
    event: stringAttribute(a.event),
  },
});

const EVENT_WORDS: Readonly<Record<AlertOutcome['event'], string>> = {
  opened: 'OPENED',
  escalated: 'ESCALATED',
  reminder: 'REMINDER',
  resolved: 'RESOLVED',
  suppressed: 'suppressed',
};

const deliveryNote = (outcome: AlertOutcome): string => {
  if (outcome.error) return ` [NOT DELIVERED: ${outcome.error.message}; retried next run]`;
  if (outcome.event === 'suppressed') return ' [cooldown]';
  return '';
};

const severityText = (severity: AlertSeverity, previous: AlertSeverity | undefined): string =>
  previous && previous !== severity ? `${severity}<-${previous}` : severity;

/**
 * One terminal line for an outcome (local mode prints these).
 *
 * @example
 * formatAlertText(outcome)
 * // '2026-11-27T10:00:00.000Z CRITICAL<-WARNING ESCALATED primary/connections: Connections at 96% of max_connections'
 */
export const formatAlertText = (outcome: AlertOutcome): string => {
  const summary =
    outcome.event === 'resolved' ? `cleared (was: ${outcome.summary})` : outcome.summary;
  return (
    `${outcome.at.toISOString()} ${severityText(outcome.severity, outcome.previousSeverity)} ` +
    `${EVENT_WORDS[outcome.event]} ${outcome.target}/${outcome.kind}: ${summary}${deliveryNote(outcome)}`
  );
};
