import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_PARAMETERS, RDS_EVENT_CATEGORIES } from '../../infra/constructs/database.ts';
import { buildTestApp } from './synth.ts';

/** A resource's properties, or none: keeps the lookups below free of optional chains. */
const propsOf = (
  r: { Properties?: Record<string, unknown> } | undefined,
): Record<string, unknown> => r?.Properties ?? {};

type Resource = {
  Type: string;
  Properties?: Record<string, unknown>;
  DeletionPolicy?: string;
  UpdateReplacePolicy?: string;
};
type Resources = Record<string, Resource>;
type GetAtt = { 'Fn::GetAtt': [string, string] };
interface Statement {
  Action: string | string[];
  Resource: unknown;
}

let template: Template;
let resources: Resources;

const ofType = (type: string): [string, Resource][] =>
  Object.entries(resources).filter(([, r]) => r.Type === type);

const functionByDescription = (pattern: RegExp): [string, Record<string, unknown>] => {
  const found = ofType('AWS::Lambda::Function').filter(([, r]) =>
    pattern.test(String(r.Properties?.Description)),
  );
  expect(found).toHaveLength(1);
  const [id, r] = found[0] ?? ['', { Type: '' }];
  return [id, r.Properties ?? {}];
};

const roleStatements = (roleId: string): Statement[] =>
  ofType('AWS::IAM::Policy')
    .map(([, r]) => r.Properties ?? {})
    .filter((p) => (p.Roles as { Ref: string }[]).some((r) => r.Ref === roleId))
    .flatMap((p) => (p.PolicyDocument as { Statement: Statement[] }).Statement);

/** Ingress rules (separate resources) on the group with logical id `groupId`. */
const ingressOn = (groupId: string) =>
  ofType('AWS::EC2::SecurityGroupIngress')
    .map(([, r]) => r.Properties ?? {})
    .filter((p) => JSON.stringify(p.GroupId).includes(`"${groupId}"`));

beforeAll(() => {
  // Prepare: the default (managed Aurora Serverless v2) with one shard next to the primary
  const { stack } = buildTestApp({ context: { shards: 's1' } });
  // Act
  template = Template.fromStack(stack);
  resources = template.toJSON().Resources as Resources;
});

describe('managed Aurora PostgreSQL', () => {
  it('creates one cluster per target: the primary and each shard', () => {
    expect(ofType('AWS::RDS::DBCluster')).toHaveLength(2);
    expect(ofType('AWS::RDS::DBProxy')).toHaveLength(2);
  });

  it('preloads pg_stat_statements, tracks I/O timing and forces TLS', () => {
    template.hasResourceProperties('AWS::RDS::DBClusterParameterGroup', {
      Family: 'aurora-postgresql16',
      Parameters: {
        shared_preload_libraries: 'pg_stat_statements',
        'pg_stat_statements.track': 'all',
        track_io_timing: '1',
        'rds.force_ssl': '1',
      },
    });
    for (const [, cluster] of ofType('AWS::RDS::DBCluster')) {
      const group = (propsOf(cluster).DBClusterParameterGroupName as { Ref: string }).Ref;
      expect(resources[group]?.Properties?.Parameters).toEqual(POSTGRES_PARAMETERS);
    }
  });

  it.each([
    ['StorageEncrypted', true],
    ['EnableIAMDatabaseAuthentication', true],
    ['EnableHttpEndpoint', true],
    ['DeletionProtection', true],
    ['BackupRetentionPeriod', 7],
    ['CopyTagsToSnapshot', true],
  ])('sets %s to %j on every cluster', (property, value) => {
    for (const [, cluster] of ofType('AWS::RDS::DBCluster')) {
      expect(cluster.Properties?.[property]).toEqual(value);
    }
  });

  it('keeps a final snapshot when a cluster is removed or replaced', () => {
    for (const [, cluster] of ofType('AWS::RDS::DBCluster')) {
      expect(cluster.DeletionPolicy).toBe('Snapshot');
      expect(cluster.UpdateReplacePolicy).toBe('Snapshot');
    }
  });

  it('runs Serverless v2 writers with one reader each (Multi-AZ)', () => {
    template.hasResourceProperties('AWS::RDS::DBCluster', {
      Engine: 'aurora-postgresql',
      ServerlessV2ScalingConfiguration: { MinCapacity: 0.5, MaxCapacity: 4 },
    });
    const instances = ofType('AWS::RDS::DBInstance').map(([, r]) => r.Properties ?? {});
    expect(instances).toHaveLength(4);
    for (const instance of instances) {
      expect(instance).toMatchObject({
        DBInstanceClass: 'db.serverless',
        PubliclyAccessible: false,
      });
    }
    expect(instances.filter((i) => i.PromotionTier === 0)).toHaveLength(2);
  });

  it('keeps the admin password in Secrets Manager, rotated every 30 days by hosted rotation', () => {
    const rotations = ofType('AWS::SecretsManager::RotationSchedule').map(([, r]) => r.Properties);
    expect(rotations).toHaveLength(2);
    for (const rotation of rotations) {
      expect(rotation).toMatchObject({
        HostedRotationLambda: { RotationType: 'PostgreSQLSingleUser' },
        RotationRules: { ScheduleExpression: 'rate(30 days)' },
      });
    }
    for (const [, cluster] of ofType('AWS::RDS::DBCluster')) {
      expect(JSON.stringify(cluster.Properties?.MasterUserPassword)).toContain(
        '{{resolve:secretsmanager:',
      );
    }
  });

  it('sends failover, failure and notification events of clusters and instances to the alert topic', () => {
    const subscriptions = ofType('AWS::RDS::EventSubscription').map(([, r]) => r.Properties ?? {});
    expect(subscriptions.map((s) => s.SourceType).sort()).toEqual(['db-cluster', 'db-instance']);
    for (const subscription of subscriptions) {
      expect(subscription.EventCategories).toEqual(RDS_EVENT_CATEGORIES);
      expect(subscription.SnsTopicArn).toEqual({ Ref: expect.stringMatching(/^AlertsTopic/) });
    }
    const clusterSources = subscriptions.find((s) => s.SourceType === 'db-cluster')?.SourceIds;
    expect(clusterSources).toHaveLength(2);
  });
});

