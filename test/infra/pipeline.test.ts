import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  COLLECT_METRICS_TIMEOUT,
  OPTIMIZER_BATCH_SIZE,
  VISIBILITY_TIMEOUT_FACTOR,
} from '../../infra/constructs/pipeline.ts';
import { FUNCTION_NAMES } from '../../infra/dbopt-stack.ts';
import { REPO_ROOT } from '../../infra/paths.ts';
import { buildTestApp } from './synth.ts';

/** A resource's properties, or none: keeps the lookups below free of optional chains. */
const propsOf = (
  r: { Properties?: Record<string, unknown> } | undefined,
): Record<string, unknown> => r?.Properties ?? {};

type Resource = { Type: string; Properties?: Record<string, unknown> };
type Resources = Record<string, Resource>;
type GetAtt = { 'Fn::GetAtt': [string, string] };
interface Statement {
  Action: string | string[];
  Resource: unknown;
  Effect: string;
}

let template: Template;
let resources: Resources;

const ofType = (type: string): [string, Resource][] =>
  Object.entries(resources).filter(([, r]) => r.Type === type);

const fn = (name: string): [string, Record<string, unknown>] => {
  const found = ofType('AWS::Lambda::Function').filter(([, r]) =>
    String(r.Properties?.Description).startsWith(`dbopt ${name}:`),
  );
  expect(found).toHaveLength(1);
  const [id, r] = found[0] ?? ['', { Type: '' }];
  return [id, r.Properties ?? {}];
};
const envOf = (name: string) =>
  (fn(name)[1].Environment as { Variables: Record<string, unknown> }).Variables;
const roleOf = (name: string) => (fn(name)[1].Role as GetAtt)['Fn::GetAtt'][0];

/** Every statement of a role: inline policies and attached AWS::IAM::Policy documents. */
const roleStatements = (roleId: string): Statement[] => {
  const inline = (resources[roleId]?.Properties?.Policies ?? []) as {
    PolicyDocument: { Statement: Statement[] };
  }[];
  const attached = ofType('AWS::IAM::Policy')
    .map(([, r]) => r.Properties ?? {})
    .filter((p) => (p.Roles as { Ref: string }[]).some((r) => r.Ref === roleId))
    .map((p) => p.PolicyDocument as { Statement: Statement[] });
  return [...inline.map((p) => p.PolicyDocument), ...attached].flatMap((d) => d.Statement);
};
const actionsOf = (roleId: string) =>
  roleStatements(roleId)
    .flatMap((s) => [s.Action].flat())
    .sort();

const queueId = (pattern: RegExp) => {
  const found = ofType('AWS::SQS::Queue').filter(([id]) => pattern.test(id));
  expect(found).toHaveLength(1);
  return found[0]?.[0] ?? '';
};

beforeAll(() => {
  // Prepare
  const { stack } = buildTestApp({
    context: { features: { autoApplyIndexes: true }, optimizerTimeoutSeconds: '90' },
  });
  // Act
  template = Template.fromStack(stack);
  resources = template.toJSON().Resources as Resources;
});

describe('every dbopt function', () => {
  it('is wired: each functions/<name> folder is deployed, and nothing else', () => {
    // Prepare
    const folders = readdirSync(join(REPO_ROOT, 'functions'), { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name)
      .sort();

    // Act
    const deployed = ofType('AWS::Lambda::Function').filter(([, r]) =>
      String(r.Properties?.Description).startsWith('dbopt '),
    );

    // Assess
    expect(folders).toEqual([...FUNCTION_NAMES].sort());
    expect(deployed).toHaveLength(FUNCTION_NAMES.length);
  });

  it.each(['query API', 'cache sweeper', 'collect-metrics', 'collect-slow-queries', 'optimize'])(
    '%s runs nodejs22.x on ARM64 with tracing, in the isolated subnets, logs kept 30 days',
    (name) => {
      const [, props] = fn(name);
      expect(props).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        TracingConfig: { Mode: 'Active' },
      });
      expect((props.VpcConfig as { SubnetIds: unknown[] }).SubnetIds).toHaveLength(2);
      const logGroup = (props.LoggingConfig as { LogGroup: { Ref: string } }).LogGroup.Ref;
      expect(resources[logGroup]?.Properties?.RetentionInDays).toBe(30);
    },
  );
});

