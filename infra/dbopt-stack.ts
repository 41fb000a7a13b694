import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { InfraConfig } from './config.ts';
import { Network } from './constructs/network.ts';
import { QueryApi } from './constructs/query-api.ts';

export interface DboptStackProps extends Omit<StackProps, 'env'> {
  readonly config: InfraConfig;
}

/**
 * The whole platform in one stack, one construct per concern. Account, region and
 * availability zones are fixed from configuration, so synthesis never asks AWS for anything.
 */
export class DboptStack extends Stack {
  readonly network: Network;
  readonly queryApi: QueryApi;
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

    this.queryApi = new QueryApi(this, 'QueryApi', {
      vpc: this.network.vpc,
      database: {
        proxyEndpoint: config.dbProxyEndpoint,
        proxyResourceId: config.dbProxyResourceId,
        databaseName: config.dbName,
      },
      dbUser: config.dbUser,
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
