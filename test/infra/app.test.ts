import { Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { InfraConfigError, parseInfraConfig } from '../../infra/config.ts';
import { buildTestApp } from './synth.ts';

describe('cdk-nag (AwsSolutions)', () => {
  it('reports no unacknowledged finding', () => {
    // Prepare
    const { app } = buildTestApp();

    // Act: synth runs the registered plugin (and throws on findings); validateScope lists them
    app.synth();
    const report = new AwsSolutionsChecks().validateScope(app);

    // Assess
    expect(
      report.violations.map((v) => ({
        rule: v.ruleName,
        at: v.violatingResources.map((r) => r.constructPath),
      })),
    ).toEqual([]);
  });

  it('reports no unacknowledged finding with a one-node (development) cache', () => {
    // Prepare: one node has no Multi-AZ (AwsSolutions-AEC4), acknowledged only in that case
    const { app } = buildTestApp({ context: { cacheNodes: '1' } });

    // Act
    app.synth();
    const report = new AwsSolutionsChecks().validateScope(app);

    // Assess
    expect(report.violations.map((v) => v.ruleName)).toEqual([]);
  });

  it.each([
    ['RDS for PostgreSQL, single-AZ', { database: { engine: 'rds', readers: 0 } }],
    ['two shards and the Data API', { shards: 's1,s2', statsSource: 'data-api' }],
    [
      'provisioned Aurora',
      { database: { engine: 'aurora-provisioned', instanceClass: 'r6g.large' } },
    ],
    ['an existing proxy, no Redis AUTH', { database: { mode: 'existing' }, cacheAuth: 'false' }],
  ])('reports no unacknowledged finding with %s', (_name, context) => {
    // Prepare
    const { app } = buildTestApp({ context });

    // Act
    const report = new AwsSolutionsChecks().validateScope(app);

    // Assess
    expect(report.violations.map((v) => v.ruleName)).toEqual([]);
  });

  it('fails synthesis when a finding is not acknowledged', () => {
    // Prepare: a role with an AWS managed policy and no acknowledgment (AwsSolutions-IAM4)
    const { app } = buildTestApp({
      mutate: ({ stack }) => {
        new iam.Role(stack, 'Offender', {
          assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
          managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('ReadOnlyAccess')],
        });
      },
    });

    // Act + Assess
    expect(() => app.synth()).toThrow(/AwsSolutions-IAM4/);
  });

  it('accepts the finding once it is acknowledged with a reason', () => {
    // Prepare
    const { app } = buildTestApp({
      mutate: ({ stack }) => {
        const role = new iam.Role(stack, 'Offender', {
          assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
          managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('ReadOnlyAccess')],
        });
        Validations.of(role).acknowledge({
          id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/ReadOnlyAccess]',
          reason: 'test',
        });
      },
    });

    // Act + Assess
    expect(() => app.synth()).not.toThrow();
  });
});

describe('offline synthesis', () => {
  it('needs no context lookup (no AZ, VPC or account queries)', () => {
    // Prepare
    const { app } = buildTestApp();

    // Act
    const assembly = app.synth();

    // Assess
    expect(assembly.manifest.missing ?? []).toEqual([]);
  });

  it('places the subnets in the configured availability zones', () => {
    // Prepare
    const { stack } = buildTestApp({
      context: { region: 'eu-west-1', availabilityZones: 'eu-west-1b,eu-west-1c' },
    });

    // Act
    const template = Template.fromStack(stack);

    // Assess
    const zones = Object.values(template.findResources('AWS::EC2::Subnet')).map(
      (s) => s.Properties.AvailabilityZone,
    );
    expect(zones.sort()).toEqual(['eu-west-1b', 'eu-west-1c']);
    expect(stack.region).toBe('eu-west-1');
  });

  it('builds an isolated network: no internet gateway, no NAT', () => {
    const template = Template.fromStack(buildTestApp().stack);
    template.resourceCountIs('AWS::EC2::InternetGateway', 0);
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::FlowLog', 1);
  });

  it('keeps every log group for the configured retention', () => {
    // Prepare
    const { stack } = buildTestApp({ context: { logRetentionDays: '14' } });

    // Act
    const logGroups = Object.values(Template.fromStack(stack).findResources('AWS::Logs::LogGroup'));

    // Assess: query, sweeper, collect-metrics, collect-slow-queries and optimize Lambda logs,
    // API access logs, VPC flow logs (RDS creates its own export groups, see database tests)
    expect(logGroups).toHaveLength(7);
    for (const group of logGroups) expect(group.Properties.RetentionInDays).toBe(14);
  });
});

