import { Duration } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import { Construct } from 'constructs';
import { functionEntry } from '../paths.ts';
import type { DatabaseConnection } from './database-access.ts';
import { DboptFunction } from './dbopt-function.ts';
import type { RedisEndpoint } from './result-cache.ts';
import { schedulerPrincipal } from './scheduler-principal.ts';

/** EventBridge Scheduler's finest rate: the sweeper is started once a minute. */
export const SWEEPER_SCHEDULE = scheduler.ScheduleExpression.rate(Duration.minutes(1));
/**
 * The handler sweeps until 5 s before its deadline, so each invocation sweeps ~65 s and
 * overlaps the next one by a few seconds: there is never a minute without a sweeper.
 * Overlap is harmless (bumping a version twice only costs a cache miss).
 */
export const SWEEPER_FUNCTION_TIMEOUT = Duration.seconds(70);

export interface CacheSweeperProps {
  /** @default - outside any VPC (LocalStack) */
  readonly vpc?: ec2.IVpc;
  /** The primary (and shards) through RDS Proxy, or a plain URL (LocalStack). */
  readonly database: DatabaseConnection;
  /** Database role the sweeper connects as (reads pg_stat_user_tables and pg_class only). */
  readonly dbUser: string;
  readonly cache: RedisEndpoint;
  /** CACHE_SWEEP_INTERVAL_MS of the handler. */
  readonly sweepIntervalMs: number;
  readonly logRetention: logs.RetentionDays;
  /** @default functions/cache-sweeper/handler.ts */
  readonly entry?: string;
}

/**
 * The freshness sweeper: a Lambda started every minute by EventBridge Scheduler that, for the
 * whole invocation, diffs PostgreSQL's table write counters every CACHE_SWEEP_INTERVAL_MS and
 * bumps the cache versions of tables written outside the query API.
 *
 * No reserved concurrency: two overlapping invocations are safe, and a cap of one would hold
 * each minute's start back (throttled, retried) until the previous run has ended.
 */
export class CacheSweeper extends Construct {
  readonly handler: DboptFunction;
  readonly schedule: scheduler.Schedule;
  /** The role EventBridge Scheduler assumes: lambda:InvokeFunction on the sweeper only. */
  readonly schedulerRole: iam.Role;

  constructor(scope: Construct, id: string, props: CacheSweeperProps) {
    super(scope, id);

    this.handler = new DboptFunction(this, 'Handler', {
      entry: props.entry ?? functionEntry('cache-sweeper'),
      description: 'dbopt cache sweeper: bumps cache versions of tables written out of band',
      serviceName: 'dbopt-cache-sweeper',
      ...(props.vpc ? { vpc: props.vpc } : {}),
      memorySizeMb: 256,
      timeout: SWEEPER_FUNCTION_TIMEOUT,
      logRetention: props.logRetention,
      environment: {
        ...props.database.environmentFor(props.dbUser),
        REDIS_URL: props.cache.redisUrl,
        CACHE_SWEEP_INTERVAL_MS: String(props.sweepIntervalMs),
      },
    });
    props.cache.allowFrom(this.handler);
    props.database.connect(this.handler, props.dbUser);
    // A failed or throttled run is replaced by next minute's, not retried on top of it.
    this.handler.fn.configureAsyncInvoke({ retryAttempts: 0, maxEventAge: Duration.minutes(1) });

    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      description: 'EventBridge Scheduler: start the dbopt cache sweeper',
      assumedBy: schedulerPrincipal(this),
      inlinePolicies: {
        InvokeSweeper: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              actions: ['lambda:InvokeFunction'],
              resources: [this.handler.fn.functionArn],
            }),
          ],
        }),
      },
    });

    const role = this.schedulerRole;
    const functionArn = this.handler.fn.functionArn;
    this.schedule = new scheduler.Schedule(this, 'Schedule', {
      description: 'Start the dbopt cache sweeper every minute',
      schedule: SWEEPER_SCHEDULE,
      timeWindow: scheduler.TimeWindow.off(),
      // A target of our own rather than LambdaInvoke, whose grant also covers every version
      // and alias (`<arn>:*`) of the function.
      target: {
        bind: () => ({
          arn: functionArn,
          role,
          // Late starts are worthless: the next one comes within a minute.
          retryPolicy: { maximumRetryAttempts: 2, maximumEventAgeInSeconds: 60 },
        }),
      },
    });
  }
}
