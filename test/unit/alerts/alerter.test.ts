import {
  AuthorizationErrorException,
  InternalErrorException,
  PublishCommand,
  SNSClient,
  ThrottledException,
} from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type AlertCondition,
  AlertError,
  type AlerterDeps,
  type AlertState,
  createAlerter,
  createMemoryAlertStateStore,
} from '#shared/alerts';

const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:dbopt-alerts';
const T0 = new Date('2026-11-27T10:00:00.000Z');
const MINUTE_MS = 60_000;
const COOLDOWN_MS = 30 * MINUTE_MS;

const connections = (
  severity: AlertCondition['severity'],
  summary = 'Connections at 92% of max_connections',
): AlertCondition => ({
  kind: 'connections',
  severity,
  summary,
  recommendation: 'put RDS Proxy in front or lower application pool sizes',
  details: { value: 0.92, thresholds: { warning: 0.75, degraded: 0.85, critical: 0.95 } },
});

const unreachable: AlertCondition = {
  kind: 'unreachable',
  severity: 'CRITICAL',
  summary: 'Target unreachable: connect ECONNREFUSED',
};

const attr = (value: string) => ({ DataType: 'String', StringValue: value });

const snsMock = mockClient(SNSClient);

/** A clock the test moves, a recording sleep and logger, an in-memory store. */
const setup = (overrides: Partial<AlerterDeps> = {}) => {
  let nowMs = T0.getTime();
  const sleeps: number[] = [];
  const logs: { level: string; message: string }[] = [];
  const log = (level: string) => (message: string) => void logs.push({ level, message });
  const store = createMemoryAlertStateStore();
  const alerter = createAlerter({
    sns: new SNSClient({ region: 'eu-west-1' }),
    topicArn: TOPIC,
    store,
    cooldownMs: COOLDOWN_MS,
    retries: 2,
    logger: { info: log('info'), warn: log('warn'), error: log('error') },
    now: () => new Date(nowMs),
    sleep: async (ms) => void sleeps.push(ms),
    random: () => 0.5,
    ...overrides,
  });
  return {
    alerter,
    store,
    sleeps,
    logs,
    advance: (ms: number) => {
      nowMs += ms;
    },
    published: () => snsMock.commandCalls(PublishCommand).map((call) => call.args[0].input),
  };
};

beforeEach(() => {
  snsMock.reset();
  snsMock.on(PublishCommand).resolves({ MessageId: 'msg-1' });
});

afterEach(() => {
  snsMock.reset();
});

