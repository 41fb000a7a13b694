import { Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elasticache from 'aws-cdk-lib/aws-elasticache';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import type { DboptFunction } from './dbopt-function.ts';

/** Port of the cache; clients reach it only through {@link ResultCache.allowFrom}. */
export const REDIS_PORT = 6379;
/** Redis OSS engine version and the parameter group family that goes with it. */
const ENGINE_VERSION = '7.1';
const PARAMETER_GROUP_FAMILY = 'redis7';

/** Where the functions find Redis: the managed cache, or a plain URL (LocalStack). */
export interface RedisEndpoint {
  readonly redisUrl: string;
  /** Opens the network path from `fn` (no-op outside a VPC). */
  allowFrom(fn: DboptFunction): void;
}

/** A Redis the stack does not manage (LocalStack profile): nothing to open. */
export const plainRedis = (redisUrl: string): RedisEndpoint => ({
  redisUrl,
  allowFrom: () => undefined,
});

export interface ResultCacheProps {
  readonly vpc: ec2.IVpc;
  /** ElastiCache node type, e.g. cache.t4g.small. */
  readonly nodeType: string;
  /**
   * Primary plus replicas. From 2: automatic failover and Multi-AZ. 1: a single node,
   * for development only.
   */
  readonly nodes: number;
  /**
   * Require Redis AUTH with a token generated into Secrets Manager.
   * @default true
   */
  readonly authToken?: boolean;
}

/**
 * The shared tier (L2) of the result cache: an ElastiCache for Redis OSS replication group (cluster mode
 * disabled) in the VPC's isolated subnets, TLS in transit and encrypted at rest, reachable on
 * 6379 only from the functions given to {@link allowFrom}.
 *
 * `maxmemory-policy` is `volatile-lru`: under memory pressure Redis evicts only keys with a
 * TTL (result entries, locks), never the table version keys (no TTL), so a full cache can
 * not forget a version and serve an entry that the lost bump should have invalidated.
 */
export class ResultCache extends Construct implements RedisEndpoint {
  readonly replicationGroup: elasticache.CfnReplicationGroup;
  readonly securityGroup: ec2.SecurityGroup;
  readonly subnetGroup: elasticache.CfnSubnetGroup;
  readonly parameterGroup: elasticache.CfnParameterGroup;
  /** The AUTH token (JSON key `token`), when AUTH is on. */
  readonly authSecret?: secretsmanager.Secret;
  /**
   * `rediss://[:<token>@]<primary endpoint>:6379`: the REDIS_URL of every client. The token is
   * a CloudFormation dynamic reference, resolved at deploy time (never in the template).
   */
  readonly redisUrl: string;

  constructor(scope: Construct, id: string, props: ResultCacheProps) {
    super(scope, id);
    const multiNode = props.nodes > 1;

    this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'dbopt result cache: Redis (TLS) from the functions allowed explicitly',
      allowAllOutbound: false,
    });

    this.subnetGroup = new elasticache.CfnSubnetGroup(this, 'SubnetGroup', {
      description: 'dbopt result cache: the VPC isolated subnets',
      subnetIds: props.vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_ISOLATED }).subnetIds,
    });

    this.parameterGroup = new elasticache.CfnParameterGroup(this, 'Parameters', {
      cacheParameterGroupFamily: PARAMETER_GROUP_FAMILY,
      description: 'dbopt result cache: evict only keys with a TTL (never table versions)',
      properties: { 'maxmemory-policy': 'volatile-lru' },
    });

    if (props.authToken ?? true) {
      this.authSecret = new secretsmanager.Secret(this, 'AuthToken', {
        description: 'dbopt result cache: Redis AUTH token',
        // ElastiCache tokens: 16–128 printable characters without @ " /; alphanumerics also
        // need no escaping in the rediss:// URL.
        generateSecretString: {
          secretStringTemplate: '{}',
          generateStringKey: 'token',
          excludePunctuation: true,
          passwordLength: 64,
        },
      });
      Validations.of(this.authSecret).acknowledge({
        id: 'AwsSolutions-SMG4',
        reason:
          'ElastiCache AUTH tokens have no Secrets Manager rotation template; rotating means ' +
          'ModifyReplicationGroup with AuthTokenUpdateStrategy ROTATE and then SET, which the ' +
          'README documents as a runbook. Access is also confined by security groups and TLS.',
      });
    }
    const token = this.authSecret?.secretValueFromJson('token').unsafeUnwrap();

    this.replicationGroup = new elasticache.CfnReplicationGroup(this, 'ReplicationGroup', {
      replicationGroupDescription: 'dbopt result cache (L2)',
      engine: 'redis',
      engineVersion: ENGINE_VERSION,
      cacheNodeType: props.nodeType,
      numCacheClusters: props.nodes,
      automaticFailoverEnabled: multiNode,
      multiAzEnabled: multiNode,
      cacheSubnetGroupName: this.subnetGroup.ref,
      cacheParameterGroupName: this.parameterGroup.ref,
      securityGroupIds: [this.securityGroup.securityGroupId],
      port: REDIS_PORT,
      // TLS only: with encryption in transit enabled at creation, the mode is `required`.
      transitEncryptionEnabled: true,
      atRestEncryptionEnabled: true,
      autoMinorVersionUpgrade: true,
      ...(token ? { authToken: token } : {}),
    });

    const credentials = token ? `:${token}@` : '';
    this.redisUrl = `rediss://${credentials}${this.replicationGroup.attrPrimaryEndPointAddress}:${REDIS_PORT}`;

    Validations.of(this.replicationGroup).acknowledge({
      id: 'AwsSolutions-AEC5',
      reason:
        'Default port 6379: the cache is in isolated subnets and its security group admits ' +
        'only the dbopt functions allowed explicitly, so moving the port hides nothing.',
    });
    if (!token) {
      Validations.of(this.replicationGroup).acknowledge({
        id: 'AwsSolutions-AEC6',
        reason:
          'cacheAuth=false chosen in context: access is confined by the security group (only ' +
          'the dbopt functions, from isolated subnets with no internet path) and TLS is required.',
      });
    }
    if (!multiNode) {
      Validations.of(this.replicationGroup).acknowledge({
        id: 'AwsSolutions-AEC4',
        reason:
          'cacheNodes=1 is the development setting: one node, no Multi-AZ. The cache is ' +
          'disposable (every entry can be recomputed from PostgreSQL) and the query API ' +
          'bypasses it while it is down; the default of 2 nodes is Multi-AZ.',
      });
    }
  }

  /** Lets `fn` connect to the cache: ingress on the cache's group, egress on the function's. */
  allowFrom(fn: DboptFunction): void {
    if (!fn.securityGroup) return;
    this.securityGroup.connections.allowFrom(
      fn.securityGroup,
      ec2.Port.tcp(REDIS_PORT),
      `Redis (TLS) between ${fn.node.path} and the result cache`,
    );
  }
}
