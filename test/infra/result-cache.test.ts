import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { SWEEPER_FUNCTION_TIMEOUT } from '../../infra/constructs/cache-sweeper.ts';
import { buildTestApp } from './synth.ts';

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;
type GetAtt = { 'Fn::GetAtt': [string, string] };
interface Statement {
  Action: string | string[];
  Resource: unknown;
  Effect: string;
  Condition?: unknown;
}
interface FunctionProps {
  Environment: { Variables: Record<string, unknown> };
  Timeout: number;
  ReservedConcurrentExecutions?: number;
  VpcConfig: { SecurityGroupIds: GetAtt[] };
  Role: GetAtt;
}

let template: Template;
let resources: Resources;

const onlyResource = (type: string, description?: RegExp): [string, Record<string, unknown>] => {
  const found = Object.entries(
    template.findResources(
      type,
      description
        ? { Properties: { Description: Match.stringLikeRegexp(description.source) } }
        : {},
    ),
  );
  expect(found).toHaveLength(1);
  const [id, resource] = found[0] ?? ['', {}];
  return [id, (resource as { Properties: Record<string, unknown> }).Properties];
};

/** The schedule that starts the function with logical id `fnId`. */
const scheduleOf = (fnId: string): Record<string, unknown> => {
  const found = Object.values(resources).filter(
    (r) =>
      r.Type === 'AWS::Scheduler::Schedule' &&
      JSON.stringify((r.Properties?.Target as { Arn?: unknown } | undefined)?.Arn) ===
        JSON.stringify({ 'Fn::GetAtt': [fnId, 'Arn'] }),
  );
  expect(found).toHaveLength(1);
  return found[0]?.Properties ?? {};
};

const fn = (description: RegExp): [string, FunctionProps] => {
  const [id, props] = onlyResource('AWS::Lambda::Function', description);
  return [id, props as unknown as FunctionProps];
};
const functionGroupId = (props: FunctionProps): string =>
  props.VpcConfig.SecurityGroupIds[0]?.['Fn::GetAtt'][0] ?? '';

/** Every statement of a role: its inline policies and the AWS::IAM::Policy resources on it. */
const roleStatements = (roleId: string): Statement[] => {
  const role = resources[roleId]?.Properties ?? {};
  const inline = (role.Policies ?? []) as { PolicyDocument: { Statement: Statement[] } }[];
  const attached = Object.values(resources)
    .filter((r) => r.Type === 'AWS::IAM::Policy')
    .map((r) => r.Properties ?? {})
    .filter((p) => (p.Roles as { Ref: string }[]).some((r) => r.Ref === roleId))
    .map((p) => p.PolicyDocument as { Statement: Statement[] });
  return [...inline.map((p) => p.PolicyDocument), ...attached].flatMap((d) => d.Statement);
};

beforeAll(() => {
  // Prepare
  const { stack } = buildTestApp({
    context: {
      dbProxyEndpoint: 'dbopt.proxy-abc.us-east-1.rds.amazonaws.com',
      dbProxyResourceId: 'prx-0123456789abcdef0',
      database: { mode: 'existing' },
      dbUser: 'api_reader',
      sweeperDbUser: 'cache_sweeper',
    },
  });
  // Act (synthesizes the whole app, running the cdk-nag plugin)
  template = Template.fromStack(stack);
  resources = template.toJSON().Resources as Resources;
}, 120_000);

