import { describe, expect, it } from 'vitest';
import {
  type AlertAnnouncement,
  AlertError,
  type AlertOutcome,
  buildPublishInput,
  formatAlertText,
  isRetryablePublishError,
  MAX_SUBJECT_CHARS,
} from '#shared/alerts';

const AT = new Date('2026-11-27T10:05:00.000Z');
const OPENED = new Date('2026-11-27T10:00:00.000Z');

const announcement = (overrides: Partial<AlertAnnouncement> = {}): AlertAnnouncement => ({
  target: 'primary',
  kind: 'connections',
  event: 'opened',
  severity: 'CRITICAL',
  summary: 'Connections at 96% of max_connections',
  openedAt: OPENED,
  at: AT,
  ...overrides,
});

const outcome = (overrides: Partial<AlertOutcome> = {}): AlertOutcome => ({
  target: 'primary',
  kind: 'connections',
  event: 'opened',
  severity: 'CRITICAL',
  summary: 'Connections at 96% of max_connections',
  openedAt: OPENED,
  at: AT,
  delivery: 'sns',
  attempts: 1,
  ...overrides,
});

describe('buildPublishInput', () => {
  it('keeps the Subject printable ASCII, on one line and under 100 characters', () => {
    // Prepare
    const a = announcement({
      target: 'café-shard-ü',
      summary: `Transaction open\nfor 2h — on pid 42 ${'x'.repeat(200)}`,
    });
    // Act
    const { Subject } = buildPublishInput('arn:aws:sns:eu-west-1:1:t', a);
    // Assess
    expect(Subject.length).toBeLessThanOrEqual(MAX_SUBJECT_CHARS);
    expect(Subject).toMatch(/^[\x20-\x7e]+$/);
    expect(
      Subject.startsWith('[dbopt] CRITICAL on cafe-shard-u: Transaction open for 2h ? on pid 42 x'),
    ).toBe(true);
    expect(Subject.endsWith('...')).toBe(true);
  });

  it('keeps the full text in the Message and cuts oversized details', () => {
    // Prepare
    const a = announcement({ details: { blob: 'y'.repeat(20_000) } });
    // Act
    const { Message } = buildPublishInput('arn:aws:sns:eu-west-1:1:t', a);
    // Assess
    expect(Message).toContain('What:      connections: Connections at 96% of max_connections');
    expect(Message.length).toBeLessThan(9_000);
    expect(Message).toContain('...');
  });

  it('renders dates in details as ISO text', () => {
    // Act
    const { Message } = buildPublishInput(
      'arn:aws:sns:eu-west-1:1:t',
      announcement({ details: { since: OPENED, pid: 42 } }),
    );
    // Assess
    expect(Message).toContain('  since: 2026-11-27T10:00:00.000Z\n  pid: 42');
  });
});

describe('formatAlertText', () => {
  it.each<[string, Partial<AlertOutcome>, string]>([
    [
      'an opened alert',
      {},
      '2026-11-27T10:05:00.000Z CRITICAL OPENED primary/connections: Connections at 96% of max_connections',
    ],
    [
      'an escalation',
      { event: 'escalated', previousSeverity: 'WARNING' },
      '2026-11-27T10:05:00.000Z CRITICAL<-WARNING ESCALATED primary/connections: Connections at 96% of max_connections',
    ],
    [
      'a resolution',
      { event: 'resolved' },
      '2026-11-27T10:05:00.000Z CRITICAL RESOLVED primary/connections: cleared (was: Connections at 96% of max_connections)',
    ],
    [
      'a suppressed repeat',
      { event: 'suppressed', delivery: 'none', previousSeverity: 'CRITICAL' },
      '2026-11-27T10:05:00.000Z CRITICAL suppressed primary/connections: Connections at 96% of max_connections [cooldown]',
    ],
    [
      'a failed publish',
      {
        delivery: 'none',
        error: new AlertError('ALERT_PUBLISH_FAILED', 'SNS Publish failed after 4 attempt(s)'),
      },
      '2026-11-27T10:05:00.000Z CRITICAL OPENED primary/connections: Connections at 96% of max_connections [NOT DELIVERED: SNS Publish failed after 4 attempt(s); retried next run]',
    ],
  ])('prints %s on one line', (_name, overrides, expected) => {
    // Act
    const text = formatAlertText(outcome(overrides));
    // Assess
    expect(text).toBe(expected);
  });
});

describe('isRetryablePublishError', () => {
  it.each<[string, unknown, boolean]>([
    [
      'ThrottledException',
      { name: 'ThrottledException', $metadata: { httpStatusCode: 400 } },
      true,
    ],
    ['KMS throttling', { name: 'KMSThrottlingException' }, true],
    ['an HTTP 500', { name: 'Whatever', $metadata: { httpStatusCode: 500 } }, true],
    ['an HTTP 429', { name: 'Whatever', $metadata: { httpStatusCode: 429 } }, true],
    ['an SDK-marked retryable error', { name: 'X', $retryable: {} }, true],
    ['a socket reset', Object.assign(new Error('reset'), { code: 'ECONNRESET' }), true],
    ['a client-side timeout', { name: 'TimeoutError' }, true],
    [
      'AuthorizationError (403)',
      { name: 'AuthorizationErrorException', $metadata: { httpStatusCode: 403 } },
      false,
    ],
    [
      'NotFound (no topic)',
      { name: 'NotFoundException', $metadata: { httpStatusCode: 404 } },
      false,
    ],
    [
      'InvalidParameter',
      { name: 'InvalidParameterException', $metadata: { httpStatusCode: 400 } },
      false,
    ],
    ['a plain Error', new Error('bug'), false],
    ['a non-object', 'boom', false],
  ])('%s → %s', (_name, err, expected) => {
    // Act
    const retryable = isRetryablePublishError(err);
    // Assess
    expect(retryable).toBe(expected);
  });
});
