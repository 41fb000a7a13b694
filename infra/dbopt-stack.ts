import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { InfraConfig } from './config.ts';
import { CacheSweeper } from './constructs/cache-sweeper.ts';
import type { DatabaseAccess } from './constructs/database-access.ts';
import { Network } from './constructs/network.ts';
import { QueryApi } from './constructs/query-api.ts';
import { ResultCache } from './constructs/result-cache.ts';

export interface DboptStackProps extends Omit<StackProps, 'env'> {
  readonly config: InfraConfig;
}

/**
 * The whole platform in one stack, one construct per concern. Account, region and
 * availability zones are fixed from configuration, so synthesis never asks AWS for anything.
 */
export class DboptStack extends Stack {
  readonly network: Network;
  readonly resultCache: ResultCache;
  readonly queryApi: QueryApi;
  readonly cacheSweeper: CacheSweeper;
  private readonly fixedAvailabilityZones: string[];

  constructor(scope: Construct, id: string, props: DboptStackProps) {
    const { config, ...stackProps } = props;
    super(scope, id, {
      ...stackProps,
      env: { account: config.account, region: config.region },
    });
    this.fixedAvailabilityZones = [...config.availabilityZones];

    this.network = new Network(this, 'Network', {
      cidr: config.vpcCidr,
      flowLogRetention: config.logRetentionDays,
    });

    const database: DatabaseAccess = {
      proxyEndpoint: config.dbProxyEndpoint,
      proxyResourceId: config.dbProxyResourceId,
      databaseName: config.dbName,
    };

    this.resultCache = new ResultCache(this, 'ResultCache', {
      vpc: this.network.vpc,
      nodeType: config.cacheNodeType,
      nodes: config.cacheNodes,
    });

    this.queryApi = new QueryApi(this, 'QueryApi', {
      vpc: this.network.vpc,
      database,
      dbUser: config.dbUser,
      cache: this.resultCache,
      logRetention: config.logRetentionDays,
      throttle: {
        rateLimit: config.apiThrottleRateLimit,
        burstLimit: config.apiThrottleBurstLimit,
      },
      cloudWatchRole: config.apiGatewayCloudWatchRole,
      ...(config.queryReservedConcurrency === undefined
        ? {}
        : { reservedConcurrency: config.queryReservedConcurrency }),
    });

    this.cacheSweeper = new CacheSweeper(this, 'CacheSweeper', {
      vpc: this.network.vpc,
      database,
      dbUser: config.sweeperDbUser,
      cache: this.resultCache,
      sweepIntervalMs: config.cacheSweepIntervalMs,
      logRetention: config.logRetentionDays,
    });

    new CfnOutput(this, 'QueryUrl', {
      description: 'POST /query (SigV4-signed, service execute-api)',
      value: this.queryApi.queryUrl,
    });
  }

  /**
   * Fixed zones instead of the AZ context lookup, which would need AWS credentials
   * (and network) at synth time.
   */
  override get availabilityZones(): string[] {
    return this.fixedAvailabilityZones;
  }
}