describe('result cache', () => {
  it('is a two-node Multi-AZ Redis replication group with automatic failover', () => {
    template.resourceCountIs('AWS::ElastiCache::ReplicationGroup', 1);
    template.hasResourceProperties('AWS::ElastiCache::ReplicationGroup', {
      Engine: 'redis',
      EngineVersion: Match.stringLikeRegexp('^7\\.'),
      CacheNodeType: 'cache.t4g.small',
      NumCacheClusters: 2,
      AutomaticFailoverEnabled: true,
      MultiAZEnabled: true,
      Port: 6379,
    });
  });

  it('encrypts in transit (TLS) and at rest', () => {
    const [, props] = onlyResource('AWS::ElastiCache::ReplicationGroup');
    expect(props.TransitEncryptionEnabled).toBe(true);
    expect(props.AtRestEncryptionEnabled).toBe(true);
  });

  it('lives in the isolated subnets', () => {
    const [, props] = onlyResource('AWS::ElastiCache::ReplicationGroup');
    const subnetGroupId = (props.CacheSubnetGroupName as { Ref: string }).Ref;
    const subnetGroup = resources[subnetGroupId];
    expect(subnetGroup?.Type).toBe('AWS::ElastiCache::SubnetGroup');
    const subnetIds = (subnetGroup?.Properties?.SubnetIds ?? []) as { Ref: string }[];
    expect(subnetIds).toHaveLength(2);
    for (const { Ref } of subnetIds) {
      expect(Ref).toMatch(/isolated/);
      expect(resources[Ref]?.Properties?.MapPublicIpOnLaunch).toBe(false);
    }
  });

  it('evicts only keys with a TTL (volatile-lru), so table versions stay', () => {
    const [, props] = onlyResource('AWS::ElastiCache::ReplicationGroup');
    const parameterGroupId = (props.CacheParameterGroupName as { Ref: string }).Ref;
    expect(resources[parameterGroupId]?.Properties).toMatchObject({
      CacheParameterGroupFamily: 'redis7',
      Properties: { 'maxmemory-policy': 'volatile-lru' },
    });
  });

  it('admits 6379 only from the query and sweeper functions', () => {
    // Prepare
    const [, rg] = onlyResource('AWS::ElastiCache::ReplicationGroup');
    const cacheGroupId = (rg.SecurityGroupIds as GetAtt[])[0]?.['Fn::GetAtt'][0] ?? '';
    const cacheGroup = resources[cacheGroupId]?.Properties ?? {};
    const [, query] = fn(/query API/);
    const [, sweeper] = fn(/cache sweeper/);

    // Act
    const ingress = Object.values(resources)
      .filter((r) => r.Type === 'AWS::EC2::SecurityGroupIngress')
      .map((r) => r.Properties ?? {})
      .filter((p) => JSON.stringify(p.GroupId).includes(cacheGroupId));

    // Assess: no inline ingress, no CIDR, exactly the two function groups on 6379
    expect(cacheGroup.SecurityGroupIngress).toBeUndefined();
    expect(JSON.stringify(ingress)).not.toContain('CidrIp');
    expect(
      ingress.map((p) => ({
        from: (p.SourceSecurityGroupId as GetAtt)['Fn::GetAtt'][0],
        ports: [p.FromPort, p.ToPort, p.IpProtocol],
      })),
    ).toEqual(
      expect.arrayContaining([
        { from: functionGroupId(query), ports: [6379, 6379, 'tcp'] },
        { from: functionGroupId(sweeper), ports: [6379, 6379, 'tcp'] },
      ]),
    );
    expect(ingress).toHaveLength(2);
  });

  it('opens no port to 0.0.0.0/0 anywhere', () => {
    expect(JSON.stringify(template.toJSON())).not.toContain('0.0.0.0/0');
  });
});