describe('infra configuration', () => {
  it('defaults to a placeholder environment for offline synth', () => {
    const config = parseInfraConfig({});
    expect(config).toMatchObject({
      account: '000000000000',
      region: 'us-east-1',
      availabilityZones: ['us-east-1a', 'us-east-1b'],
      logRetentionDays: 30,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it.each([
    [{ account: '123' }, 'account'],
    [{ region: 'mars' }, 'region'],
    [{ availabilityZones: ['us-east-1a'] }, 'availabilityZones'],
    [{ availabilityZones: 'us-east-1a,eu-west-1a' }, 'availabilityZones'],
    [{ dbProxyResourceId: 'my-proxy' }, 'dbProxyResourceId'],
    [{ logRetentionDays: 31 }, 'logRetentionDays'],
    [{ apiGatewayCloudWatchRole: 'maybe' }, 'apiGatewayCloudWatchRole'],
    [{ cacheNodeType: 't4g.small' }, 'cacheNodeType'],
    [{ cacheNodes: 0 }, 'cacheNodes'],
    [{ cacheNodes: '7' }, 'cacheNodes'],
    [{ cacheSweepIntervalMs: 60_001 }, 'cacheSweepIntervalMs'],
    [{ profile: 'gcp' }, 'profile'],
    [{ environmentName: 'Prod!' }, 'environmentName'],
    [{ database: { engine: 'mysql' } }, 'database'],
    [{ database: '{"minCapacityAcu":8,"maxCapacityAcu":4}' }, 'database'],
    [{ database: '{not json' }, 'database'],
    [{ database: { readers: 4 } }, 'database'],
    [{ shards: 'primary' }, 'shards'],
    [{ shards: 's1,s1' }, 'shards'],
    [{ shards: 'Shard_1' }, 'shards'],
    [{ shards: 's1', database: { mode: 'existing' } }, 'shards'],
    [{ schedules: { collectMetrics: 'every minute' } }, 'schedules'],
    [{ thresholds: { cacheHitRateMinPercent: 120 } }, 'thresholds'],
    [
      { alertSubscriptions: [{ protocol: 'email', endpoint: 'not-an-address' }] },
      'alertSubscriptions',
    ],
    [
      { alertSubscriptions: [{ protocol: 'https', endpoint: 'http://plain.example.com' }] },
      'alertSubscriptions',
    ],
    [{ alertSubscriptions: [{ protocol: 'sms', endpoint: '+15555550100' }] }, 'alertSubscriptions'],
    [
      { alertSubscriptions: [{ protocol: 'email', endpoint: 'a@b.co', severities: ['INFO'] }] },
      'alertSubscriptions',
    ],
    [{ features: { writesAllowed: 'sometimes' } }, 'features'],
    [{ statsSource: 'data-api', database: { engine: 'rds' } }, 'statsSource'],
    [{ optimizerTimeoutSeconds: 901 }, 'optimizerTimeoutSeconds'],
    [{ dbResourceId: 'prx-abc' }, 'dbResourceId'],
    [{ healthThresholds: { connectionUtilisation: { critical: 'high' } } }, 'healthThresholds'],
    [{ healthThresholds: { noSuchCheck: { critical: 1 } } }, 'healthThresholds'],
  ])('rejects %j naming %s', (raw, key) => {
    expect(() => parseInfraConfig(raw)).toThrow(InfraConfigError);
    expect(() => parseInfraConfig(raw)).toThrow(key);
  });

  it('coerces -c strings', () => {
    const config = parseInfraConfig({
      apiThrottleRateLimit: '50',
      apiGatewayCloudWatchRole: 'false',
      queryReservedConcurrency: '5',
      cacheNodes: '1',
      cacheSweepIntervalMs: '2000',
    });
    expect(config).toMatchObject({
      apiThrottleRateLimit: 50,
      apiGatewayCloudWatchRole: false,
      queryReservedConcurrency: 5,
      cacheNodes: 1,
      cacheSweepIntervalMs: 2000,
    });
  });

  it('defaults the cache to two small nodes and the sweeper to the query role', () => {
    expect(parseInfraConfig({ dbUser: 'api' })).toMatchObject({
      cacheNodeType: 'cache.t4g.small',
      cacheNodes: 2,
      cacheSweepIntervalMs: 5000,
      sweeperDbUser: 'api',
    });
    expect(parseInfraConfig({ sweeperDbUser: 'sweeper' }).sweeperDbUser).toBe('sweeper');
  });

  it('defaults to the full platform: managed Aurora Serverless v2, Multi-AZ, 7-day backups', () => {
    expect(parseInfraConfig({})).toMatchObject({
      profile: 'aws',
      environmentName: 'dev',
      database: {
        mode: 'managed',
        engine: 'aurora-serverless-v2',
        minCapacityAcu: 0.5,
        maxCapacityAcu: 4,
        readers: 1,
        backupRetentionDays: 7,
        deletionProtection: true,
      },
      shards: [],
      schedules: { collectMetrics: 'rate(1 minute)', collectSlowQueries: 'rate(5 minutes)' },
      features: { writesAllowed: false, autoApplyIndexes: false },
      alertSubscriptions: [],
      statsSource: 'pg',
      cacheAuth: true,
    });
  });

  it('reads nested keys from cdk.json objects and from -c JSON strings alike', () => {
    // Prepare
    const asObject = { database: { engine: 'rds', readers: 0 }, features: { writesAllowed: true } };
    const asStrings = {
      database: '{"engine":"rds","readers":"0"}',
      features: '{"writesAllowed":"true"}',
    };

    // Act
    const [a, b] = [parseInfraConfig(asObject), parseInfraConfig(asStrings)];

    // Assess
    expect(a.database).toEqual(b.database);
    expect(a.features).toEqual(b.features);
    expect(b.database).toMatchObject({ engine: 'rds', readers: 0 });
  });

  it('names every bad key in one error', () => {
    expect(() => parseInfraConfig({ region: 'mars', shards: 'primary', profile: 'gcp' })).toThrow(
      /region.*profile|profile.*region/s,
    );
  });

  it('hands health threshold overrides to collect-metrics as HEALTH_THRESHOLDS', () => {
    // Prepare
    const overrides = { connectionUtilisation: { critical: 0.9 } };

    // Act
    const { stack } = buildTestApp({ context: { healthThresholds: JSON.stringify(overrides) } });

    // Assess
    Template.fromStack(stack).hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('^dbopt collect-metrics'),
      Environment: {
        Variables: Match.objectLike({ HEALTH_THRESHOLDS: JSON.stringify(overrides) }),
      },
    });
  });

  it('passes the feature flags to the functions', () => {
    // Prepare
    const { stack } = buildTestApp({
      context: { features: { writesAllowed: true, autoApplyIndexes: true } },
    });

    // Act
    const env = Object.values(Template.fromStack(stack).findResources('AWS::Lambda::Function'))
      .map((r) => r.Properties.Environment?.Variables ?? {})
      .reduce((all, vars) => Object.assign(all, vars), {});

    // Assess
    expect(env).toMatchObject({ QUERY_ALLOW_WRITES: 'true', ADVISOR_AUTO_APPLY: 'true' });
  });

  it('leaves the account-wide API Gateway role out when told to', () => {
    const { stack } = buildTestApp({ context: { apiGatewayCloudWatchRole: 'false' } });
    Template.fromStack(stack).resourceCountIs('AWS::ApiGateway::Account', 0);
  });
});
