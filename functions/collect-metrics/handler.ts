import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { RDSDataClient } from '@aws-sdk/client-rds-data';
import { SNSClient } from '@aws-sdk/client-sns';
import middy from '@middy/core';
import { loadConfig } from '#shared/config';
import {
  type CollectEvent,
  collectMetrics,
  createCollectorRuntime,
  validateCollectEvent,
} from '#shared/stats';

// Once per cold start. Pools and SDK clients connect on first use; AWS_ENDPOINT_URL is
// honoured by the SDK itself. The alerter retries publishes, so SNS gets maxAttempts 1.
const config = loadConfig();
const logger = new Logger({ serviceName: config.SERVICE_NAME, logLevel: config.LOG_LEVEL });
const metrics = new Metrics({
  namespace: config.METRICS_NAMESPACE,
  serviceName: config.SERVICE_NAME,
});
const runtime = createCollectorRuntime(config, {
  logger,
  metrics,
  sns: new SNSClient({ maxAttempts: 1 }),
  ...(config.STATS_SOURCE === 'data-api' ? { rdsData: new RDSDataClient({}) } : {}),
});

/** EventBridge Scheduler, every minute: `{}` or `{ "targets": [...] }`. */
export const handler = middy(async (event: CollectEvent) => {
  await runtime.ensureRepository();
  const run = await collectMetrics(runtime.metricsDeps(runtime.selectTargets(event.targets)));
  return run.targets.map((t) => ({
    target: t.target,
    status: t.status,
    health: t.health?.status ?? null,
    bottleneck: t.health?.bottleneck ?? null,
    alerts: t.alerts.map((a) => `${a.event}:${a.kind}`),
    error: t.error?.message,
  }));
})
  .use(injectLambdaContext(logger))
  .use(logMetrics(metrics))
  .use(validateCollectEvent());

export const shutdown = (): Promise<void> => runtime.shutdown();