describe('cache sweeper', () => {
  it('runs 70 s, so each minute-started run overlaps the next', () => {
    const [, props] = fn(/cache sweeper/);
    expect(props.Timeout).toBe(70);
    expect(props.Timeout * 1000).toBe(SWEEPER_FUNCTION_TIMEOUT.toMilliseconds());
    expect(props.ReservedConcurrentExecutions).toBeUndefined();
  });

  it('gets the database, Redis (rediss://) and sweep interval settings', () => {
    const [, props] = fn(/cache sweeper/);
    const env = props.Environment.Variables;
    expect(env).toMatchObject({
      DB_HOST: 'dbopt.proxy-abc.us-east-1.rds.amazonaws.com',
      DB_PORT: '5432',
      DB_USER: 'cache_sweeper',
      DB_IAM_AUTH: 'true',
      DB_SSL_MODE: 'verify-full',
      CACHE_SWEEP_INTERVAL_MS: '5000',
    });
    expect(env.REDIS_URL).toEqual({
      'Fn::Join': [
        '',
        [
          'rediss://:{{resolve:secretsmanager:',
          { Ref: expect.stringMatching(/^ResultCacheAuthToken/) },
          ':SecretString:token::}}@',
          { 'Fn::GetAtt': [expect.stringMatching(/^ResultCache/), 'PrimaryEndPoint.Address'] },
          ':6379',
        ],
      ],
    });
  });

  it('takes the sweep interval from context', () => {
    const { stack } = buildTestApp({ context: { cacheSweepIntervalMs: '2000' } });
    Template.fromStack(stack).hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('cache sweeper'),
      Environment: { Variables: Match.objectLike({ CACHE_SWEEP_INTERVAL_MS: '2000' }) },
    });
  });

  it('may open connections only to PostgreSQL in the VPC and to the cache', () => {
    // Prepare
    const [, props] = fn(/cache sweeper/);
    const groupId = functionGroupId(props);

    // Act
    const inline = resources[groupId]?.Properties?.SecurityGroupEgress;
    const separate = Object.values(resources)
      .filter((r) => r.Type === 'AWS::EC2::SecurityGroupEgress')
      .map((r) => r.Properties ?? {})
      .filter((p) => JSON.stringify(p.GroupId).includes(groupId));

    // Assess
    expect(inline).toEqual([
      expect.objectContaining({
        CidrIp: { 'Fn::GetAtt': [expect.stringMatching(/Vpc/), 'CidrBlock'] },
        FromPort: 5432,
        ToPort: 5432,
        IpProtocol: 'tcp',
      }),
    ]);
    expect(separate).toEqual([
      expect.objectContaining({
        DestinationSecurityGroupId: {
          'Fn::GetAtt': [expect.stringMatching(/^ResultCacheSecurityGroup/), 'GroupId'],
        },
        FromPort: 6379,
        ToPort: 6379,
        IpProtocol: 'tcp',
      }),
    ]);
  });

  it('may connect to the database as its own user only', () => {
    const [, props] = fn(/cache sweeper/);
    const connect = roleStatements(props.Role['Fn::GetAtt'][0]).filter((s) =>
      [s.Action].flat().includes('rds-db:connect'),
    );
    expect(connect).toEqual([
      {
        Action: 'rds-db:connect',
        Effect: 'Allow',
        Resource:
          'arn:aws:rds-db:us-east-1:000000000000:dbuser:prx-0123456789abcdef0/cache_sweeper',
      },
    ]);
  });

  it('is not retried on failure: the next minute replaces a failed run', () => {
    const [fnId] = fn(/cache sweeper/);
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: fnId },
      MaximumRetryAttempts: 0,
      MaximumEventAgeInSeconds: 60,
    });
  });
});

describe('sweeper schedule', () => {
  it('starts the sweeper every minute, on time, with few retries', () => {
    // Prepare
    const [fnId] = fn(/cache sweeper/);

    // Act
    const schedule = scheduleOf(fnId);

    // Assess
    expect(schedule).toMatchObject({
      ScheduleExpression: 'rate(1 minute)',
      State: 'ENABLED',
      FlexibleTimeWindow: { Mode: 'OFF' },
      Target: {
        Arn: { 'Fn::GetAtt': [fnId, 'Arn'] },
        RetryPolicy: { MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 60 },
      },
    });
    expect((schedule.Target as Record<string, unknown>).DeadLetterConfig).toBeUndefined();
  });

  it('assumes a role that may only invoke the sweeper', () => {
    // Prepare
    const [fnId] = fn(/cache sweeper/);
    const schedule = scheduleOf(fnId);
    const roleId = ((schedule.Target as { RoleArn: GetAtt }).RoleArn as GetAtt)['Fn::GetAtt'][0];

    // Act
    const role = resources[roleId]?.Properties ?? {};

    // Assess: trusted by Scheduler for this account's schedules only; one action, one resource
    expect(role.AssumeRolePolicyDocument).toMatchObject({
      Statement: [
        {
          Action: 'sts:AssumeRole',
          Effect: 'Allow',
          Principal: { Service: 'scheduler.amazonaws.com' },
          Condition: {
            StringEquals: {
              'aws:SourceAccount': '000000000000',
              'aws:SourceArn': 'arn:aws:scheduler:us-east-1:000000000000:schedule-group/default',
            },
          },
        },
      ],
    });
    expect(role.ManagedPolicyArns).toBeUndefined();
    expect(roleStatements(roleId)).toEqual([
      {
        Action: 'lambda:InvokeFunction',
        Effect: 'Allow',
        Resource: { 'Fn::GetAtt': [fnId, 'Arn'] },
      },
    ]);
  });
});

describe('one-node development cache', () => {
  it('has no failover and no Multi-AZ when cacheNodes=1', () => {
    const { stack } = buildTestApp({
      context: { cacheNodes: '1', cacheNodeType: 'cache.t4g.micro' },
    });
    Template.fromStack(stack).hasResourceProperties('AWS::ElastiCache::ReplicationGroup', {
      CacheNodeType: 'cache.t4g.micro',
      NumCacheClusters: 1,
      AutomaticFailoverEnabled: false,
      MultiAZEnabled: false,
      TransitEncryptionEnabled: true,
      AtRestEncryptionEnabled: true,
    });
  });
});
