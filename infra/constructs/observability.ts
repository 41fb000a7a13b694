import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { InfraConfig } from '../config.ts';
import type { DboptFunction } from './dbopt-function.ts';

/** Namespace of every EMF metric the functions publish (METRICS_NAMESPACE). */
export const METRICS_NAMESPACE = 'dbopt';

export interface ObservedDatabase {
  readonly name: string;
  /** DBClusterIdentifier (Aurora) or DBInstanceIdentifier (RDS). */
  readonly dimension: Readonly<Record<string, string>>;
  readonly proxyName?: string;
}

export interface ObservabilityProps {
  readonly dashboardName: string;
  readonly alertTopic: sns.ITopic;
  readonly thresholds: InfraConfig['thresholds'];
  readonly queryFunction: DboptFunction;
  /** Powertools service name of the query function (the `service` dimension). */
  readonly queryService: string;
  readonly apiName: string;
  readonly apiStage: string;
  readonly collectors: readonly DboptFunction[];
  readonly collectMetricsService: string;
  readonly optimizer: DboptFunction;
  readonly slowQueryQueue: sqs.IQueue;
  readonly deadLetterQueues: readonly { readonly label: string; readonly queue: sqs.IQueue }[];
  /** Targets named as in the collectors' `target` dimension, with RDS dimensions when managed. */
  readonly databases: readonly ObservedDatabase[];
  readonly databaseName: string;
}

const FIVE_MINUTES = Duration.minutes(5);
const ONE_MINUTE = Duration.minutes(1);

/**
 * One dashboard and the alarms behind it, every alarm (and its recovery) notifying the
 * alert topic:
 * - query API latency p50/p99 (EMF `QueryDuration`), a static p99 alarm and an
 *   anomaly-detection alarm on the average;
 * - cache hit rate = (CacheHitL1 + CacheHitL2) / (hits + CacheMiss), by metric math;
 * - database connections per target and RDS Proxy pinned sessions;
 * - slow statements enqueued (SQS NumberOfMessagesSent on the slow-query queue);
 * - dead-letter queue depth (scheduler starts, slow-query messages);
 * - collector health: Lambda errors, `TargetUp` and `CollectFailed` per target.
 */
