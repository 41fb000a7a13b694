import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { APIGatewayProxyEvent, Context } from 'aws-lambda';
import { loadConfig } from '#shared/config';
import { httpErrors, jsonResponse, readJsonBody, requireMethod } from '#shared/http';
import { checkHealth, createQueryRequestParser, runQuery } from '#shared/query';
import { initSqlParser } from '#shared/sql';
import { createQueryRuntime } from './deps.ts';

// Once per cold start: config, clients (pools connect lazily), the parser's WASM module.
const config = loadConfig();
const logger = new Logger({ serviceName: config.SERVICE_NAME, logLevel: config.LOG_LEVEL });
const metrics = new Metrics({
  namespace: config.METRICS_NAMESPACE,
  serviceName: config.SERVICE_NAME,
});
const { deps, shutdown } = createQueryRuntime(config, { logger, metrics });
const parseRequest = createQueryRequestParser(deps.policy);
await initSqlParser();

const baseHandler = async (event: APIGatewayProxyEvent, context: Context) => {
  if (event.path.endsWith('/health')) {
    requireMethod(event, 'GET');
    const health = await checkHealth(deps);
    return jsonResponse(health.status === 'ok' ? 200 : 503, JSON.stringify(health));
  }
  requireMethod(event, 'POST');
  const request = parseRequest(readJsonBody(event));
  return jsonResponse(
    200,
    await runQuery(request, deps, { remainingMs: context.getRemainingTimeInMillis() }),
  );
};

/** POST /query and GET /health (API Gateway REST proxy integration). */
export const handler = middy(baseHandler)
  .use(injectLambdaContext(logger))
  .use(logMetrics(metrics))
  .use(httpErrors({ logger, metrics }));

/** Closes the pools and Redis; local mode calls it on Ctrl-C. Lambda never needs it. */
export { shutdown };