describe('secret rotation', () => {
  it('runs in a security group that reaches only HTTPS in the VPC and its database', () => {
    // Prepare
    const [, rotation] = ofType('AWS::SecretsManager::RotationSchedule')[0] ?? ['', { Type: '' }];
    const groupId = (
      (propsOf(rotation).HostedRotationLambda as { VpcSecurityGroupIds: GetAtt })
        .VpcSecurityGroupIds as GetAtt
    )['Fn::GetAtt'][0];

    // Act
    const inline = resources[groupId]?.Properties?.SecurityGroupEgress as Record<string, unknown>[];
    const separate = ofType('AWS::EC2::SecurityGroupEgress')
      .map(([, r]) => r.Properties ?? {})
      .filter((p) => JSON.stringify(p.GroupId).includes(`"${groupId}"`));

    // Assess
    expect(inline).toEqual([expect.objectContaining({ FromPort: 443, ToPort: 443 })]);
    expect(separate).toEqual([
      expect.objectContaining({
        FromPort: 5432,
        DestinationSecurityGroupId: {
          'Fn::GetAtt': [expect.stringMatching(/^DatabasePrimarySecurityGroup/), 'GroupId'],
        },
      }),
    ]);
    expect(JSON.stringify(template.toJSON())).not.toContain('0.0.0.0/0');
  });
});

describe('outputs', () => {
  it.each(['Primary', 'S1'])('name the proxy, writer, secret and cluster of %s', (target) => {
    const outputs = Object.keys(template.toJSON().Outputs as Record<string, unknown>);
    for (const kind of ['ProxyEndpoint', 'WriterEndpoint', 'AdminSecretArn', 'ClusterArn']) {
      expect(outputs).toContain(`${kind}${target}`);
    }
  });
});

describe('RDS Proxy', () => {
  it('requires TLS and IAM authentication end to end (no password path)', () => {
    for (const [, proxy] of ofType('AWS::RDS::DBProxy')) {
      expect(proxy.Properties).toMatchObject({
        EngineFamily: 'POSTGRESQL',
        RequireTLS: true,
        DefaultAuthScheme: 'IAM_AUTH',
      });
      expect(proxy.Properties?.Auth).toBeUndefined();
    }
  });

  it('may sign in to its database only as the users behind it, not as the optimizer', () => {
    // Prepare
    const [proxyId, proxy] = ofType('AWS::RDS::DBProxy')[0] ?? ['', { Type: '' }];
    const roleId = (propsOf(proxy).RoleArn as GetAtt)['Fn::GetAtt'][0];

    // Act
    const connect = roleStatements(roleId).filter((s) =>
      [s.Action].flat().includes('rds-db:connect'),
    );

    // Assess
    expect(proxyId).toMatch(/^Database/);
    const users = JSON.stringify(connect.map((s) => s.Resource));
    expect(users).toContain('/dbopt_query');
    expect(users).toContain('/dbopt_monitor');
    expect(users).not.toContain('dbopt_advisor');
    expect(users).not.toContain('*');
  });

  it('admits PostgreSQL only from the functions that use it', () => {
    // Prepare
    const [, proxy] = ofType('AWS::RDS::DBProxy').find(([id]) => id.includes('Primary')) ?? [];
    const groupId = (propsOf(proxy).VpcSecurityGroupIds as GetAtt[])[0]?.['Fn::GetAtt'][0];
    const functionGroups = new Map(
      ofType('AWS::Lambda::Function').map(([, r]) => [
        (r.Properties?.VpcConfig as { SecurityGroupIds: GetAtt[] } | undefined)
          ?.SecurityGroupIds[0]?.['Fn::GetAtt'][0],
        String(r.Properties?.Description),
      ]),
    );

    // Act
    const sources = ingressOn(groupId ?? '').map(
      (p) => functionGroups.get((p.SourceSecurityGroupId as GetAtt)['Fn::GetAtt'][0]) ?? 'other',
    );

    // Assess: query API, sweeper and both collectors; not the optimizer (direct), nothing else
    expect(sources.map((d) => d.split(':')[0]).sort()).toEqual([
      'dbopt cache sweeper',
      'dbopt collect-metrics',
      'dbopt collect-slow-queries',
      'dbopt query API',
    ]);
  });
});