export class Observability extends Construct {
  readonly dashboard: cloudwatch.Dashboard;
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: ObservabilityProps) {
    super(scope, id);
    const t = props.thresholds;
    const alarmAction = new actions.SnsAction(props.alertTopic);
    const emf = (
      metricName: string,
      statistic: string,
      dimensions: Record<string, string>,
      period = ONE_MINUTE,
    ) =>
      new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName,
        statistic,
        period,
        dimensionsMap: dimensions,
      });
    const query = { service: props.queryService };

    // ── query API ──
    const p50 = emf('QueryDuration', 'p50', query).with({ label: 'p50 (ms)' });
    const p99 = emf('QueryDuration', 'p99', query).with({ label: 'p99 (ms)' });
    const avg = emf('QueryDuration', 'Average', query);
    this.alarm('QueryLatencyP99', alarmAction, {
      metric: p99,
      threshold: t.queryLatencyP99Ms,
      evaluationPeriods: 5,
      datapointsToAlarm: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      alarmDescription: `Query API p99 latency above ${t.queryLatencyP99Ms} ms (3 of 5 minutes)`,
    });
    this.anomalyAlarm(alarmAction, avg, t.queryLatencyAnomalyStdDevs);

    const hits = new cloudwatch.MathExpression({
      expression: 'l1 + l2',
      usingMetrics: {
        l1: emf('CacheHitL1', 'Sum', query, FIVE_MINUTES),
        l2: emf('CacheHitL2', 'Sum', query, FIVE_MINUTES),
      },
      period: FIVE_MINUTES,
    });
    const hitRate = new cloudwatch.MathExpression({
      // FILL(…, 0): a minute with hits and no misses still has a miss datapoint of 0.
      expression: 'IF((h + FILL(m, 0)) > 0, 100 * h / (h + FILL(m, 0)))',
      usingMetrics: { h: hits, m: emf('CacheMiss', 'Sum', query, FIVE_MINUTES) },
      label: 'cache hit rate (%)',
      period: FIVE_MINUTES,
    });
    this.alarm('CacheHitRate', alarmAction, {
      metric: hitRate,
      threshold: t.cacheHitRateMinPercent,
      evaluationPeriods: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      // No traffic → no datapoint → not an alarm.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: `Result cache hit rate below ${t.cacheHitRateMinPercent}% for 15 minutes`,
    });
    const serverErrors = new cloudwatch.Metric({
      namespace: 'AWS/ApiGateway',
      metricName: '5XXError',
      statistic: 'Sum',
      period: FIVE_MINUTES,
      dimensionsMap: { ApiName: props.apiName, Stage: props.apiStage },
    });
    this.alarm('ApiServerErrors', alarmAction, {
      metric: serverErrors,
      threshold: t.apiServerErrorsPer5MinMax,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: `Query API answered more than ${t.apiServerErrorsPer5MinMax} 5xx in 5 minutes`,
    });

    // ── databases ──
    const connections: cloudwatch.IMetric[] = [];
    const pinned: cloudwatch.IMetric[] = [];
    for (const db of props.databases) {
      if (Object.keys(db.dimension).length > 0) {
        const metric = new cloudwatch.Metric({
          namespace: 'AWS/RDS',
          metricName: 'DatabaseConnections',
          statistic: 'Maximum',
          period: ONE_MINUTE,
          dimensionsMap: { ...db.dimension },
          label: db.name,
        });
        connections.push(metric);
        this.alarm(`DbConnections${suffix(db.name)}`, alarmAction, {
          metric,
          threshold: t.dbConnectionsMax,
          evaluationPeriods: 5,
          datapointsToAlarm: 3,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
          alarmDescription: `${db.name}: more than ${t.dbConnectionsMax} database connections`,
        });
      }
      if (db.proxyName) {
        const metric = new cloudwatch.Metric({
          namespace: 'AWS/RDS',
          metricName: 'DatabaseConnectionsCurrentlySessionPinned',
          statistic: 'Maximum',
          period: ONE_MINUTE,
          dimensionsMap: { ProxyName: db.proxyName },
          label: `${db.name} pinned`,
        });
        pinned.push(metric);
        this.alarm(`ProxyPinned${suffix(db.name)}`, alarmAction, {
          metric,
          threshold: t.pinnedConnectionsMax,
          evaluationPeriods: 5,
          datapointsToAlarm: 3,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
          alarmDescription:
            `${db.name}: more than ${t.pinnedConnectionsMax} proxy connections pinned to a ` +
            'session (a SET or temp table in application SQL defeats multiplexing)',
        });
      }
    }

    // ── pipeline ──
    const slowQueries = props.slowQueryQueue.metricNumberOfMessagesSent({
      period: FIVE_MINUTES,
      statistic: 'Sum',
      label: 'slow statements enqueued',
    });
    this.alarm('SlowQueries', alarmAction, {
      metric: slowQueries,
      threshold: t.slowQueriesPer5MinMax,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: `More than ${t.slowQueriesPer5MinMax} slow statements in 5 minutes`,
    });
    const dlqDepths = props.deadLetterQueues.map(({ label, queue }) => {
      const metric = queue.metricApproximateNumberOfMessagesVisible({
        period: FIVE_MINUTES,
        statistic: 'Maximum',
        label,
      });
      this.alarm(`Dlq${suffix(label)}`, alarmAction, {
        metric,
        threshold: 0,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: `${label}: messages in the dead-letter queue (inspect, then redrive)`,
      });
      return metric;
    });

    const collectorErrors = [...props.collectors, props.optimizer].map((fn) => {
      const metric = fn.fn.metricErrors({ period: FIVE_MINUTES, statistic: 'Sum' });
      this.alarm(`Errors${suffix(fn.node.id)}`, alarmAction, {
        metric,
        threshold: 0,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: `${fn.node.id}: Lambda invocation errors`,
      });
      return metric.with({ label: fn.node.id });
    });
    const targetUp = props.databases.map((db) => {
      const metric = emf('TargetUp', 'Minimum', {
        service: props.collectMetricsService,
        target: db.name,
        database: props.databaseName,
      }).with({ label: `${db.name} up` });
      this.alarm(`TargetUp${suffix(db.name)}`, alarmAction, {
        metric,
        threshold: 1,
        evaluationPeriods: 3,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        // The collector not reporting at all is as bad as reporting the target down.
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
        alarmDescription: `${db.name}: unreachable by collect-metrics for 3 minutes`,
      });
      return metric;
    });
    // A reachable target whose statistics read failed (permissions, timeouts): CollectFailed 1.
    const collectFailed = props.databases.map((db) => {
      const metric = emf('CollectFailed', 'Maximum', {
        service: props.collectMetricsService,
        target: db.name,
        database: props.databaseName,
      }).with({ label: `${db.name} read failed` });
      this.alarm(`CollectFailed${suffix(db.name)}`, alarmAction, {
        metric,
        threshold: 0,
        evaluationPeriods: 5,
        datapointsToAlarm: 3,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: `${db.name}: collect-metrics could not read its statistics (3 of 5 minutes)`,
      });
      return metric;
    });

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: props.dashboardName,
      defaultInterval: Duration.hours(3),
    });
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Query API latency (ms)',
        left: [p50, p99],
        leftAnnotations: [{ value: t.queryLatencyP99Ms, label: 'p99 alarm' }],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Result cache hit rate (%)',
        left: [hitRate],
        leftYAxis: { min: 0, max: 100 },
        width: 12,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({ title: 'Database connections', left: connections, width: 12 }),
      new cloudwatch.GraphWidget({
        title: 'RDS Proxy pinned connections',
        left: pinned,
        width: 12,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Slow statements enqueued',
        left: [slowQueries],
        width: 8,
      }),
      new cloudwatch.GraphWidget({ title: 'Dead-letter queue depth', left: dlqDepths, width: 8 }),
      new cloudwatch.GraphWidget({
        title: 'Collector health',
        left: [...collectorErrors, ...collectFailed],
        right: targetUp,
        rightYAxis: { min: 0, max: 1 },
        width: 8,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 24 }),
    );
  }

  /** The console URL of the dashboard. */
  get dashboardUrl(): string {
    const region = Stack.of(this).region;
    return `https://${region}.console.aws.amazon.com/cloudwatch/home?region=${region}#dashboards:name=${this.dashboard.dashboardName}`;
  }

  private alarm(
    id: string,
    action: actions.SnsAction,
    props: cloudwatch.AlarmProps,
  ): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, id, props);
    alarm.addAlarmAction(action);
    alarm.addOkAction(action);
    this.alarms.push(alarm);
    return alarm;
  }

  private anomalyAlarm(action: actions.SnsAction, metric: cloudwatch.Metric, stdDevs: number) {
    const alarm = new cloudwatch.AnomalyDetectionAlarm(this, 'QueryLatencyAnomaly', {
      metric,
      stdDevs,
      evaluationPeriods: 5,
      datapointsToAlarm: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_UPPER_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: `Query API average latency above its ${stdDevs}σ anomaly band`,
    });
    alarm.addAlarmAction(action);
    alarm.addOkAction(action);
    this.alarms.push(alarm);
  }
}

/** `shard-1` → `Shard1` for construct ids. */
const suffix = (name: string): string =>
  name
    .split(/[^A-Za-z0-9]+/)
    .filter((p) => p.length > 0)
    .map((p) => p[0]?.toUpperCase() + p.slice(1))
    .join('');
