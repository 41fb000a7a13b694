import { Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elasticache from 'aws-cdk-lib/aws-elasticache';
import { Construct } from 'constructs';
import type { DboptFunction } from './dbopt-function.ts';

/** Port of the cache; clients reach it only through {@link ResultCache.allowFrom}. */
export const REDIS_PORT = 6379;
/** Redis OSS engine version and the parameter group family that goes with it. */
const ENGINE_VERSION = '7.1';
const PARAMETER_GROUP_FAMILY = 'redis7';

export interface ResultCacheProps {
  readonly vpc: ec2.IVpc;
  /** ElastiCache node type, e.g. cache.t4g.small. */
  readonly nodeType: string;
  /**
   * Primary plus replicas. From 2: automatic failover and Multi-AZ. 1: a single node,
   * for development only.
   */
  readonly nodes: number;
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
export class ResultCache extends Construct {
  readonly replicationGroup: elasticache.CfnReplicationGroup;
  readonly securityGroup: ec2.SecurityGroup;
  readonly subnetGroup: elasticache.CfnSubnetGroup;
  readonly parameterGroup: elasticache.CfnParameterGroup;
  /** `rediss://<primary endpoint>:6379`: the REDIS_URL of every client. */
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
    });

    this.redisUrl = `rediss://${this.replicationGroup.attrPrimaryEndPointAddress}:${REDIS_PORT}`;

    Validations.of(this.replicationGroup).acknowledge(
      {
        id: 'AwsSolutions-AEC5',
        reason:
          'Default port 6379: the cache is in isolated subnets and its security group admits ' +
          'only the dbopt functions allowed explicitly, so moving the port hides nothing.',
      },
      {
        id: 'AwsSolutions-AEC6',
        reason:
          'No Redis AUTH token yet: access is confined by the security group (only the query ' +
          'and sweeper functions, from isolated subnets with no internet path) and TLS is ' +
          'required. A token needs Secrets Manager, rotation and a client change; RBAC with ' +
          'IAM authentication is the planned replacement.',
      },
    );
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
    this.securityGroup.connections.allowFrom(
      fn.securityGroup,
      ec2.Port.tcp(REDIS_PORT),
      `Redis (TLS) between ${fn.node.path} and the result cache`,
    );
  }
}
