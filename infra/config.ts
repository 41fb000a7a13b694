import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { z } from 'zod';
import { parseHealthThresholds } from '#shared/analysis';

/**
 * Deploy-time configuration, read from CDK context (`cdk.json` → `context`, or `-c key=value`).
 *
 * Every key is optional and every default lives in this schema, so `cdk synth` works offline
 * with no context at all. Values given with `-c` arrive as strings, hence the coercions.
 * The defaults are placeholders for an offline synth; a real deployment passes at least
 * `account`, `region`, `dbProxyEndpoint` and `dbProxyResourceId`.
 *
 * @example
 * npx cdk synth -c account=123456789012 -c region=eu-west-1 \
 *   -c dbProxyEndpoint=dbopt.proxy-abc.eu-west-1.rds.amazonaws.com -c dbProxyResourceId=prx-0abc
 */
const bool = z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]);

/** A list given as a JSON array in cdk.json or as `a,b` on the command line. */
const stringList = z.union([
  z.array(z.string().min(1)),
  z.string().transform((v) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0),
  ),
]);

const retentionDays = z.coerce
  .number()
  .int()
  .refine((days) => Object.values(RetentionDays).includes(days), {
    message: 'must be a CloudWatch Logs retention period (1, 3, 5, 7, 14, 30, 60, 90, …)',
  })
  // Safe: the refinement above admits only values of the enum.
  .transform((days) => days as RetentionDays);

/** An object given in cdk.json, or as a JSON string with `-c key='{"…":…}'`. */
const jsonObject = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => {
    if (typeof v !== 'string') return v;
    try {
      return JSON.parse(v) as unknown;
    } catch {
      return v; // the schema then reports "expected object"
    }
  }, schema);

/** A list of objects given in cdk.json, or as a JSON string on the command line. */
const jsonArray = <T extends z.ZodType>(item: T) => jsonObject(z.array(item));

const count = () => z.coerce.number().int();

/** EventBridge Scheduler expression: `rate(…)` or `cron(…)`. */
const scheduleExpression = z
  .string()
  .regex(
    /^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\([^()]+\))$/,
    'must be an EventBridge Scheduler expression such as rate(5 minutes) or cron(0/5 * * * ? *)',
  );

/** Alert severities, least to most severe (shared/alerts). SNS filter policies match them. */
export const ALERT_SEVERITIES = ['WARNING', 'DEGRADED', 'CRITICAL'] as const;

const DatabaseSchema = z
  .object({
    /**
     * managed: the stack creates the database(s), RDS Proxy and secrets.
     * existing: bring your own proxy (dbProxyEndpoint/dbProxyResourceId) and, for the
     * optimizer, the direct endpoint (dbEndpoint/dbResourceId).
     */
    mode: z.enum(['managed', 'existing']).default('managed'),
    /** aurora-serverless-v2 (default), aurora-provisioned, or rds (RDS for PostgreSQL instance). */
    engine: z
      .enum(['aurora-serverless-v2', 'aurora-provisioned', 'rds'])
      .default('aurora-serverless-v2'),
    /** Instance class for aurora-provisioned and rds (without the `db.` prefix). */
    instanceClass: z
      .string()
      .regex(
        /^[a-z][a-z0-9]*\.[a-z0-9]+$/,
        'must be an instance class such as r6g.large or t4g.medium',
      )
      .default('t4g.medium'),
    /** Aurora Serverless v2 capacity range in ACUs (0 lets the cluster pause when idle). */
    minCapacityAcu: z.coerce.number().min(0).max(256).default(0.5),
    maxCapacityAcu: z.coerce.number().min(1).max(256).default(4),
    /**
     * Readers per cluster (Aurora) in another AZ; for rds, >0 means a Multi-AZ standby.
     * 0 is a single-AZ development setting.
     */
    readers: count().min(0).max(3).default(1),
    /** Automated backup retention (days); also the point-in-time-recovery window. */
    backupRetentionDays: count().min(1).max(35).default(7),
    /** Refuse deletion; removal keeps a final snapshot either way. */
    deletionProtection: bool.default(true),
  })
  .refine((d) => d.minCapacityAcu <= d.maxCapacityAcu, {
    path: ['minCapacityAcu'],
    message: 'must not exceed maxCapacityAcu',
  });

const SchedulesSchema = z.object({
  /** collect-metrics: pg_stat_* snapshots, thresholds and trends. */
  collectMetrics: scheduleExpression.default('rate(1 minute)'),
  /** collect-slow-queries: one SQS message per slow statement fingerprint. */
  collectSlowQueries: scheduleExpression.default('rate(5 minutes)'),
});

