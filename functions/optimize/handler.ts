import { setTimeout as sleep } from 'node:timers/promises';
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { SNSClient } from '@aws-sdk/client-sns';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { loadConfig } from '#shared/config';
import { createOptimizerRuntime, processSlowQueryBatch } from '#shared/optimizer';
import { initSqlParser } from '#shared/sql';

// Once per cold start: config, lazy pools (DB endpoint per target, repository), SNS client.
const config = loadConfig();
const logger = new Logger({ serviceName: config.SERVICE_NAME, logLevel: config.LOG_LEVEL });
const metrics = new Metrics({
  namespace: config.METRICS_NAMESPACE,
  serviceName: config.SERVICE_NAME,
});
const runtime = createOptimizerRuntime(config, {
  logger,
  metrics,
  sns: new SNSClient(config.AWS_REGION ? { region: config.AWS_REGION } : {}),
  sleep: (ms) => sleep(ms).then(() => undefined),
});
await initSqlParser();

/**
 * SQS (slow-query messages, ReportBatchItemFailures): failed records are returned for retry;
 * after the queue's maxReceiveCount they move to the DLQ. The repository schema is migrated
 * on first use; if that fails the whole batch is retried.
 */
const baseHandler = async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
  await runtime.ensureRepository();
  const deadlineAtMs = Date.now() + context.getRemainingTimeInMillis();
  const { batchItemFailures } = await processSlowQueryBatch(runtime.deps, event.Records, {
    deadlineAtMs,
  });
  return { batchItemFailures };
};

export const handler = middy(baseHandler).use(injectLambdaContext(logger)).use(logMetrics(metrics));

/** Closes the pools; local mode calls it on Ctrl-C. Lambda never needs it. */
export const shutdown = (): Promise<void> => runtime.shutdown();