describe('schedules', () => {
  it.each([
    ['collect-metrics', 'rate(1 minute)', 60],
    ['collect-slow-queries', 'rate(5 minutes)', 300],
  ])('start %s at %s, retried twice, then parked in the scheduler DLQ', (name, rate, age) => {
    // Prepare
    const [fnId] = fn(name);

    // Act
    const schedule = ofType('AWS::Scheduler::Schedule')
      .map(([, r]) => r.Properties ?? {})
      .find(
        (p) =>
          JSON.stringify((p.Target as { Arn: unknown }).Arn) ===
          JSON.stringify({ 'Fn::GetAtt': [fnId, 'Arn'] }),
      );

    // Assess
    expect(schedule).toMatchObject({
      ScheduleExpression: rate,
      State: 'ENABLED',
      FlexibleTimeWindow: { Mode: 'OFF' },
      Target: {
        RetryPolicy: { MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: age },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [queueId(/^PipelineScheduleDlq/), 'Arn'] } },
      },
    });
  });

  it('take their expressions from context', () => {
    const { stack } = buildTestApp({
      context: {
        schedules: { collectMetrics: 'rate(2 minutes)', collectSlowQueries: 'cron(0 * * * ? *)' },
      },
    });
    const expressions = Object.values(
      Template.fromStack(stack).findResources('AWS::Scheduler::Schedule'),
    ).map((s) => s.Properties.ScheduleExpression);
    expect(expressions).toEqual(expect.arrayContaining(['rate(2 minutes)', 'cron(0 * * * ? *)']));
  });

  it('assume a role that may start only the collectors and write only to the DLQ', () => {
    // Prepare
    const schedule = ofType('AWS::Scheduler::Schedule').find(([id]) =>
      id.startsWith('PipelineCollectMetrics'),
    );
    const roleId = (propsOf(schedule?.[1]).Target as { RoleArn: GetAtt }).RoleArn['Fn::GetAtt'][0];

    // Act
    const statements = roleStatements(roleId);

    // Assess
    expect(statements).toEqual([
      {
        Action: 'lambda:InvokeFunction',
        Effect: 'Allow',
        Resource: [
          { 'Fn::GetAtt': [fn('collect-metrics')[0], 'Arn'] },
          { 'Fn::GetAtt': [fn('collect-slow-queries')[0], 'Arn'] },
        ],
      },
      {
        Action: 'sqs:SendMessage',
        Effect: 'Allow',
        Resource: { 'Fn::GetAtt': [queueId(/^PipelineScheduleDlq/), 'Arn'] },
      },
    ]);
  });

  it('end each metrics run before the next one starts, without Lambda retries on top', () => {
    expect(fn('collect-metrics')[1].Timeout).toBe(COLLECT_METRICS_TIMEOUT.toSeconds());
    expect(COLLECT_METRICS_TIMEOUT.toSeconds()).toBeLessThan(60);
    for (const name of ['collect-metrics', 'collect-slow-queries']) {
      template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
        FunctionName: { Ref: fn(name)[0] },
        MaximumRetryAttempts: 0,
      });
    }
  });
});

describe('slow-query queue', () => {
  it('redrives to its DLQ after 3 receives, with a visibility timeout of 6× the optimizer timeout', () => {
    const queue = resources[queueId(/^PipelineSlowQueryQueue/)]?.Properties;
    expect(queue).toMatchObject({
      VisibilityTimeout: 90 * VISIBILITY_TIMEOUT_FACTOR,
      RedrivePolicy: {
        maxReceiveCount: 3,
        deadLetterTargetArn: { 'Fn::GetAtt': [queueId(/^PipelineSlowQueryDlq/), 'Arn'] },
      },
    });
    expect(fn('optimize')[1].Timeout).toBe(90);
  });

  it.each([/^PipelineSlowQueryQueue/, /^PipelineSlowQueryDlq/, /^PipelineScheduleDlq/])(
    '%s is encrypted and refuses plain HTTP',
    (pattern) => {
      // Prepare
      const id = queueId(pattern);

      // Act
      const policies = ofType('AWS::SQS::QueuePolicy')
        .map(([, r]) => r.Properties ?? {})
        .filter((p) => JSON.stringify(p.Queues).includes(`"${id}"`));

      // Assess
      expect(resources[id]?.Properties?.SqsManagedSseEnabled).toBe(true);
      expect(JSON.stringify(policies)).toContain('"aws:SecureTransport":"false"');
    },
  );

  it('feeds the optimizer in batches with per-message failure reports', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [queueId(/^PipelineSlowQueryQueue/), 'Arn'] },
      FunctionName: { Ref: fn('optimize')[0] },
      BatchSize: OPTIMIZER_BATCH_SIZE,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });

  it('is filled by the slow-query collector, named in its environment', () => {
    expect(envOf('collect-slow-queries')).toMatchObject({
      SLOW_QUERY_QUEUE_URL: { Ref: queueId(/^PipelineSlowQueryQueue/) },
      STATS_SOURCE: 'pg',
      DB_USER: 'dbopt_monitor',
    });
  });
});

