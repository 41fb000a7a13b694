import { ArnFormat, Duration, Fn, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import type { InfraConfig } from '../config.ts';
import type { DatabaseAccess, DirectDatabaseAccess } from './database-access.ts';

export const POSTGRES_PORT = 5432;
/** Master user of every managed database (its password lives in Secrets Manager, rotated). */
export const ADMIN_USER = 'dbopt_admin';
/** How often the admin password is rotated (hosted single-user rotation). */
export const SECRET_ROTATION = Duration.days(30);

/**
 * What the collectors and the advisor need from PostgreSQL, on every target:
 * pg_stat_statements preloaded and tracking nested statements too, I/O timing for
 * blk_read_time/blk_write_time, and TLS enforced on the server side.
 * https://www.postgresql.org/docs/current/pgstatstatements.html
 */
export const POSTGRES_PARAMETERS = Object.freeze({
  shared_preload_libraries: 'pg_stat_statements',
  'pg_stat_statements.track': 'all',
  track_io_timing: '1',
  'rds.force_ssl': '1',
});

/** RDS event categories forwarded to the alert topic. */
export const RDS_EVENT_CATEGORIES = Object.freeze(['failover', 'failure', 'notification']);

export interface DatabaseProps {
  readonly vpc: ec2.IVpc;
  readonly settings: InfraConfig['database'];
  /** Targets to create: the primary first, then one per shard. */
  readonly targets: readonly string[];
  readonly databaseName: string;
  /**
   * Database users that log in through RDS Proxy with IAM. The proxy authenticates to the
   * database with IAM as the same user (end-to-end IAM), so it needs `rds-db:connect` for each.
   */
  readonly proxyUsers: readonly string[];
  readonly alertTopic: sns.ITopic;
  readonly logRetention: logs.RetentionDays;
}

/** One PostgreSQL target (primary or shard) and how to reach it. */
export interface DatabaseTarget {
  readonly name: string;
  /** Through RDS Proxy (IAM auth, TLS required): query API, sweeper, collectors. */
  readonly proxy: DatabaseAccess;
  /** The writer endpoint directly: the optimizer's own role. */
  readonly direct: DirectDatabaseAccess;
  /** Admin credentials (Secrets Manager, rotated every {@link SECRET_ROTATION}). */
  readonly secret: secretsmanager.ISecret;
  /** Aurora cluster ARN (Data API); undefined for RDS instances. */
  readonly clusterArn?: string;
  readonly dbProxy: rds.DatabaseProxy;
  /** AWS/RDS dimension of the target: DBClusterIdentifier or DBInstanceIdentifier. */
  readonly metricDimension: Readonly<Record<string, string>>;
}

/**
 * The managed PostgreSQL fleet: one Aurora PostgreSQL cluster (Serverless v2 by default,
 * or provisioned) or RDS for PostgreSQL instance per target, each with
 * - a parameter group preloading pg_stat_statements, with track_io_timing and forced TLS;
 * - IAM database authentication, storage encryption, automated backups (PITR within the
 *   retention), deletion protection and a final snapshot on removal;
 * - readers in another AZ (Aurora) or a Multi-AZ standby (RDS) when `readers` > 0;
 * - the Data API (Aurora);
 * - an admin secret with hosted single-user rotation;
 * - an RDS Proxy that requires TLS and IAM auth and reaches the database with IAM too;
 * and one RDS event subscription (failover, failure, notification) to the alert topic.
 *
 * Database roles (dbopt_query, dbopt_monitor, dbopt_advisor …) are created by the
 * repository migrations / README bootstrap SQL, each with `GRANT rds_iam`.
 */
export class Database extends Construct {
  readonly targets: readonly DatabaseTarget[];

  constructor(scope: Construct, id: string, props: DatabaseProps) {
    super(scope, id);
    const aurora = props.settings.engine !== 'rds';
    const subnets = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };

    const clusterEngine = rds.DatabaseClusterEngine.auroraPostgres({
      version: rds.AuroraPostgresEngineVersion.VER_16_6,
    });
    const instanceEngine = rds.DatabaseInstanceEngine.postgres({
      version: rds.PostgresEngineVersion.VER_16_6,
    });
    const parameterGroup = new rds.ParameterGroup(this, 'Parameters', {
      engine: aurora ? clusterEngine : instanceEngine,
      description: 'dbopt: pg_stat_statements preloaded, track_io_timing, TLS only',
      parameters: { ...POSTGRES_PARAMETERS },
    });

    const clusterIds: string[] = [];
    const instanceIds: string[] = [];
    this.targets = props.targets.map((name) => {
      const scopeOf = new Construct(this, pascal(name));
      const dbSecurityGroup = new ec2.SecurityGroup(scopeOf, 'SecurityGroup', {
        vpc: props.vpc,
        description: `dbopt ${name} database: PostgreSQL from its proxy, rotation and the optimizer`,
        allowAllOutbound: false,
      });
      const credentials = rds.Credentials.fromGeneratedSecret(ADMIN_USER);
      // "postgres" exists on every server; naming it as the initial database is an error.
      const databaseName =
        props.databaseName === 'postgres' ? {} : { databaseName: props.databaseName };

      let proxyTarget: rds.ProxyTarget;
      let secret: secretsmanager.ISecret;
      let direct: { endpoint: string; resourceId: string };
      let clusterArn: string | undefined;
      let metricDimension: Record<string, string>;
      if (aurora) {
        const serverless = props.settings.engine === 'aurora-serverless-v2';
        const instanceType = new ec2.InstanceType(props.settings.instanceClass);
        const cluster = new rds.DatabaseCluster(scopeOf, 'Cluster', {
          engine: clusterEngine,
          parameterGroup,
          credentials,
          ...(databaseName.databaseName ? { defaultDatabaseName: databaseName.databaseName } : {}),
          vpc: props.vpc,
          vpcSubnets: subnets,
          securityGroups: [dbSecurityGroup],
          writer: serverless
            ? rds.ClusterInstance.serverlessV2('Writer')
            : rds.ClusterInstance.provisioned('Writer', { instanceType }),
          readers: Array.from({ length: props.settings.readers }, (_, i) =>
            serverless
              ? rds.ClusterInstance.serverlessV2(`Reader${i + 1}`, { scaleWithWriter: true })
              : rds.ClusterInstance.provisioned(`Reader${i + 1}`, { instanceType }),
          ),
          ...(serverless
            ? {
                serverlessV2MinCapacity: props.settings.minCapacityAcu,
                serverlessV2MaxCapacity: props.settings.maxCapacityAcu,
              }
            : {}),
          iamAuthentication: true,
          storageEncrypted: true,
          backup: {
            retention: Duration.days(props.settings.backupRetentionDays),
            preferredWindow: '03:00-04:00',
          },
          preferredMaintenanceWindow: 'Sun:04:30-Sun:05:30',
          deletionProtection: props.settings.deletionProtection,
          removalPolicy: RemovalPolicy.SNAPSHOT,
          copyTagsToSnapshot: true,
          enableDataApi: true,
          cloudwatchLogsExports: ['postgresql'],
          cloudwatchLogsRetention: props.logRetention,
        });
        proxyTarget = rds.ProxyTarget.fromCluster(cluster);
        secret = cluster.secret as secretsmanager.ISecret;
        direct = {
          endpoint: cluster.clusterEndpoint.hostname,
          resourceId: cluster.clusterResourceIdentifier,
        };
        clusterArn = cluster.clusterArn;
        clusterIds.push(cluster.clusterIdentifier);
        metricDimension = { DBClusterIdentifier: cluster.clusterIdentifier };
        instanceIds.push(...cluster.instanceIdentifiers);
        acknowledgeDatabase(cluster, props.settings.readers);
      } else {
        const instance = new rds.DatabaseInstance(scopeOf, 'Instance', {
          engine: instanceEngine,
          parameterGroup,
          credentials,
          ...databaseName,
          instanceType: new ec2.InstanceType(props.settings.instanceClass),
          vpc: props.vpc,
          vpcSubnets: subnets,
          securityGroups: [dbSecurityGroup],
          multiAz: props.settings.readers > 0,
          iamAuthentication: true,
          storageEncrypted: true,
          storageType: rds.StorageType.GP3,
          allocatedStorage: 20,
          maxAllocatedStorage: 200,
          backupRetention: Duration.days(props.settings.backupRetentionDays),
          preferredBackupWindow: '03:00-04:00',
          preferredMaintenanceWindow: 'Sun:04:30-Sun:05:30',
          deletionProtection: props.settings.deletionProtection,
          removalPolicy: RemovalPolicy.SNAPSHOT,
          copyTagsToSnapshot: true,
          cloudwatchLogsExports: ['postgresql', 'upgrade'],
          cloudwatchLogsRetention: props.logRetention,
          autoMinorVersionUpgrade: true,
        });
        proxyTarget = rds.ProxyTarget.fromInstance(instance);
        secret = instance.secret as secretsmanager.ISecret;
        direct = {
          endpoint: instance.dbInstanceEndpointAddress,
          resourceId: instance.instanceResourceId ?? '',
        };
        instanceIds.push(instance.instanceIdentifier);
        metricDimension = { DBInstanceIdentifier: instance.instanceIdentifier };
        acknowledgeDatabase(instance, props.settings.readers);
      }

      // The rotation Lambda reaches Secrets Manager (interface endpoint, 443) and its
      // database (5432), nothing else.
      const rotationSecurityGroup = new ec2.SecurityGroup(scopeOf, 'RotationSecurityGroup', {
        vpc: props.vpc,
        description: `dbopt ${name} secret rotation: Secrets Manager endpoint and the database`,
        allowAllOutbound: false,
      });
      rotationSecurityGroup.addEgressRule(
        ec2.Peer.ipv4(props.vpc.vpcCidrBlock),
        ec2.Port.tcp(443),
        'Secrets Manager through the VPC endpoint',
      );
      rotationSecurityGroup.addEgressRule(
        dbSecurityGroup,
        ec2.Port.tcp(POSTGRES_PORT),
        'PostgreSQL to the database whose password it rotates',
      );
      dbSecurityGroup.addIngressRule(
        rotationSecurityGroup,
        ec2.Port.tcp(POSTGRES_PORT),
        'PostgreSQL from the secret rotation Lambda',
      );
      secret.addRotationSchedule('Rotation', {
        hostedRotation: secretsmanager.HostedRotation.postgreSqlSingleUser({
          vpc: props.vpc,
          vpcSubnets: subnets,
          securityGroups: [rotationSecurityGroup],
        }),
        automaticallyAfter: SECRET_ROTATION,
      });

      const proxySecurityGroup = new ec2.SecurityGroup(scopeOf, 'ProxySecurityGroup', {
        vpc: props.vpc,
        description: `dbopt ${name} RDS Proxy: PostgreSQL from the functions allowed explicitly`,
        allowAllOutbound: false,
      });
      proxySecurityGroup.addEgressRule(
        dbSecurityGroup,
        ec2.Port.tcp(POSTGRES_PORT),
        'PostgreSQL to the database',
      );
      dbSecurityGroup.addIngressRule(
        proxySecurityGroup,
        ec2.Port.tcp(POSTGRES_PORT),
        'PostgreSQL from the RDS Proxy',
      );

      // End-to-end IAM: the proxy signs in to the database as the calling user.
      const stack = Stack.of(this);
      const proxyRole = new iam.Role(scopeOf, 'ProxyRole', {
        assumedBy: new iam.ServicePrincipal('rds.amazonaws.com'),
        description: `RDS Proxy of the dbopt ${name} database: IAM sign-in as the dbopt users`,
      });
      proxyRole.addToPolicy(
        new iam.PolicyStatement({
          actions: ['rds-db:connect'],
          resources: props.proxyUsers.map((user) =>
            stack.formatArn({
              service: 'rds-db',
              resource: 'dbuser',
              resourceName: `${direct.resourceId}/${user}`,
              arnFormat: ArnFormat.COLON_RESOURCE_NAME,
            }),
          ),
        }),
      );
      const dbProxy = new rds.DatabaseProxy(scopeOf, 'Proxy', {
        proxyTarget,
        vpc: props.vpc,
        vpcSubnets: subnets,
        securityGroups: [proxySecurityGroup],
        iamAuth: true,
        requireTLS: true,
        defaultAuthScheme: rds.DefaultAuthScheme.IAM_AUTH,
        role: proxyRole,
        idleClientTimeout: Duration.minutes(30),
        borrowTimeout: Duration.seconds(10),
        maxConnectionsPercent: 80,
        debugLogging: false,
      });

      // arn:aws:rds:<region>:<account>:db-proxy:prx-… → prx-… (the rds-db:connect resource).
      const proxyResourceId = Fn.select(6, Fn.split(':', dbProxy.dbProxyArn));
      return {
        name,
        proxy: {
          proxyEndpoint: dbProxy.endpoint,
          proxyResourceId,
          databaseName: props.databaseName,
          port: POSTGRES_PORT,
          securityGroup: proxySecurityGroup,
        },
        direct: {
          ...direct,
          databaseName: props.databaseName,
          port: POSTGRES_PORT,
          securityGroup: dbSecurityGroup,
        },
        secret,
        ...(clusterArn ? { clusterArn } : {}),
        dbProxy,
        metricDimension,
      };
    });

    // cloudwatchLogsRetention adds CDK's LogRetention singleton Lambda to the stack.
    const logRetention = Stack.of(this).node.children.filter((c) =>
      c.node.id.startsWith('LogRetention'),
    );
    for (const singleton of logRetention) {
      Validations.of(singleton).acknowledge(
        {
          id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
          reason:
            "CDK's LogRetention provider (sets retention on the log groups RDS creates for its " +
            'log exports, which the stack cannot create first); the managed policy only lets ' +
            'it write its own logs.',
        },
        {
          id: 'AwsSolutions-IAM5[Resource::*]',
          reason:
            "CDK's LogRetention provider: logs:PutRetentionPolicy/DeleteRetentionPolicy on the " +
            'RDS log groups, whose names are only known after the clusters exist.',
        },
      );
    }

    if (clusterIds.length > 0) {
      new rds.CfnEventSubscription(this, 'ClusterEvents', {
        snsTopicArn: props.alertTopic.topicArn,
        sourceType: 'db-cluster',
        sourceIds: clusterIds,
        eventCategories: [...RDS_EVENT_CATEGORIES],
        enabled: true,
      });
    }
    new rds.CfnEventSubscription(this, 'InstanceEvents', {
      snsTopicArn: props.alertTopic.topicArn,
      sourceType: 'db-instance',
      sourceIds: instanceIds,
      eventCategories: [...RDS_EVENT_CATEGORIES],
      enabled: true,
    });
  }
}

/** `shard-1` → `Shard1`: construct ids stay stable and readable. */
const pascal = (name: string): string =>
  name
    .split(/[^A-Za-z0-9]+/)
    .filter((p) => p.length > 0)
    .map((p) => p[0]?.toUpperCase() + p.slice(1))
    .join('');

/** cdk-nag findings that are decisions, each with its reason. */
const acknowledgeDatabase = (
  db: rds.DatabaseCluster | rds.DatabaseInstance,
  readers: number,
): void => {
  Validations.of(db).acknowledge({
    id: 'AwsSolutions-RDS11',
    reason:
      'Default port 5432: the database is in isolated subnets and its security group admits ' +
      'only its proxy, the rotation Lambda and the optimizer, so a moved port hides nothing.',
  });
  if (readers === 0) {
    Validations.of(db).acknowledge({
      id: 'AwsSolutions-RDS3',
      reason:
        'database.readers=0 is the single-AZ development setting chosen in context; the ' +
        'default (1 reader / standby) is Multi-AZ.',
    });
  }
};
