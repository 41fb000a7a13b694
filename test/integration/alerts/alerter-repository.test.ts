import { PublishCommand, SNSClient, ThrottledException } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type AlertCondition, createAlerter } from '#shared/alerts';
import { createRepository, migrateRepository, type Repository } from '#shared/repository';
import { recreateDatabase } from '../support/databases.ts';

const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:dbopt-alerts';
const COOLDOWN_MS = 30 * 60_000;
const T0_MS = Date.UTC(2026, 10, 27, 10, 0, 0, 123);
const logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

const condition = (kind: string, severity: AlertCondition['severity']): AlertCondition => ({
  kind,
  severity,
  summary: `${kind} is ${severity.toLowerCase()}`,
});

const snsMock = mockClient(SNSClient);
const events = () =>
  snsMock
    .commandCalls(PublishCommand)
    .map((call) => [
      call.args[0].input.MessageAttributes?.target?.StringValue,
      call.args[0].input.MessageAttributes?.kind?.StringValue,
      call.args[0].input.MessageAttributes?.event?.StringValue,
    ]);

describe('alerter on the real repository (dbopt.alert_state)', () => {
  let pool: pg.Pool;
  let repository: Repository;
  let nowMs = T0_MS;

  const alerter = () =>
    createAlerter({
      sns: new SNSClient({ region: 'eu-west-1' }),
      topicArn: TOPIC,
      store: repository,
      cooldownMs: COOLDOWN_MS,
      retries: 1,
      logger,
      now: () => new Date(nowMs),
      sleep: async () => undefined,
    });

  beforeAll(async () => {
    pool = new pg.Pool({
      connectionString: await recreateDatabase('dbopt_it_alerts_repo'),
      max: 2,
    });
    await migrateRepository(pool);
    repository = createRepository(pool);
  });

  afterAll(async () => {
    snsMock.restore();
    await pool?.end();
  });

  beforeEach(async () => {
    snsMock.reset();
    snsMock.on(PublishCommand).resolves({ MessageId: 'm' });
    await pool.query('DELETE FROM dbopt.alert_state');
    nowMs = T0_MS;
  });

  it('opens, suppresses, reminds, escalates and resolves across separate alerter instances', async () => {
    // Act: every run uses a fresh alerter, as each Lambda invocation would; only the
    // repository remembers
    await alerter().reconcile('primary', [condition('connections', 'WARNING')]);
    const stored = await repository.listAlertStates('primary');
    nowMs += 60_000;
    const suppressed = await alerter().reconcile('primary', [condition('connections', 'WARNING')]);
    nowMs += COOLDOWN_MS;
    const reminder = await alerter().reconcile('primary', [condition('connections', 'WARNING')]);
    nowMs += 60_000;
    const escalated = await alerter().reconcile('primary', [condition('connections', 'CRITICAL')]);
    nowMs += 60_000;
    const resolved = await alerter().reconcile('primary', []);
    // Assess
    expect(stored).toEqual([
      {
        target: 'primary',
        kind: 'connections',
        severity: 'WARNING',
        openedAt: new Date(T0_MS),
        lastSentAt: new Date(T0_MS),
        summary: 'connections is warning',
      },
    ]);
    expect([suppressed, reminder, escalated, resolved].map((o) => o[0]?.event)).toEqual([
      'suppressed',
      'reminder',
      'escalated',
      'resolved',
    ]);
    expect(escalated[0]?.openedAt).toEqual(new Date(T0_MS));
    expect(events()).toEqual([
      ['primary', 'connections', 'opened'],
      ['primary', 'connections', 'reminder'],
      ['primary', 'connections', 'escalated'],
      ['primary', 'connections', 'resolved'],
    ]);
    expect(await repository.listAlertStates('primary')).toEqual([]);
  });

  it('stores nothing when the publish fails, and publishes on the next run', async () => {
    // Prepare
    snsMock
      .on(PublishCommand)
      .rejects(new ThrottledException({ message: 'Rate exceeded', $metadata: {} }));
    // Act
    const failed = await alerter().reconcile('shard-1', [condition('lock_waits', 'DEGRADED')]);
    const afterFailure = await repository.listAlertStates('shard-1');
    snsMock.reset();
    snsMock.on(PublishCommand).resolves({ MessageId: 'm' });
    const next = await alerter().reconcile('shard-1', [condition('lock_waits', 'DEGRADED')]);
    // Assess
    expect(failed[0]).toMatchObject({ event: 'opened', attempts: 2, delivery: 'none' });
    expect(failed[0]?.error).toMatchObject({ code: 'ALERT_PUBLISH_FAILED' });
    expect(afterFailure).toEqual([]);
    expect(next[0]).toMatchObject({ event: 'opened', delivery: 'sns' });
    expect((await repository.listAlertStates('shard-1')).map((s) => s.kind)).toEqual([
      'lock_waits',
    ]);
  });

  it('keeps the open alerts of an unreachable target on a partial run, per target', async () => {
    // Prepare
    await alerter().reconcile('primary', [condition('dead_tuples', 'WARNING')]);
    await alerter().reconcile('shard-2', [condition('dead_tuples', 'WARNING')]);
    nowMs += 60_000;
    // Act
    await alerter().reconcile('primary', [condition('unreachable', 'CRITICAL')], {
      partial: true,
    });
    await alerter().reconcile('shard-2', []);
    // Assess
    const primary = await repository.listAlertStates('primary');
    expect(primary.map((s) => [s.kind, s.severity])).toEqual([
      ['dead_tuples', 'WARNING'],
      ['unreachable', 'CRITICAL'],
    ]);
    expect(await repository.listAlertStates('shard-2')).toEqual([]);
    expect(events().slice(2)).toEqual([
      ['primary', 'unreachable', 'opened'],
      ['shard-2', 'dead_tuples', 'resolved'],
    ]);
  });
});
