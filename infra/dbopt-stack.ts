import { CfnOutput, Duration, Stack, type StackProps, Tags } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { InfraConfig } from './config.ts';
import { Alerts } from './constructs/alerts.ts';
import { CacheSweeper } from './constructs/cache-sweeper.ts';
import { Database } from './constructs/database.ts';
import {
  type DatabaseAccess,
  type DatabaseConnection,
  directAsAccess,
  iamConnection,
  plainConnection,
} from './constructs/database-access.ts';
import { Network } from './constructs/network.ts';
import { Observability, type ObservedDatabase } from './constructs/observability.ts';
import { type DataApiAccess, Pipeline } from './constructs/pipeline.ts';
import { QueryApi } from './constructs/query-api.ts';
import { plainRedis, type RedisEndpoint, ResultCache } from './constructs/result-cache.ts';
import { functionEntry } from './paths.ts';

/** Every dbopt Lambda, by folder name under functions/. */
export const FUNCTION_NAMES = [
  'query',
  'cache-sweeper',
  'collect-metrics',
  'collect-slow-queries',
  'optimize',
] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

export interface DboptStackProps extends Omit<StackProps, 'env'> {
  readonly config: InfraConfig;
  /** Entry file per function. @default functions/<name>/handler.ts */
  readonly entries?: Partial<Record<FunctionName, string>>;
}

/** Name of the primary target (CACHE_TARGET default; the collectors' `target` dimension). */
export const PRIMARY_TARGET = 'primary';

/**
 * The whole platform in one stack, one construct per concern. Account, region and
 * availability zones are fixed from configuration, so synthesis never asks AWS for anything.
 *
 * profile=aws: VPC (isolated subnets + interface endpoints), PostgreSQL (managed Aurora/RDS
 * with RDS Proxy, or an existing proxy), ElastiCache, query API, cache sweeper, pipeline,
 * alerts and observability. profile=localstack: the same functions, API, SNS, SQS, Scheduler
 * and alarms without VPC, RDS, RDS Proxy or ElastiCache (paid LocalStack features); the
 * database and Redis are plain URLs from context.
 */
export class DboptStack extends Stack {
  readonly network?: Network;
  readonly database?: Database;
  readonly resultCache?: ResultCache;
  readonly alerts: Alerts;
  readonly queryApi: QueryApi;
  readonly cacheSweeper?: CacheSweeper;
  readonly pipeline: Pipeline;
  readonly observability: Observability;
  private readonly fixedAvailabilityZones: string[];

