import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { APIGatewayProxyEvent, Context } from 'aws-lambda';
import { Redis } from 'ioredis';
import { redisOptionsFromConfig } from '#shared/cache';
import { loadConfig } from '#shared/config';
import { createDatabase, databaseOptionsFromConfig } from '#shared/db';
import { httpErrors, jsonResponse, readJsonBody, requireMethod } from '#shared/http';
import {
  checkHealth,
  createQueryCacheDeps,
  createQueryReplicas,
  createQueryRequestParser,
  createQueryShards,
  queryPolicyFromConfig,
  runQuery,
  targetGuardOptionsFromConfig,
} from '#shared/query';
import { createTargetGuard } from '#shared/resilience';
import { createSqlAnalyzer, initSqlParser } from '#shared/sql';

// Once per cold start: config, clients (the pool connects lazily), the parser's WASM module.
const config = loadConfig();
const logger = new Logger({ serviceName: config.SERVICE_NAME, logLevel: config.LOG_LEVEL });
const metrics = new Metrics({
  namespace: config.METRICS_NAMESPACE,
  serviceName: config.SERVICE_NAME,
});
const policy = queryPolicyFromConfig(config);
const parseRequest = createQueryRequestParser(policy);
await initSqlParser();
const dbOptions = databaseOptionsFromConfig(config);
const db = createDatabase(dbOptions, logger);
const redis =
  config.CACHE_ENABLED && config.REDIS_URL
    ? new Redis(config.REDIS_URL, redisOptionsFromConfig(config))
    : undefined;
// Without a listener ioredis prints connection errors itself; the cache already degrades.
redis?.on('error', (err: Error) => logger.warn('redis connection error', { reason: err.message }));
const guardOf = (target: string) =>
  createTargetGuard(target, targetGuardOptionsFromConfig(config), { metrics, logger });
const deps = {
  db,
  guard: guardOf('primary'),
  sql: createSqlAnalyzer({ cacheEntries: config.SQL_PARSE_CACHE_ENTRIES }),
  policy,
  metrics,
  cache: createQueryCacheDeps(config, { redis, metrics, logger }),
  shards: createQueryShards(
    config,
    (url) => createDatabase({ ...dbOptions, connectionString: url }, logger),
    guardOf,
  ),
  replicas: createQueryReplicas(
    config,
    (url, o) => createDatabase({ ...dbOptions, connectionString: url, ...o }, logger),
    guardOf,
    { metrics },
  ),
};

const baseHandler = async (event: APIGatewayProxyEvent, context: Context) => {
  if (event.path.endsWith('/health')) {
    requireMethod(event, 'GET');
    const health = await checkHealth(deps);
    return jsonResponse(health.status === 'ok' ? 200 : 503, JSON.stringify(health));
  }
  requireMethod(event, 'POST');
  const request = parseRequest(readJsonBody(event));
  const remainingMs = context.getRemainingTimeInMillis();
  return jsonResponse(200, await runQuery(request, deps, { remainingMs }));
};

/** POST /query and GET /health (API Gateway REST proxy integration). */
export const handler = middy(baseHandler)
  .use(injectLambdaContext(logger))
  .use(logMetrics(metrics))
  .use(httpErrors({ logger, metrics }));

/** Closes the pool; local mode calls it on Ctrl-C. Lambda never needs it. */
export const shutdown = async (): Promise<void> => {
  redis?.disconnect();
  const replicaDbs = [...(deps.replicas?.values() ?? [])].flatMap((set) =>
    set.replicas.map((r) => r.db),
  );
  await Promise.all(
    [db, ...(deps.shards?.databases.values() ?? []), ...replicaDbs].map((d) => d.end()),
  );
};