const ThresholdsSchema = z.object({
  /** Alarm when the query API's p99 latency (ms) stays above this for 3 of 5 minutes. */
  queryLatencyP99Ms: z.coerce.number().positive().default(1_000),
  /** Anomaly band width (standard deviations) of the query latency anomaly alarm. */
  queryLatencyAnomalyStdDevs: z.coerce.number().positive().max(10).default(3),
  /** Alarm when the cache hit rate (percent, L1+L2) stays below this (with traffic). */
  cacheHitRateMinPercent: z.coerce.number().min(0).max(100).default(20),
  /** Alarm when a cluster's connections exceed this (Aurora DatabaseConnections). */
  dbConnectionsMax: count().positive().default(200),
  /** Alarm when RDS Proxy holds more client connections pinned to a session than this. */
  pinnedConnectionsMax: count().min(0).default(10),
  /** Alarm when the slow-query collector enqueues more statements per 5 minutes. */
  slowQueriesPer5MinMax: count().positive().default(50),
  /** Alarm when the API answers more 5xx per 5 minutes. */
  apiServerErrorsPer5MinMax: count().min(0).default(5),
});

const SubscriptionSchema = z.object({
  protocol: z.enum(['email', 'https']),
  /** An e-mail address or an https:// URL. */
  endpoint: z.string().min(3),
  /** Severities delivered (SNS filter policy on the `severity` message attribute). Default: all. */
  severities: z.array(z.enum(ALERT_SEVERITIES)).min(1).optional(),
});

const FeaturesSchema = z.object({
  /** Allow INSERT/UPDATE/DELETE through the query API (QUERY_ALLOW_WRITES). */
  writesAllowed: bool.default(false),
  /** Let the optimizer apply verified indexes (CREATE INDEX CONCURRENTLY) itself. */
  autoApplyIndexes: bool.default(false),
});

const LocalstackSchema = z.object({
  /** PostgreSQL the functions use under LocalStack (RDS is a paid LocalStack feature). */
  databaseUrl: z
    .url({ protocol: /^postgres(ql)?$/ })
    .default('postgresql://postgres:postgres@host.docker.internal:5432/postgres'),
  /** Redis under LocalStack (ElastiCache is a paid feature); empty: L1 cache only. */
  redisUrl: z.url({ protocol: /^rediss?$/ }).optional(),
});