describe('createAlerter().reconcile', () => {
  it('publishes a new condition as "opened" with the exact Publish input and stores it', async () => {
    // Prepare
    const { alerter, store, published } = setup();
    // Act
    const outcomes = await alerter.reconcile('primary', [connections('DEGRADED')]);
    // Assess
    expect(published()).toEqual([
      {
        TopicArn: TOPIC,
        Subject: '[dbopt] DEGRADED on primary: Connections at 92% of max_connections',
        Message: [
          'DEGRADED on primary: Connections at 92% of max_connections',
          '',
          'What:      connections: Connections at 92% of max_connections',
          'Where:     target primary',
          'Severity:  DEGRADED',
          'Event:     opened (first notification)',
          'When:      2026-11-27T10:00:00.000Z (open since 2026-11-27T10:00:00.000Z, 0s)',
          '',
          'Recommendation:',
          '  put RDS Proxy in front or lower application pool sizes',
          '',
          'Details:',
          '  value: 0.92',
          '  thresholds: {"warning":0.75,"degraded":0.85,"critical":0.95}',
          '',
          '-- dbopt alert for (primary, connections)',
        ].join('\n'),
        MessageAttributes: {
          severity: attr('DEGRADED'),
          target: attr('primary'),
          kind: attr('connections'),
          event: attr('opened'),
        },
      },
    ]);
    expect(outcomes).toEqual([
      expect.objectContaining({
        target: 'primary',
        kind: 'connections',
        event: 'opened',
        severity: 'DEGRADED',
        delivery: 'sns',
        messageId: 'msg-1',
        attempts: 1,
      }),
    ]);
    expect(outcomes[0]?.error).toBeUndefined();
    expect(store.states()).toEqual<AlertState[]>([
      {
        target: 'primary',
        kind: 'connections',
        severity: 'DEGRADED',
        openedAt: T0,
        lastSentAt: T0,
        summary: 'Connections at 92% of max_connections',
      },
    ]);
  });

  it('suppresses the same condition within the cooldown and publishes nothing', async () => {
    // Prepare
    const { alerter, store, published, advance } = setup();
    await alerter.reconcile('primary', [connections('DEGRADED')]);
    const before = store.states();
    advance(COOLDOWN_MS - 1);
    // Act
    const outcomes = await alerter.reconcile('primary', [connections('DEGRADED')]);
    // Assess
    expect(published()).toHaveLength(1);
    expect(outcomes).toEqual([
      expect.objectContaining({ event: 'suppressed', delivery: 'none', attempts: 0 }),
    ]);
    expect(store.states()).toEqual(before);
  });

  it('re-notifies with a "still" reminder once the cooldown has passed', async () => {
    // Prepare
    const { alerter, store, published, advance } = setup();
    await alerter.reconcile('primary', [connections('DEGRADED')]);
    advance(COOLDOWN_MS);
    // Act
    const outcomes = await alerter.reconcile('primary', [connections('DEGRADED')]);
    // Assess
    const reminder = published()[1];
    expect(reminder?.Subject).toBe(
      '[dbopt] Still DEGRADED on primary: Connections at 92% of max_connections',
    );
    expect(reminder?.MessageAttributes?.event).toEqual(attr('reminder'));
    expect(reminder?.Message).toContain(
      'When:      2026-11-27T10:30:00.000Z (open since 2026-11-27T10:00:00.000Z, 30m)',
    );
    expect(outcomes[0]).toMatchObject({ event: 'reminder', openedAt: T0 });
    expect(store.states()[0]).toMatchObject({
      openedAt: T0,
      lastSentAt: new Date(T0.getTime() + COOLDOWN_MS),
    });
  });

  it.each<[AlertCondition['severity'], AlertCondition['severity']]>([
    ['WARNING', 'DEGRADED'],
    ['DEGRADED', 'CRITICAL'],
    ['WARNING', 'CRITICAL'],
  ])('escalates %s → %s at once, regardless of the cooldown', async (from, to) => {
    // Prepare
    const { alerter, store, published, advance } = setup();
    await alerter.reconcile('primary', [connections(from, 'Connections at 80%')]);
    advance(MINUTE_MS);
    // Act
    const outcomes = await alerter.reconcile('primary', [connections(to, 'Connections at 97%')]);
    // Assess
    expect(published()).toHaveLength(2);
    expect(published()[1]).toMatchObject({
      Subject: `[dbopt] ${to} (was ${from}) on primary: Connections at 97%`,
      MessageAttributes: {
        severity: attr(to),
        target: attr('primary'),
        kind: attr('connections'),
        event: attr('escalated'),
      },
    });
    expect(published()[1]?.Message).toContain(`Severity:  ${to} (was ${from})`);
    expect(outcomes[0]).toMatchObject({ event: 'escalated', severity: to, previousSeverity: from });
    expect(store.states()[0]).toMatchObject({
      severity: to,
      openedAt: T0,
      lastSentAt: new Date(T0.getTime() + MINUTE_MS),
      summary: 'Connections at 97%',
    });
  });

  it('does not re-escalate to an already announced severity when the condition flaps within the cooldown', async () => {
    // Prepare
    const { alerter, store, published, advance } = setup();
    await alerter.reconcile('primary', [connections('CRITICAL')]);
    const announced = store.states();
    // Act: CRITICAL → WARNING → CRITICAL → WARNING → CRITICAL, one minute apart
    const outcomes = [];
    for (const severity of ['WARNING', 'CRITICAL', 'WARNING', 'CRITICAL'] as const) {
      advance(MINUTE_MS);
      outcomes.push(...(await alerter.reconcile('primary', [connections(severity)])));
    }
    // Assess
    expect(outcomes.map((o) => o.event)).toEqual([
      'suppressed',
      'suppressed',
      'suppressed',
      'suppressed',
    ]);
    expect(published().map((input) => input.MessageAttributes?.event?.StringValue)).toEqual([
      'opened',
    ]);
    expect(store.states()).toEqual(announced);
  });

  it('escalates after a drop when the severity rises above the one announced', async () => {
    // Prepare
    const { alerter, published, advance } = setup();
    await alerter.reconcile('primary', [connections('DEGRADED')]);
    advance(MINUTE_MS);
    await alerter.reconcile('primary', [connections('WARNING')]);
    advance(MINUTE_MS);
    // Act
    const raised = await alerter.reconcile('primary', [connections('CRITICAL')]);
    // Assess
    expect(raised[0]).toMatchObject({ event: 'escalated', previousSeverity: 'DEGRADED' });
    expect(published().map((input) => input.MessageAttributes?.event?.StringValue)).toEqual([
      'opened',
      'escalated',
    ]);
  });

  it('reminds at the lower severity after the cooldown and says it went down', async () => {
    // Prepare
    const { alerter, store, published, advance } = setup();
    await alerter.reconcile('primary', [connections('CRITICAL')]);
    advance(COOLDOWN_MS);
    // Act
    const outcomes = await alerter.reconcile('primary', [connections('WARNING')]);
    // Assess
    expect(published()[1]).toMatchObject({
      Subject:
        '[dbopt] WARNING (down from CRITICAL) on primary: Connections at 92% of max_connections',
      MessageAttributes: expect.objectContaining({
        severity: attr('WARNING'),
        event: attr('reminder'),
      }),
    });
    expect(outcomes[0]).toMatchObject({ event: 'reminder', previousSeverity: 'CRITICAL' });
    expect(store.states()[0]).toMatchObject({ severity: 'WARNING' });
  });

  it('publishes "resolved" for a stored alert whose kind is no longer active and forgets it', async () => {
    // Prepare
    const { alerter, store, published, advance } = setup();
    await alerter.reconcile('primary', [connections('DEGRADED')]);
    advance(42 * MINUTE_MS);
    // Act
    const outcomes = await alerter.reconcile('primary', []);
    // Assess
    expect(published()[1]).toEqual({
      TopicArn: TOPIC,
      Subject: '[dbopt] RESOLVED on primary: connections is back within thresholds',
      Message: [
        'RESOLVED on primary: connections is back within thresholds',
        '',
        'What:      connections: Connections at 92% of max_connections',
        'Where:     target primary',
        'Severity:  DEGRADED while open, now cleared',
        'Event:     resolved (the condition cleared)',
        'When:      2026-11-27T10:42:00.000Z (open since 2026-11-27T10:00:00.000Z, 42m)',
        '',
        '-- dbopt alert for (primary, connections)',
      ].join('\n'),
      MessageAttributes: {
        severity: attr('DEGRADED'),
        target: attr('primary'),
        kind: attr('connections'),
        event: attr('resolved'),
      },
    });
    expect(outcomes).toEqual([expect.objectContaining({ event: 'resolved', delivery: 'sns' })]);
    expect(store.states()).toEqual([]);
  });

  it('leaves absent kinds open on a partial run (target unreachable)', async () => {
    // Prepare
    const { alerter, store, published, advance } = setup();
    await alerter.reconcile('primary', [connections('DEGRADED')]);
    advance(MINUTE_MS);
    // Act
    const outcomes = await alerter.reconcile('primary', [unreachable], { partial: true });
    // Assess
    expect(outcomes.map((o) => [o.kind, o.event])).toEqual([['unreachable', 'opened']]);
    expect(published().map((input) => input.MessageAttributes?.event?.StringValue)).toEqual([
      'opened',
      'opened',
    ]);
    expect(store.states().map((s) => s.kind)).toEqual(['connections', 'unreachable']);
  });

  it('neither resolves nor reminds an open alert whose kind could not be evaluated (unknownKinds)', async () => {
    // Prepare
    const { alerter, store, published, advance } = setup();
    await alerter.reconcile('primary', [connections('DEGRADED')]);
    const before = store.states();
    advance(COOLDOWN_MS);
    // Act
    const outcomes = await alerter.reconcile('primary', [], { unknownKinds: ['connections'] });
    // Assess
    expect(outcomes).toEqual([]);
    expect(published()).toHaveLength(1);
    expect(store.states()).toEqual(before);
  });

  it('resolves "unreachable" on the next full run once the target answers', async () => {
    // Prepare
    const { alerter, store, advance } = setup();
    await alerter.reconcile('primary', [unreachable], { partial: true });
    advance(MINUTE_MS);
    // Act
    const outcomes = await alerter.reconcile('primary', []);
    // Assess
    expect(outcomes.map((o) => [o.kind, o.event])).toEqual([['unreachable', 'resolved']]);
    expect(store.states()).toEqual([]);
  });

  it('keeps targets apart: the same kind on another target is a separate alert', async () => {
    // Prepare
    const { alerter, store } = setup();
    await alerter.reconcile('primary', [connections('DEGRADED')]);
    // Act
    const outcomes = await alerter.reconcile('shard-1', [connections('DEGRADED')]);
    const primaryAgain = await alerter.reconcile('primary', [connections('DEGRADED')]);
    // Assess
    expect(outcomes[0]).toMatchObject({ target: 'shard-1', event: 'opened' });
    expect(primaryAgain[0]).toMatchObject({ target: 'primary', event: 'suppressed' });
    expect(store.states()).toHaveLength(2);
  });

  it('retries a throttled publish with back-off and succeeds', async () => {
    // Prepare
    snsMock
      .on(PublishCommand)
      .rejectsOnce(
        new ThrottledException({ message: 'Rate exceeded', $metadata: { httpStatusCode: 400 } }),
      )
      .resolves({ MessageId: 'msg-2' });
    const { alerter, store, published, sleeps } = setup();
    // Act
    const outcomes = await alerter.reconcile('primary', [connections('DEGRADED')]);
    // Assess
    expect(published()).toHaveLength(2);
    expect(published()[1]).toEqual(published()[0]);
    expect(sleeps).toEqual([150]);
    expect(outcomes[0]).toMatchObject({ event: 'opened', attempts: 2, messageId: 'msg-2' });
    expect(outcomes[0]?.error).toBeUndefined();
    expect(store.states()).toHaveLength(1);
  });

  it('gives up after the retries without throwing, saves nothing, and publishes on the next run', async () => {
    // Prepare
    snsMock
      .on(PublishCommand)
      .rejects(new InternalErrorException({ message: 'boom', $metadata: { httpStatusCode: 500 } }));
    const { alerter, store, published, sleeps, logs, advance } = setup();
    // Act
    const failed = await alerter.reconcile('primary', [connections('DEGRADED')]);
    const statesAfterFailure = store.states();
    snsMock.reset();
    snsMock.on(PublishCommand).resolves({ MessageId: 'msg-3' });
    advance(MINUTE_MS);
    const next = await alerter.reconcile('primary', [connections('DEGRADED')]);
    // Assess
    expect(failed[0]).toMatchObject({ event: 'opened', delivery: 'none', attempts: 3 });
    expect(failed[0]?.error).toBeInstanceOf(AlertError);
    expect(failed[0]?.error).toMatchObject({ code: 'ALERT_PUBLISH_FAILED' });
    expect(sleeps).toEqual([150, 300]);
    expect(statesAfterFailure).toEqual([]);
    expect(logs.some((l) => l.level === 'error')).toBe(true);
    expect(next[0]).toMatchObject({ event: 'opened', delivery: 'sns', messageId: 'msg-3' });
    expect(published()).toHaveLength(1);
    expect(store.states()).toHaveLength(1);
  });

  it('does not retry errors that another attempt cannot fix (authorization)', async () => {
    // Prepare
    snsMock.on(PublishCommand).rejects(
      new AuthorizationErrorException({
        message: 'not authorized to perform SNS:Publish',
        $metadata: { httpStatusCode: 403 },
      }),
    );
    const { alerter, sleeps, published } = setup();
    // Act
    const outcomes = await alerter.reconcile('primary', [connections('DEGRADED')]);
    // Assess
    expect(published()).toHaveLength(1);
    expect(sleeps).toEqual([]);
    expect(outcomes[0]?.error?.message).toMatch(/check the topic ARN and the publish permission/);
  });

  it('retries network errors (ECONNRESET)', async () => {
    // Prepare
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    snsMock.on(PublishCommand).rejectsOnce(reset).resolves({ MessageId: 'msg-4' });
    const { alerter } = setup();
    // Act
    const outcomes = await alerter.reconcile('primary', [connections('DEGRADED')]);
    // Assess
    expect(outcomes[0]).toMatchObject({ attempts: 2, messageId: 'msg-4' });
  });

  it('keeps the alert open when "resolved" cannot be published, and resolves it next run', async () => {
    // Prepare
    const { alerter, store, advance } = setup();
    await alerter.reconcile('primary', [connections('DEGRADED')]);
    snsMock.reset();
    snsMock
      .on(PublishCommand)
      .rejects(new InternalErrorException({ message: 'boom', $metadata: { httpStatusCode: 500 } }));
    advance(MINUTE_MS);
    // Act
    const failed = await alerter.reconcile('primary', []);
    const statesAfterFailure = store.states();
    snsMock.reset();
    snsMock.on(PublishCommand).resolves({ MessageId: 'msg-5' });
    const next = await alerter.reconcile('primary', []);
    // Assess
    expect(failed[0]).toMatchObject({ event: 'resolved', delivery: 'none' });
    expect(statesAfterFailure).toHaveLength(1);
    expect(next[0]).toMatchObject({ event: 'resolved', delivery: 'sns' });
    expect(store.states()).toEqual([]);
  });

  it('without a topic publishes nothing, logs the outcome and still de-duplicates', async () => {
    // Prepare
    const { alerter, logs, published } = setup({ topicArn: undefined });
    // Act
    const first = await alerter.reconcile('primary', [connections('DEGRADED')]);
    const second = await alerter.reconcile('primary', [connections('DEGRADED')]);
    // Assess
    expect(published()).toEqual([]);
    expect(first[0]).toMatchObject({ event: 'opened', delivery: 'log', attempts: 0 });
    expect(second[0]).toMatchObject({ event: 'suppressed' });
    expect(logs).toEqual([
      {
        level: 'info',
        message:
          '2026-11-27T10:00:00.000Z DEGRADED OPENED primary/connections: Connections at 92% of max_connections',
      },
    ]);
  });

  it('keeps the worst condition when one kind is reported twice', async () => {
    // Prepare
    const { alerter, published } = setup();
    // Act
    const outcomes = await alerter.reconcile('primary', [
      connections('WARNING'),
      connections('CRITICAL'),
      connections('DEGRADED'),
    ]);
    // Assess
    expect(outcomes).toHaveLength(1);
    expect(published()[0]?.MessageAttributes?.severity).toEqual(attr('CRITICAL'));
  });

  it('rejects when the open alerts cannot be read, publishing nothing', async () => {
    // Prepare
    const store = createMemoryAlertStateStore();
    store.listAlertStates = async () => {
      throw new Error('connection refused');
    };
    const { alerter, published } = setup({ store });
    // Act
    const result = alerter.reconcile('primary', [connections('DEGRADED')]);
    // Assess
    await expect(result).rejects.toMatchObject({ code: 'ALERT_STATE_READ_FAILED' });
    expect(published()).toEqual([]);
  });

  it('reports a state write that fails after the publish as an error on the outcome', async () => {
    // Prepare
    const store = createMemoryAlertStateStore();
    store.saveAlertState = async () => {
      throw new Error('disk full');
    };
    const { alerter } = setup({ store });
    // Act
    const outcomes = await alerter.reconcile('primary', [connections('DEGRADED')]);
    // Assess
    expect(outcomes[0]).toMatchObject({ delivery: 'sns', messageId: 'msg-1' });
    expect(outcomes[0]?.error).toMatchObject({ code: 'ALERT_STATE_WRITE_FAILED' });
  });

  it.each<[string, string, AlertCondition[]]>([
    ['an empty target', ' ', [connections('DEGRADED')]],
    ['an empty kind', 'primary', [{ ...connections('DEGRADED'), kind: '' }]],
    [
      'an unknown severity',
      'primary',
      [{ ...connections('DEGRADED'), severity: 'PANIC' as AlertCondition['severity'] }],
    ],
  ])('rejects %s with ALERT_INVALID', async (_name, target, active) => {
    // Prepare
    const { alerter, published } = setup();
    // Act
    const result = alerter.reconcile(target, active);
    // Assess
    await expect(result).rejects.toMatchObject({ code: 'ALERT_INVALID' });
    expect(published()).toEqual([]);
  });
});

describe('createAlerter', () => {
  it('refuses a topic without an SNS client', () => {
    // Act
    const create = () =>
      createAlerter({
        topicArn: TOPIC,
        store: createMemoryAlertStateStore(),
        cooldownMs: COOLDOWN_MS,
        logger: { info: () => undefined, warn: () => undefined, error: () => undefined },
      });
    // Assess
    expect(create).toThrow(AlertError);
  });
});
