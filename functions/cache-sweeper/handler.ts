import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { loadConfig } from '#shared/config';
import { runSweepLoop } from '#shared/freshness';
import { createSweeperRuntime } from './deps.ts';

// Once per cold start: config and clients (pools and Redis connect lazily).
const config = loadConfig();
const logger = new Logger({ serviceName: config.SERVICE_NAME, logLevel: config.LOG_LEVEL });
const metrics = new Metrics({
  namespace: config.METRICS_NAMESPACE,
  serviceName: config.SERVICE_NAME,
});
const { redis, sweeper, shutdown } = createSweeperRuntime(config, { logger, metrics });

/** Time kept back at the end of an invocation for the last sweep and the metrics flush. */
const END_MARGIN_MS = 5_000;

/** Sweeps every CACHE_SWEEP_INTERVAL_MS until `signal` aborts (local mode) or the deadline. */
export const runSweeps = async (limit: { signal: AbortSignal } | { deadlineMs: number }) => {
  // The client connects lazily and queues nothing offline: connect before the first sweep.
  // A failed connect is not fatal; ioredis keeps retrying and the next sweep tries again.
  if (redis.status === 'wait') {
    await redis
      .connect()
      .catch((err: Error) => logger.warn('redis connect failed', { reason: err.message }));
  }
  const loop = { sweeper, intervalMs: config.CACHE_SWEEP_INTERVAL_MS, metrics, logger };
  return runSweepLoop({ ...loop, ...limit });
};

/** EventBridge Scheduler, every minute: sweep for (almost) the whole invocation. */
export const handler = middy(async (_event: unknown, context: Context) =>
  runSweeps({ deadlineMs: context.getRemainingTimeInMillis() - END_MARGIN_MS }),
)
  .use(injectLambdaContext(logger))
  .use(logMetrics(metrics));

/** Closes the pools and Redis; local mode calls it on Ctrl-C. */
export { shutdown };