describe('least privilege', () => {
  it('collect-metrics may publish to the alert topic and connect to the database, nothing more', () => {
    const actions = actionsOf(roleOf('collect-metrics'));
    expect([...new Set(actions)]).toEqual([
      'ec2:AssignPrivateIpAddresses',
      'ec2:CreateNetworkInterface',
      'ec2:DeleteNetworkInterface',
      'ec2:DescribeNetworkInterfaces',
      'ec2:DescribeSubnets',
      'ec2:UnassignPrivateIpAddresses',
      'kms:Decrypt',
      'kms:GenerateDataKey',
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      'rds-db:connect',
      'sns:Publish',
      'xray:PutTelemetryRecords',
      'xray:PutTraceSegments',
    ]);
    const publish = roleStatements(roleOf('collect-metrics')).find(
      (s) => s.Action === 'sns:Publish',
    );
    expect(publish?.Resource).toEqual({ Ref: expect.stringMatching(/^AlertsTopic/) });
  });

  it('collect-slow-queries may send to its queue only, and has no SNS or Data API rights', () => {
    const statements = roleStatements(roleOf('collect-slow-queries'));
    const actions = statements.flatMap((s) => [s.Action].flat());
    expect(actions).not.toContain('sns:Publish');
    expect(actions.some((a) => a.startsWith('rds-data:'))).toBe(false);
    const send = statements.filter((s) => [s.Action].flat().some((a) => a.startsWith('sqs:')));
    expect(send).toHaveLength(1);
    expect(send[0]?.Resource).toEqual({
      'Fn::GetAtt': [queueId(/^PipelineSlowQueryQueue/), 'Arn'],
    });
  });

  it('optimize may publish suggestions and consume its queue, and auto-apply follows the flag', () => {
    const actions = actionsOf(roleOf('optimize'));
    expect(actions).toEqual(
      expect.arrayContaining(['sns:Publish', 'sqs:ReceiveMessage', 'sqs:DeleteMessage']),
    );
    expect(actions).not.toContain('sqs:SendMessage');
    expect(envOf('optimize')).toMatchObject({
      ADVISOR_AUTO_APPLY: 'true',
      ALERT_TOPIC_ARN: { Ref: expect.stringMatching(/^AlertsTopic/) },
    });
  });

  it('with statsSource=data-api, the collectors may run statements on the primary cluster and read its secret only', () => {
    // Prepare
    const { stack } = buildTestApp({ context: { statsSource: 'data-api' } });
    const variant = Template.fromStack(stack).toJSON().Resources as Resources;
    const statementsOf = (roleId: string) =>
      Object.values(variant)
        .filter((r) => r.Type === 'AWS::IAM::Policy')
        .map((r) => r.Properties ?? {})
        .filter((p) => (p.Roles as { Ref: string }[]).some((r) => r.Ref === roleId))
        .flatMap((p) => (p.PolicyDocument as { Statement: Statement[] }).Statement);

    // Act
    const collector = Object.entries(variant).find(
      ([, r]) =>
        r.Type === 'AWS::Lambda::Function' &&
        String(r.Properties?.Description).startsWith('dbopt collect-slow-queries:'),
    )?.[1].Properties;
    const statements = statementsOf(
      (propsOf({ Properties: collector }).Role as GetAtt)['Fn::GetAtt'][0],
    );

    // Assess
    const execute = statements.filter((s) => s.Action === 'rds-data:ExecuteStatement');
    expect(execute).toHaveLength(1);
    expect(JSON.stringify(execute[0]?.Resource)).toMatch(
      /:cluster:.*"Ref":"DatabasePrimaryCluster/,
    );
    expect(statements).toContainEqual({
      Action: 'secretsmanager:GetSecretValue',
      Effect: 'Allow',
      Resource: { Ref: expect.stringMatching(/^DatabasePrimaryClusterSecretAttachment/) },
    });
    expect(
      (propsOf({ Properties: collector }).Environment as { Variables: Record<string, unknown> })
        .Variables,
    ).toMatchObject({
      STATS_SOURCE: 'data-api',
      DATA_API_DATABASE: 'postgres',
    });
  });
});