const InfraContextSchema = z.object({
  /**
   * aws: the full platform. localstack: functions, REST API, SNS, SQS, Scheduler and alarms
   * only; database and Redis come as plain endpoints (`localstack` key).
   */
  profile: z.enum(['aws', 'localstack']).default('aws'),
  /** Environment name (dev, staging, prod …): tags every resource and names the dashboard. */
  environmentName: z
    .string()
    .regex(
      /^[a-z][a-z0-9-]{0,19}$/,
      'must be 1–20 lowercase letters, digits or "-", starting with a letter',
    )
    .default('dev'),
  /** Stack name; also the prefix of every physical name CloudFormation generates. */
  stackName: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9-]*$/)
    .default('Dbopt'),
  /** Target account. The default is a placeholder so synth needs no credentials. */
  account: z
    .string()
    .regex(/^\d{12}$/, 'must be a 12-digit AWS account id')
    .default('000000000000'),
  region: z
    .string()
    .regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be a region code such as us-east-1')
    .default('us-east-1'),
  /**
   * Availability zones of the VPC. Fixed so synth never runs the AZ context lookup.
   * Default: `<region>a` and `<region>b`.
   */
  availabilityZones: stringList.optional(),
  vpcCidr: z
    .string()
    .regex(/^\d{1,3}(\.\d{1,3}){3}\/(1[6-9]|2[0-4])$/, 'must be an IPv4 CIDR from /16 to /24')
    .default('10.40.0.0/16'),

  /** RDS Proxy endpoint the query function connects to (TLS, IAM auth). */
  dbProxyEndpoint: z.string().min(1).default('proxy.example.internal'),
  /** Proxy resource id (`prx-…`), the resource part of the `rds-db:connect` ARN. */
  dbProxyResourceId: z
    .string()
    .regex(/^prx-[a-z0-9]+$/, 'must be an RDS Proxy resource id such as prx-0123456789abcdef0')
    .default('prx-placeholder'),
  dbName: z.string().min(1).default('postgres'),
  /** Database role of the query API (IAM auth enabled on it: `GRANT rds_iam`). */
  dbUser: z.string().min(1).default('dbopt_query'),

  /** Steady-state requests per second on the API stage. */
  apiThrottleRateLimit: z.coerce.number().positive().default(100),
  /** Burst bucket size on the API stage. */
  apiThrottleBurstLimit: z.coerce.number().int().positive().default(200),
  /** Require an API key besides SigV4, so the usage plan's per-key limits apply. */
  apiKeyRequired: bool.default(false),
  /** Requests per day per API key (usage plan quota); unset: no quota. */
  apiQuotaPerDay: z.coerce.number().int().positive().optional(),
  /**
   * Create the account-wide API Gateway → CloudWatch Logs role (`AWS::ApiGateway::Account`).
   * Set false when the account already has one managed elsewhere.
   */
  apiGatewayCloudWatchRole: bool.default(true),

  /** Retention of every log group the stack creates. */
  logRetentionDays: retentionDays.default(RetentionDays.ONE_MONTH),
  /** Reserved concurrency of the query function; unset leaves it on the account pool. */
  queryReservedConcurrency: z.coerce.number().int().positive().optional(),

  /** ElastiCache node type of the result cache (Redis OSS, cluster mode disabled). */
  cacheNodeType: z
    .string()
    .regex(
      /^cache\.[a-z0-9]+\.[a-z0-9]+$/,
      'must be an ElastiCache node type such as cache.t4g.small',
    )
    .default('cache.t4g.small'),
  /**
   * Nodes of the result cache: one primary plus replicas. From 2 the group has automatic
   * failover across availability zones; 1 (a development setting) has neither.
   */
  cacheNodes: z.coerce.number().int().min(1).max(6).default(2),
  /**
   * How often the cache sweeper compares write counters (its CACHE_SWEEP_INTERVAL_MS). At most
   * a minute: one invocation, started every minute, must sweep at least once.
   */
  cacheSweepIntervalMs: z.coerce.number().int().min(1_000).max(60_000).default(5_000),
  /**
   * Database role of the cache sweeper. It reads only pg_stat_user_tables and pg_class, which
   * every role may read, so a role with nothing but `rds_iam` is enough. Default: dbUser.
   */
  sweeperDbUser: z.string().min(1).optional(),
  /** Require Redis AUTH (token generated into Secrets Manager). */
  cacheAuth: bool.default(true),

  /** Database(s): managed by the stack or brought along (see DatabaseSchema). */
  database: jsonObject(DatabaseSchema).default(DatabaseSchema.parse({})),
  /**
   * Extra shards, each its own cluster and proxy next to the primary (managed mode only).
   * Names as in SHARD_MAP.
   */
  shards: stringList
    .pipe(
      z.array(
        z.string().regex(/^[a-z][a-z0-9-]{0,30}$/, 'shard names: lowercase letters, digits, "-"'),
      ),
    )
    .default([]),
  /** Database role of the metrics and slow-query collectors (pg_monitor + rds_iam). */
  collectorDbUser: z.string().min(1).default('dbopt_monitor'),
  /** Database role of the optimizer (its own role: EXPLAIN/HypoPG sessions pin connections). */
  advisorDbUser: z.string().min(1).default('dbopt_advisor'),
  /** Existing mode: the writer (cluster or instance) endpoint the optimizer connects to directly. */
  dbEndpoint: z.string().min(1).default('db.example.internal'),
  /** Existing mode: the cluster (`cluster-…`) or instance (`db-…`) resource id of dbEndpoint. */
  dbResourceId: z
    .string()
    .regex(/^(cluster|db)-[A-Z0-9]+$/, 'must be a resource id such as cluster-ABCDEFGHIJKL0123')
    .default('cluster-PLACEHOLDER'),
  /**
   * How the slow-query collector reads pg_stat_statements: `pg` through the proxy, or
   * `data-api` (Aurora Data API, runs as the admin secret; no VPC path needed).
   */
  statsSource: z.enum(['pg', 'data-api']).default('pg'),
  /** Optimizer Lambda timeout (seconds); the queue's visibility timeout is 6× this. */
  optimizerTimeoutSeconds: count().min(10).max(900).default(120),
  /** Deliveries of a slow-query message before it moves to the dead-letter queue. */
  optimizerMaxReceiveCount: count().min(1).max(10).default(3),
  schedules: jsonObject(SchedulesSchema).default(SchedulesSchema.parse({})),
  thresholds: jsonObject(ThresholdsSchema).default(ThresholdsSchema.parse({})),
  /**
   * Overrides of collect-metrics' health thresholds (HEALTH_THRESHOLDS, merged over the
   * defaults of shared/analysis), e.g. `{"connectionUtilisation":{"critical":0.9}}`.
   * Checked at synth with the same parser the function uses.
   */
  healthThresholds: jsonObject(z.record(z.string(), z.unknown())).optional(),
  /** Alert subscriptions, e.g. [{ "protocol": "email", "endpoint": "ops@example.com", "severities": ["CRITICAL"] }]. */
  alertSubscriptions: jsonArray(SubscriptionSchema).default([]),
  features: jsonObject(FeaturesSchema).default(FeaturesSchema.parse({})),
  /** Plain endpoints for profile=localstack. */
  localstack: jsonObject(LocalstackSchema).default(LocalstackSchema.parse({})),
});

