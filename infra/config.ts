import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { z } from 'zod';

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

const InfraContextSchema = z.object({
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
