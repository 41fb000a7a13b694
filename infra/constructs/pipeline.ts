import { Duration, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambdaEventSources from 'aws-cdk-lib/aws-lambda-event-sources';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { Alerts } from './alerts.ts';
import type { DatabaseConnection } from './database-access.ts';
import { DboptFunction } from './dbopt-function.ts';
import { schedulerPrincipal } from './scheduler-principal.ts';

/** The metrics collector runs once a minute and must end before the next start. */
export const COLLECT_METRICS_TIMEOUT = Duration.seconds(50);
/** The slow-query collector EXPLAINs up to SLOW_QUERY_TOP_N statements per target. */
export const COLLECT_SLOW_QUERIES_TIMEOUT = Duration.minutes(2);
/** SQS visibility timeout per Lambda timeout: AWS recommends at least 6×. */
export const VISIBILITY_TIMEOUT_FACTOR = 6;
/** Messages per optimizer invocation; failures are reported per message. */
export const OPTIMIZER_BATCH_SIZE = 5;
/** Concurrent optimizer invocations: each holds a direct (pinned) session per target. */
export const OPTIMIZER_MAX_CONCURRENCY = 2;

/** The Aurora Data API (STATS_SOURCE=data-api): the cluster and a secret to run as. */
export interface DataApiAccess {
  readonly clusterArn: string;
  readonly secret: secretsmanager.ISecret;
  readonly databaseName: string;
}

export interface PipelineProps {
  /** @default - outside any VPC (LocalStack) */
  readonly vpc?: ec2.IVpc;
  /** Every target through its proxy (collectors). */
  readonly viaProxy: DatabaseConnection;
  /** Every target's writer endpoint directly (optimizer: pinned EXPLAIN/HypoPG sessions). */
  readonly direct: DatabaseConnection;
  /** Used when statsSource is data-api. */
  readonly dataApi?: DataApiAccess;
  readonly alerts: Alerts;
  readonly collectorDbUser: string;
  readonly advisorDbUser: string;
  readonly schedules: { readonly collectMetrics: string; readonly collectSlowQueries: string };
  readonly optimizerTimeout: Duration;
  readonly maxReceiveCount: number;
  readonly statsSource: 'pg' | 'data-api';
  readonly autoApplyIndexes: boolean;
  /** HEALTH_THRESHOLDS of collect-metrics (JSON). @default - the built-in thresholds */
  readonly healthThresholds?: string;
  readonly logRetention: logs.RetentionDays;
  /** Entry files (absolute paths). */
  readonly entries: {
    readonly collectMetrics: string;
    readonly collectSlowQueries: string;
    readonly optimize: string;
  };
}

/**
 * The analysis pipeline:
 *
 * EventBridge Scheduler ─► collect-metrics (every minute) ─► SNS alerts, repository
 * EventBridge Scheduler ─► collect-slow-queries (every 5 minutes) ─► SQS ─► optimize ─► SNS
 *
 * Scheduler retries a failed start twice within the period, then parks the event in an
 * encrypted DLQ. The slow-query queue redrives to its DLQ after `maxReceiveCount`
 * deliveries; the optimizer reports failures per message (ReportBatchItemFailures), so one
 * bad statement does not redeliver its batch.
 */
export class Pipeline extends Construct {
  readonly collectMetrics: DboptFunction;
  readonly collectSlowQueries: DboptFunction;
  readonly optimize: DboptFunction;
  readonly slowQueryQueue: sqs.Queue;
  readonly slowQueryDlq: sqs.Queue;
  /** Scheduler events that could not start their function after the retries. */
  readonly scheduleDlq: sqs.Queue;
  readonly schedulerRole: iam.Role;
  readonly schedules: {
    readonly collectMetrics: scheduler.Schedule;
    readonly collectSlowQueries: scheduler.Schedule;
  };

  constructor(scope: Construct, id: string, props: PipelineProps) {
    super(scope, id);
    const https = ec2.Port.tcp(443);

    this.scheduleDlq = encryptedQueue(this, 'ScheduleDlq', { isDlq: true });
    this.slowQueryDlq = encryptedQueue(this, 'SlowQueryDlq', { isDlq: true });
    this.slowQueryQueue = encryptedQueue(this, 'SlowQueryQueue', {
      isDlq: false,
      visibilityTimeout: Duration.seconds(
        props.optimizerTimeout.toSeconds() * VISIBILITY_TIMEOUT_FACTOR,
      ),
      deadLetterQueue: { queue: this.slowQueryDlq, maxReceiveCount: props.maxReceiveCount },
    });

    // Both collectors read pg_stat_* the same way: through the proxy, or the Data API.
    const dataApi = props.statsSource === 'data-api' ? props.dataApi : undefined;
    const statsEnvironment: Record<string, string> = {
      STATS_SOURCE: dataApi ? 'data-api' : 'pg',
      ...(dataApi
        ? {
            DATA_API_RESOURCE_ARN: dataApi.clusterArn,
            DATA_API_SECRET_ARN: dataApi.secret.secretArn,
            DATA_API_DATABASE: dataApi.databaseName,
          }
        : {}),
    };

    // ── collect-metrics ──
    this.collectMetrics = new DboptFunction(this, 'CollectMetrics', {
      entry: props.entries.collectMetrics,
      description: 'dbopt collect-metrics: pg_stat_* snapshots, deltas, thresholds, alerts',
      serviceName: 'dbopt-collect-metrics',
      ...(props.vpc ? { vpc: props.vpc } : {}),
      memorySizeMb: 512,
      timeout: COLLECT_METRICS_TIMEOUT,
      logRetention: props.logRetention,
      environment: {
        ...props.viaProxy.environmentFor(props.collectorDbUser),
        ...statsEnvironment,
        ALERT_TOPIC_ARN: props.alerts.topic.topicArn,
        ...(props.healthThresholds ? { HEALTH_THRESHOLDS: props.healthThresholds } : {}),
      },
    });
    props.viaProxy.connect(this.collectMetrics, props.collectorDbUser);
    props.alerts.grantPublish(this.collectMetrics.role);
    this.collectMetrics.allowEgressInVpc(https, 'AWS APIs through VPC endpoints');

    // ── collect-slow-queries ──
    this.collectSlowQueries = new DboptFunction(this, 'CollectSlowQueries', {
      entry: props.entries.collectSlowQueries,
      description: 'dbopt collect-slow-queries: one SQS message per slow statement fingerprint',
      serviceName: 'dbopt-collect-slow-queries',
      ...(props.vpc ? { vpc: props.vpc } : {}),
      memorySizeMb: 512,
      timeout: COLLECT_SLOW_QUERIES_TIMEOUT,
      logRetention: props.logRetention,
      usesSqlParser: true,
      environment: {
        ...props.viaProxy.environmentFor(props.collectorDbUser),
        ...statsEnvironment,
        SLOW_QUERY_QUEUE_URL: this.slowQueryQueue.queueUrl,
      },
    });
    props.viaProxy.connect(this.collectSlowQueries, props.collectorDbUser);
    this.slowQueryQueue.grantSendMessages(this.collectSlowQueries.role);
    this.collectSlowQueries.allowEgressInVpc(https, 'AWS APIs through VPC endpoints');
    if (dataApi) {
      for (const collector of [this.collectMetrics, this.collectSlowQueries]) {
        collector.role.addToPrincipalPolicy(
          new iam.PolicyStatement({
            actions: ['rds-data:ExecuteStatement'],
            resources: [dataApi.clusterArn],
          }),
        );
        iam.Grant.addToPrincipal({
          grantee: collector.role,
          actions: ['secretsmanager:GetSecretValue'],
          resourceArns: [dataApi.secret.secretArn],
        });
      }
    }

    // ── optimize ──
    this.optimize = new DboptFunction(this, 'Optimize', {
      entry: props.entries.optimize,
      description: 'dbopt optimize: EXPLAIN, HypoPG what-if and rewrites per slow statement',
      serviceName: 'dbopt-optimize',
      ...(props.vpc ? { vpc: props.vpc } : {}),
      memorySizeMb: 1024,
      timeout: props.optimizerTimeout,
      logRetention: props.logRetention,
      usesSqlParser: true,
      environment: {
        ...props.direct.environmentFor(props.advisorDbUser),
        ALERT_TOPIC_ARN: props.alerts.topic.topicArn,
        ADVISOR_AUTO_APPLY: String(props.autoApplyIndexes),
      },
    });
    props.direct.connect(this.optimize, props.advisorDbUser);
    props.alerts.grantPublish(this.optimize.role);
    this.optimize.allowEgressInVpc(https, 'AWS APIs through VPC endpoints');
    this.optimize.fn.addEventSource(
      new lambdaEventSources.SqsEventSource(this.slowQueryQueue, {
        batchSize: OPTIMIZER_BATCH_SIZE,
        reportBatchItemFailures: true,
        maxConcurrency: OPTIMIZER_MAX_CONCURRENCY,
      }),
    );

    // ── schedules ──
    const collectorArns = [
      this.collectMetrics.fn.functionArn,
      this.collectSlowQueries.fn.functionArn,
    ];
    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      description: 'EventBridge Scheduler: start the dbopt collectors, park failed starts',
      assumedBy: schedulerPrincipal(this),
      inlinePolicies: {
        StartCollectors: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              actions: ['lambda:InvokeFunction'],
              resources: collectorArns,
            }),
            new iam.PolicyStatement({
              actions: ['sqs:SendMessage'],
              resources: [this.scheduleDlq.queueArn],
            }),
          ],
        }),
      },
    });
    this.schedules = {
      collectMetrics: this.schedule('CollectMetricsSchedule', {
        description: 'Start dbopt collect-metrics',
        expression: props.schedules.collectMetrics,
        fn: this.collectMetrics,
        maxEventAgeSeconds: 60,
      }),
      collectSlowQueries: this.schedule('CollectSlowQueriesSchedule', {
        description: 'Start dbopt collect-slow-queries',
        expression: props.schedules.collectSlowQueries,
        fn: this.collectSlowQueries,
        maxEventAgeSeconds: 300,
      }),
    };
    for (const fn of [this.collectMetrics, this.collectSlowQueries]) {
      // Scheduler already retried; Lambda's own async retries would overlap the next run.
      fn.fn.configureAsyncInvoke({ retryAttempts: 0, maxEventAge: Duration.minutes(5) });
    }
  }

  private schedule(
    id: string,
    options: {
      description: string;
      expression: string;
      fn: DboptFunction;
      maxEventAgeSeconds: number;
    },
  ): scheduler.Schedule {
    const role = this.schedulerRole;
    const arn = options.fn.fn.functionArn;
    const dlqArn = this.scheduleDlq.queueArn;
    return new scheduler.Schedule(this, id, {
      description: options.description,
      schedule: scheduler.ScheduleExpression.expression(options.expression),
      timeWindow: scheduler.TimeWindow.off(),
      // Own target (not LambdaInvoke, whose grant covers every version and alias `<arn>:*`).
      target: {
        bind: () => ({
          arn,
          role,
          retryPolicy: {
            maximumRetryAttempts: 2,
            maximumEventAgeInSeconds: options.maxEventAgeSeconds,
          },
          deadLetterConfig: { arn: dlqArn },
        }),
      },
    });
  }
}

/** SSE-SQS (service principals such as Scheduler can write to it, unlike alias/aws/sqs), TLS only. */
const encryptedQueue = (
  scope: Construct,
  id: string,
  options: {
    isDlq: boolean;
    visibilityTimeout?: Duration;
    deadLetterQueue?: sqs.DeadLetterQueue;
  },
): sqs.Queue => {
  const queue = new sqs.Queue(scope, id, {
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    retentionPeriod: Duration.days(options.isDlq ? 14 : 4),
    ...(options.visibilityTimeout ? { visibilityTimeout: options.visibilityTimeout } : {}),
    ...(options.deadLetterQueue ? { deadLetterQueue: options.deadLetterQueue } : {}),
  });
  if (options.isDlq) {
    Validations.of(queue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself a dead-letter queue; its depth is alarmed on.',
    });
  }
  return queue;
};