const InfraConfigSchema = InfraContextSchema.transform((c) => ({
  ...c,
  sweeperDbUser: c.sweeperDbUser ?? c.dbUser,
  availabilityZones:
    c.availabilityZones && c.availabilityZones.length > 0
      ? c.availabilityZones
      : [`${c.region}a`, `${c.region}b`],
})).superRefine((c, ctx) => {
  if (c.availabilityZones.length < 2) {
    ctx.addIssue({
      code: 'custom',
      path: ['availabilityZones'],
      message: 'give at least two availability zones',
    });
  }
  if (c.healthThresholds) {
    const parsed = parseHealthThresholds(JSON.stringify(c.healthThresholds));
    if (!parsed.ok) {
      for (const problem of parsed.problems) {
        ctx.addIssue({ code: 'custom', path: ['healthThresholds'], message: problem });
      }
    }
  }
  for (const [i, sub] of c.alertSubscriptions.entries()) {
    const ok =
      sub.protocol === 'email'
        ? /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(sub.endpoint)
        : /^https:\/\/\S+$/.test(sub.endpoint);
    if (!ok) {
      ctx.addIssue({
        code: 'custom',
        path: ['alertSubscriptions', i, 'endpoint'],
        message: `must be ${sub.protocol === 'email' ? 'an e-mail address' : 'an https:// URL'}`,
      });
    }
  }
  if (
    c.statsSource === 'data-api' &&
    (c.database.mode !== 'managed' || c.database.engine === 'rds' || c.profile !== 'aws')
  ) {
    ctx.addIssue({
      code: 'custom',
      path: ['statsSource'],
      message: 'data-api needs a managed Aurora database (database.engine aurora-*)',
    });
  }
  if (c.shards.length > 0 && c.database.mode !== 'managed') {
    ctx.addIssue({
      code: 'custom',
      path: ['shards'],
      message: 'shards need database.mode=managed (existing mode brings one proxy)',
    });
  }
  if (new Set(c.shards).size !== c.shards.length || c.shards.includes('primary')) {
    ctx.addIssue({
      code: 'custom',
      path: ['shards'],
      message: 'shard names must be unique and not "primary" (the primary is always there)',
    });
  }
  for (const az of c.availabilityZones) {
    if (!az.startsWith(c.region)) {
      ctx.addIssue({
        code: 'custom',
        path: ['availabilityZones'],
        message: `${az} is not in region ${c.region}`,
      });
    }
  }
});

export type InfraConfig = Readonly<z.output<typeof InfraConfigSchema>>;

/** The context keys the schema reads; anything else in the context is CDK's business. */
export const INFRA_CONTEXT_KEYS = Object.freeze(Object.keys(InfraContextSchema.shape));

export class InfraConfigError extends Error {
  readonly code = 'INFRA_CONFIG';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'InfraConfigError';
  }
}

/**
 * Parses infra configuration from a plain object (the context values). Throws one
 * {@link InfraConfigError} that names every bad key.
 */
export const parseInfraConfig = (raw: Readonly<Record<string, unknown>>): InfraConfig => {
  const cleaned = Object.fromEntries(
    Object.entries(raw).filter(([, v]) => v !== undefined && v !== null && v !== ''),
  );
  const parsed = InfraConfigSchema.safeParse(cleaned);
  if (!parsed.success) {
    const keys = [...new Set(parsed.error.issues.map((i) => String(i.path[0] ?? '(root)')))];
    throw new InfraConfigError(
      `Invalid CDK context (${keys.join(', ')}):\n${z.prettifyError(parsed.error)}`,
    );
  }
  return Object.freeze(parsed.data);
};

/** Reads {@link InfraConfig} from the CDK context visible at `scope` (normally the App). */
export const readInfraConfig = (scope: Construct): InfraConfig =>
  parseInfraConfig(
    Object.fromEntries(INFRA_CONTEXT_KEYS.map((key) => [key, scope.node.tryGetContext(key)])),
  );
