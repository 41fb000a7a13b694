import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from './synth.ts';

/** A resource's properties, or none: keeps the lookups below free of optional chains. */
const propsOf = (
  r: { Properties?: Record<string, unknown> } | undefined,
): Record<string, unknown> => r?.Properties ?? {};

type Resource = { Type: string; Properties?: Record<string, unknown>; DeletionPolicy?: string };
type Resources = Record<string, Resource>;
interface MetricStat {
  Metric: {
    MetricName: string;
    Namespace: string;
    Dimensions?: { Name: string; Value: unknown }[];
  };
  Stat: string;
}
interface AlarmProps {
  AlarmActions: unknown[];
  OKActions: unknown[];
  MetricName?: string;
  Namespace?: string;
  Metrics?: { Id: string; Expression?: string; MetricStat?: MetricStat }[];
  ThresholdMetricId?: string;
  ComparisonOperator: string;
}

let template: Template;
let resources: Resources;
let alarms: AlarmProps[];

const ofType = (type: string): [string, Resource][] =>
  Object.entries(resources).filter(([, r]) => r.Type === type);
const topicId = () => ofType('AWS::SNS::Topic')[0]?.[0] ?? '';
/** Metric names an alarm watches (plain metric or metric math inputs). */
const metricNamesOf = (alarm: AlarmProps): string[] =>
  alarm.MetricName
    ? [alarm.MetricName]
    : (alarm.Metrics ?? []).flatMap((m) => (m.MetricStat ? [m.MetricStat.Metric.MetricName] : []));

beforeAll(() => {
  // Prepare
  const { stack } = buildTestApp({
    context: {
      alertSubscriptions: JSON.stringify([
        { protocol: 'email', endpoint: 'oncall@example.com', severities: ['CRITICAL'] },
        { protocol: 'https', endpoint: 'https://hooks.example.com/dbopt' },
      ]),
      thresholds: { queryLatencyP99Ms: 750 },
    },
  });
  // Act
  template = Template.fromStack(stack);
  resources = template.toJSON().Resources as Resources;
  alarms = ofType('AWS::CloudWatch::Alarm').map(([, r]) => r.Properties as unknown as AlarmProps);
});

describe('alert topic', () => {
  it('is encrypted with a rotating customer managed key, kept on stack deletion', () => {
    const [keyId, key] = ofType('AWS::KMS::Key')[0] ?? ['', { Type: '' }];
    expect(key.Properties?.EnableKeyRotation).toBe(true);
    expect(key.DeletionPolicy).toBe('Retain');
    template.hasResourceProperties('AWS::SNS::Topic', {
      KmsMasterKeyId: { 'Fn::GetAtt': [keyId, 'Arn'] },
    });
  });

  it('lets CloudWatch alarms, RDS events and EventBridge use the key and publish, from this account only', () => {
    // Prepare
    const services = [
      'cloudwatch.amazonaws.com',
      'events.amazonaws.com',
      'events.rds.amazonaws.com',
    ];
    const [, key] = ofType('AWS::KMS::Key')[0] ?? ['', { Type: '' }];
    const keyStatements = (propsOf(key).KeyPolicy as { Statement: Record<string, unknown>[] })
      .Statement;
    const [, topicPolicy] = ofType('AWS::SNS::TopicPolicy')[0] ?? ['', { Type: '' }];
    const topicStatements = (
      propsOf(topicPolicy).PolicyDocument as { Statement: Record<string, unknown>[] }
    ).Statement;

    // Act
    const keyUse = keyStatements.find((s) => s.Sid === 'AllowAlertPublishers');
    const publish = topicStatements.find((s) => s.Sid === 'AllowAlertPublishers');

    // Assess
    for (const statement of [keyUse, publish]) {
      expect(statement?.Principal).toEqual({ Service: services });
      expect(statement?.Condition).toEqual({
        StringEquals: { 'aws:SourceAccount': '000000000000' },
      });
    }
    expect(keyUse?.Action).toEqual(['kms:Decrypt', 'kms:GenerateDataKey*']);
    expect(publish?.Action).toBe('sns:Publish');
  });

  it('refuses publishing without TLS', () => {
    const [, topicPolicy] = ofType('AWS::SNS::TopicPolicy')[0] ?? ['', { Type: '' }];
    expect(JSON.stringify(topicPolicy.Properties?.PolicyDocument)).toContain(
      '"Condition":{"Bool":{"aws:SecureTransport":"false"}},"Effect":"Deny"',
    );
  });

  it('subscribes the configured endpoints, filtering dbopt alerts by severity but never alarms', () => {
    const subscriptions = ofType('AWS::SNS::Subscription').map(([, r]) => r.Properties ?? {});
    expect(subscriptions).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          Protocol: 'email',
          Endpoint: 'oncall@example.com',
          TopicArn: { Ref: topicId() },
          // Alarm and RDS event notifications carry no `severity` attribute: exists:false keeps them
          FilterPolicy: { severity: ['CRITICAL', { exists: false }] },
        }),
        expect.objectContaining({ Protocol: 'https', Endpoint: 'https://hooks.example.com/dbopt' }),
      ]),
    );
    expect(subscriptions.find((s) => s.Protocol === 'https')?.FilterPolicy).toBeUndefined();
  });
});

