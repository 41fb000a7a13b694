import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { RDSDataClient } from '@aws-sdk/client-rds-data';
import { SQSClient } from '@aws-sdk/client-sqs';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { loadConfig } from '#shared/config';
import { createSqlAnalyzer, initSqlParser } from '#shared/sql';
import {
  type CollectEvent,
  collectSlowQueries,
  createCollectorRuntime,
  validateCollectEvent,
} from '#shared/stats';

// Once per cold start: config, clients (connect on first use), the parser's WASM module.
const config = loadConfig();
const logger = new Logger({ serviceName: config.SERVICE_NAME, logLevel: config.LOG_LEVEL });
const metrics = new Metrics({
  namespace: config.METRICS_NAMESPACE,
  serviceName: config.SERVICE_NAME,
});
await initSqlParser();
const sql = createSqlAnalyzer({ cacheEntries: config.SQL_PARSE_CACHE_ENTRIES });
const runtime = createCollectorRuntime(config, {
  logger,
  metrics,
  ...(config.SLOW_QUERY_QUEUE_URL ? { sqs: new SQSClient({}) } : {}),
  ...(config.STATS_SOURCE === 'data-api' ? { rdsData: new RDSDataClient({}) } : {}),
});

/** Time kept back at the end of an invocation for SQS and the repository. */
const END_MARGIN_MS = 10_000;

/** EventBridge Scheduler, every five minutes: `{}` or `{ "targets": [...] }`. */
export const handler = middy(async (event: CollectEvent, context: Context) => {
  await runtime.ensureRepository();
  const run = await collectSlowQueries({
    ...runtime.slowQueryDeps(sql, runtime.selectTargets(event.targets)),
    // Leave time to send the messages and store the snapshot.
    explainDeadlineMs: Date.now() + context.getRemainingTimeInMillis() - END_MARGIN_MS,
  });
  return run.targets.map((t) => ({
    target: t.target,
    status: t.status,
    slow: t.slow.length,
    sent: t.sent,
    sendFailures: t.sendFailures.length,
    error: t.error?.message,
  }));
})
  .use(injectLambdaContext(logger))
  .use(logMetrics(metrics))
  .use(validateCollectEvent());

export const shutdown = (): Promise<void> => runtime.shutdown();