describe('optimizer direct access', () => {
  it('connects to the writer endpoint, not the proxy, as its own role', () => {
    const [, props] = functionByDescription(/^dbopt optimize/);
    const env = (props.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(env.DB_HOST).toEqual({
      'Fn::GetAtt': [expect.stringMatching(/^DatabasePrimaryCluster/), 'Endpoint.Address'],
    });
    expect(env).toMatchObject({ DB_USER: 'dbopt_advisor', DB_IAM_AUTH: 'true' });
    expect(JSON.stringify(env.SHARD_URLS)).toContain('DatabaseS1Cluster');
    expect(JSON.stringify(env.SHARD_URLS)).not.toContain('Proxy');
  });

  it('may connect only as dbopt_advisor, on each cluster resource id', () => {
    const [, props] = functionByDescription(/^dbopt optimize/);
    const roleId = (props.Role as GetAtt)['Fn::GetAtt'][0];
    const connect = roleStatements(roleId).filter((s) =>
      [s.Action].flat().includes('rds-db:connect'),
    );
    const arns = connect.flatMap((s) => [s.Resource].flat()).map((r) => JSON.stringify(r));
    expect(arns).toHaveLength(2);
    for (const arn of arns) {
      expect(arn).toContain('ClusterResourceId');
      expect(arn).toContain('/dbopt_advisor');
    }
  });

  it('is admitted by each database security group on 5432', () => {
    const [, props] = functionByDescription(/^dbopt optimize/);
    const optimizerGroup = (props.VpcConfig as { SecurityGroupIds: GetAtt[] })
      .SecurityGroupIds[0]?.['Fn::GetAtt'][0];
    const databaseGroups = ofType('AWS::RDS::DBCluster').map(
      ([, r]) => (propsOf(r).VpcSecurityGroupIds as GetAtt[])[0]?.['Fn::GetAtt'][0] ?? '',
    );
    for (const group of databaseGroups) {
      const fromOptimizer = ingressOn(group).filter(
        (p) => (p.SourceSecurityGroupId as GetAtt)['Fn::GetAtt'][0] === optimizerGroup,
      );
      expect(fromOptimizer).toEqual([expect.objectContaining({ FromPort: 5432, ToPort: 5432 })]);
    }
  });
});

describe('database variants', () => {
  it('builds an RDS for PostgreSQL Multi-AZ instance with engine=rds', () => {
    // Prepare
    const { stack } = buildTestApp({
      context: { database: { engine: 'rds', instanceClass: 'm7g.large' } },
    });

    // Act
    const variant = Template.fromStack(stack);

    // Assess
    variant.resourceCountIs('AWS::RDS::DBCluster', 0);
    variant.hasResource('AWS::RDS::DBInstance', {
      Properties: Match.objectLike({
        Engine: 'postgres',
        DBInstanceClass: 'db.m7g.large',
        MultiAZ: true,
        StorageEncrypted: true,
        EnableIAMDatabaseAuthentication: true,
        BackupRetentionPeriod: 7,
        DeletionProtection: true,
      }),
      DeletionPolicy: 'Snapshot',
    });
    variant.hasResourceProperties('AWS::RDS::DBParameterGroup', {
      Family: 'postgres16',
      Parameters: Match.objectLike({ shared_preload_libraries: 'pg_stat_statements' }),
    });
    variant.resourceCountIs('AWS::RDS::DBProxy', 1);
  });

  it('creates no database, proxy or secret in existing mode', () => {
    const { stack } = buildTestApp({ context: { database: '{"mode":"existing"}' } });
    const variant = Template.fromStack(stack);
    for (const type of ['AWS::RDS::DBCluster', 'AWS::RDS::DBInstance', 'AWS::RDS::DBProxy']) {
      variant.resourceCountIs(type, 0);
    }
  });
});