describe('alarms', () => {
  it('every alarm notifies the alert topic when it fires and when it recovers', () => {
    expect(alarms.length).toBeGreaterThan(0);
    for (const alarm of alarms) {
      expect(alarm.AlarmActions).toEqual([{ Ref: topicId() }]);
      expect(alarm.OKActions).toEqual([{ Ref: topicId() }]);
    }
  });

  it.each([
    ['query latency p99', 'QueryDuration'],
    ['cache hit rate', 'CacheMiss'],
    ['database connections', 'DatabaseConnections'],
    ['RDS Proxy pinned connections', 'DatabaseConnectionsCurrentlySessionPinned'],
    ['slow statements', 'NumberOfMessagesSent'],
    ['DLQ depth', 'ApproximateNumberOfMessagesVisible'],
    ['collector errors', 'Errors'],
    ['collector target health', 'TargetUp'],
    ['collector read failures', 'CollectFailed'],
    ['API 5xx', '5XXError'],
  ])('cover %s (%s)', (_what, metricName) => {
    expect(alarms.some((a) => metricNamesOf(a).includes(metricName))).toBe(true);
  });

  it('put the p99 latency alarm at the configured threshold', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Threshold: 750,
      Metrics: [
        {
          Id: 'm1',
          MetricStat: {
            Metric: {
              Namespace: 'dbopt',
              MetricName: 'QueryDuration',
              Dimensions: [{ Name: 'service', Value: 'dbopt-query' }],
            },
            Stat: 'p99',
            Period: 60,
          },
          ReturnData: true,
          Label: 'p99 (ms)',
        },
      ],
    });
  });

  it('watch query latency with an anomaly-detection band', () => {
    const anomaly = alarms.filter((a) => a.ThresholdMetricId !== undefined);
    expect(anomaly).toHaveLength(1);
    expect(anomaly[0]?.ComparisonOperator).toBe('GreaterThanUpperThreshold');
    expect(
      anomaly[0]?.Metrics?.find((m) => m.Id === anomaly[0]?.ThresholdMetricId)?.Expression,
    ).toMatch(/^ANOMALY_DETECTION_BAND\(m0, 3\)$/);
    expect(metricNamesOf(anomaly[0] as AlarmProps)).toEqual(['QueryDuration']);
  });

  it('compute the cache hit rate from L1 and L2 hits and misses', () => {
    const hitRate = alarms.find((a) => metricNamesOf(a).includes('CacheMiss'));
    expect(metricNamesOf(hitRate as AlarmProps).sort()).toEqual([
      'CacheHitL1',
      'CacheHitL2',
      'CacheMiss',
    ]);
    expect(hitRate?.Metrics?.map((m) => m.Expression).filter(Boolean)).toContain(
      'IF((h + FILL(m, 0)) > 0, 100 * h / (h + FILL(m, 0)))',
    );
  });
});

describe('dashboard', () => {
  it('shows latency, hit rate, connections, pinning, slow statements, DLQs and collector health', () => {
    // Prepare
    const [, dashboard] = ofType('AWS::CloudWatch::Dashboard')[0] ?? ['', { Type: '' }];

    // Act: the body is a Fn::Join of JSON fragments; the literal parts carry the titles
    const body = JSON.stringify(dashboard.Properties?.DashboardBody);

    // Assess
    expect(dashboard.Properties?.DashboardName).toBe('dbopt-dev');
    for (const title of [
      'Query API latency (ms)',
      'Result cache hit rate (%)',
      'Database connections',
      'RDS Proxy pinned connections',
      'Slow statements enqueued',
      'Dead-letter queue depth',
      'Collector health',
    ]) {
      expect(body).toContain(title);
    }
  });

  it('is an output, next to the API URL and the topic ARN', () => {
    const outputs = template.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(JSON.stringify(outputs.DashboardUrl?.Value)).toContain('#dashboards:name=');
    expect(JSON.stringify(outputs.DashboardUrl?.Value)).toContain(
      `"Ref":"${ofType('AWS::CloudWatch::Dashboard')[0]?.[0]}"`,
    );
    expect(outputs.AlertTopicArn?.Value).toEqual({ Ref: topicId() });
    expect(outputs.ApiUrl).toBeDefined();
  });
});

describe('network', () => {
  it.each(['sns', 'sqs', 'logs', 'secretsmanager', 'rds-data'])(
    'reaches %s through a private interface endpoint (no NAT)',
    (service) => {
      const endpoint = ofType('AWS::EC2::VPCEndpoint').find(([, r]) =>
        String(r.Properties?.ServiceName).endsWith(`.${service}`),
      );
      expect(endpoint?.[1].Properties).toMatchObject({
        VpcEndpointType: 'Interface',
        PrivateDnsEnabled: true,
        SubnetIds: [expect.anything(), expect.anything()],
      });
    },
  );

  it('admits HTTPS to the endpoints from the VPC range only', () => {
    const endpoint = ofType('AWS::EC2::VPCEndpoint')[0]?.[1];
    const groupId = (propsOf(endpoint).SecurityGroupIds as { 'Fn::GetAtt': [string] }[])[0]?.[
      'Fn::GetAtt'
    ][0];
    expect(resources[groupId ?? '']?.Properties?.SecurityGroupIngress).toEqual([
      expect.objectContaining({ CidrIp: '10.40.0.0/16', FromPort: 443, ToPort: 443 }),
    ]);
  });
});