  constructor(scope: Construct, id: string, props: DboptStackProps) {
    const { config, entries = {}, ...stackProps } = props;
    super(scope, id, {
      ...stackProps,
      env: { account: config.account, region: config.region },
    });
    this.fixedAvailabilityZones = [...config.availabilityZones];
    Tags.of(this).add('dbopt:environment', config.environmentName);
    const entryOf = (name: FunctionName) => entries[name] ?? functionEntry(name);
    const localstack = config.profile === 'localstack';
    const managed = !localstack && config.database.mode === 'managed';

    if (!localstack) {
      this.network = new Network(this, 'Network', {
        cidr: config.vpcCidr,
        flowLogRetention: config.logRetentionDays,
        rdsDataEndpoint: managed && config.database.engine !== 'rds',
      });
    }
    const vpc = this.network?.vpc;
    const vpcProps = vpc ? { vpc } : {};

    this.alerts = new Alerts(this, 'Alerts', { subscriptions: config.alertSubscriptions });

    // ── database targets ──
    let viaProxy: DatabaseConnection;
    let direct: DatabaseConnection;
    let dataApi: DataApiAccess | undefined;
    let observed: ObservedDatabase[];
    if (localstack) {
      viaProxy = plainConnection(config.localstack.databaseUrl);
      direct = viaProxy;
      observed = [{ name: PRIMARY_TARGET, dimension: {} }];
    } else if (managed && vpc) {
      this.database = new Database(this, 'Database', {
        vpc,
        settings: config.database,
        targets: [PRIMARY_TARGET, ...config.shards],
        databaseName: config.dbName,
        proxyUsers: [...new Set([config.dbUser, config.sweeperDbUser, config.collectorDbUser])],
        alertTopic: this.alerts.topic,
        logRetention: config.logRetentionDays,
      });
      const [primary, ...shards] = this.database.targets;
      if (!primary) throw new Error('the database construct returned no primary');
      viaProxy = iamConnection(
        this,
        primary.proxy,
        shards.map((s) => ({ name: s.name, access: s.proxy })),
      );
      direct = iamConnection(
        this,
        directAsAccess(primary.direct),
        shards.map((s) => ({ name: s.name, access: directAsAccess(s.direct) })),
      );
      dataApi = primary.clusterArn
        ? { clusterArn: primary.clusterArn, secret: primary.secret, databaseName: config.dbName }
        : undefined;
      observed = this.database.targets.map((t) => ({
        name: t.name,
        dimension: t.metricDimension,
        proxyName: t.dbProxy.dbProxyName,
      }));
    } else {
      const proxy: DatabaseAccess = {
        proxyEndpoint: config.dbProxyEndpoint,
        proxyResourceId: config.dbProxyResourceId,
        databaseName: config.dbName,
      };
      viaProxy = iamConnection(this, proxy);
      direct = iamConnection(this, {
        proxyEndpoint: config.dbEndpoint,
        proxyResourceId: config.dbResourceId,
        databaseName: config.dbName,
      });
      observed = [{ name: PRIMARY_TARGET, dimension: {} }];
    }

    // ── cache ──
    let redis: RedisEndpoint | undefined;
    if (localstack) {
      redis = config.localstack.redisUrl ? plainRedis(config.localstack.redisUrl) : undefined;
    } else if (vpc) {
      this.resultCache = new ResultCache(this, 'ResultCache', {
        vpc,
        nodeType: config.cacheNodeType,
        nodes: config.cacheNodes,
        authToken: config.cacheAuth,
      });
      redis = this.resultCache;
    }

    // ── API ──
    this.queryApi = new QueryApi(this, 'QueryApi', {
      ...vpcProps,
      database: viaProxy,
      dbUser: config.dbUser,
      ...(redis ? { cache: redis } : {}),
      logRetention: config.logRetentionDays,
      throttle: {
        rateLimit: config.apiThrottleRateLimit,
        burstLimit: config.apiThrottleBurstLimit,
      },
      cloudWatchRole: config.apiGatewayCloudWatchRole,
      writesAllowed: config.features.writesAllowed,
      apiKeyRequired: config.apiKeyRequired,
      ...(config.apiQuotaPerDay === undefined ? {} : { quotaPerDay: config.apiQuotaPerDay }),
      entry: entryOf('query'),
      ...(config.queryReservedConcurrency === undefined
        ? {}
        : { reservedConcurrency: config.queryReservedConcurrency }),
    });

    if (redis) {
      this.cacheSweeper = new CacheSweeper(this, 'CacheSweeper', {
        ...vpcProps,
        database: viaProxy,
        dbUser: config.sweeperDbUser,
        cache: redis,
        sweepIntervalMs: config.cacheSweepIntervalMs,
        logRetention: config.logRetentionDays,
        entry: entryOf('cache-sweeper'),
      });
    }

    // ── pipeline ──
    this.pipeline = new Pipeline(this, 'Pipeline', {
      ...vpcProps,
      viaProxy,
      direct,
      ...(dataApi ? { dataApi } : {}),
      alerts: this.alerts,
      collectorDbUser: config.collectorDbUser,
      advisorDbUser: config.advisorDbUser,
      schedules: config.schedules,
      optimizerTimeout: Duration.seconds(config.optimizerTimeoutSeconds),
      maxReceiveCount: config.optimizerMaxReceiveCount,
      statsSource: config.statsSource,
      autoApplyIndexes: config.features.autoApplyIndexes,
      ...(config.healthThresholds
        ? { healthThresholds: JSON.stringify(config.healthThresholds) }
        : {}),
      logRetention: config.logRetentionDays,
      entries: {
        collectMetrics: entryOf('collect-metrics'),
        collectSlowQueries: entryOf('collect-slow-queries'),
        optimize: entryOf('optimize'),
      },
    });

    // ── observability ──
    this.observability = new Observability(this, 'Observability', {
      dashboardName: `dbopt-${config.environmentName}`,
      alertTopic: this.alerts.topic,
      thresholds: config.thresholds,
      queryFunction: this.queryApi.handler,
      queryService: this.queryApi.handler.serviceName,
      apiName: this.queryApi.api.restApiName,
      apiStage: this.queryApi.api.deploymentStage.stageName,
      collectors: [this.pipeline.collectMetrics, this.pipeline.collectSlowQueries],
      collectMetricsService: this.pipeline.collectMetrics.serviceName,
      optimizer: this.pipeline.optimize,
      slowQueryQueue: this.pipeline.slowQueryQueue,
      deadLetterQueues: [
        { label: 'scheduler DLQ', queue: this.pipeline.scheduleDlq },
        { label: 'slow-query DLQ', queue: this.pipeline.slowQueryDlq },
      ],
      databases: observed,
      databaseName: localstack ? databaseNameOf(config.localstack.databaseUrl) : config.dbName,
    });

    new CfnOutput(this, 'QueryUrl', {
      description: 'POST /query (SigV4-signed, service execute-api)',
      value: this.queryApi.queryUrl,
    });
    new CfnOutput(this, 'ApiUrl', {
      description: 'Stage URL: POST /query, GET /health',
      value: this.queryApi.api.url,
    });
    new CfnOutput(this, 'InvokePolicyArn', {
      description: 'Managed policy to attach to API callers (execute-api:Invoke)',
      value: this.queryApi.invokePolicy.managedPolicyArn,
    });
    new CfnOutput(this, 'UsagePlanId', {
      description: 'Usage plan of stage v1 (add API keys to it when apiKeyRequired=true)',
      value: this.queryApi.usagePlan.usagePlanId,
    });
    new CfnOutput(this, 'AlertTopicArn', {
      description: 'SNS topic of alerts, suggestions, alarms and RDS events',
      value: this.alerts.topic.topicArn,
    });
    new CfnOutput(this, 'DashboardUrl', {
      description: 'CloudWatch dashboard',
      value: this.observability.dashboardUrl,
    });
    new CfnOutput(this, 'SlowQueryQueueUrl', { value: this.pipeline.slowQueryQueue.queueUrl });
    for (const target of this.database?.targets ?? []) {
      const id = outputSuffix(target.name);
      new CfnOutput(this, `ProxyEndpoint${id}`, {
        description: `${target.name}: RDS Proxy endpoint (IAM auth, TLS)`,
        value: target.proxy.proxyEndpoint,
      });
      new CfnOutput(this, `WriterEndpoint${id}`, {
        description: `${target.name}: writer endpoint (optimizer)`,
        value: target.direct.endpoint,
      });
      new CfnOutput(this, `AdminSecretArn${id}`, {
        description: `${target.name}: admin credentials (rotated every 30 days)`,
        value: target.secret.secretArn,
      });
      if (target.clusterArn) {
        new CfnOutput(this, `ClusterArn${id}`, {
          description: `${target.name}: Aurora cluster (Data API: role bootstrap)`,
          value: target.clusterArn,
        });
      }
    }
  }

  /**
   * Fixed zones instead of the AZ context lookup, which would need AWS credentials
   * (and network) at synth time.
   */
  override get availabilityZones(): string[] {
    return this.fixedAvailabilityZones;
  }
}

/** `primary` → `Primary`, `shard-1` → `Shard1`: output ids are alphanumeric. */
const outputSuffix = (name: string): string =>
  name
    .split(/[^A-Za-z0-9]+/)
    .filter((p) => p.length > 0)
    .map((p) => p[0]?.toUpperCase() + p.slice(1))
    .join('');

/** The database name in a postgres:// URL (the collectors' `database` dimension). */
const databaseNameOf = (url: string): string =>
  decodeURIComponent(new URL(url).pathname.replace(/^\//, '')) || 'postgres';
