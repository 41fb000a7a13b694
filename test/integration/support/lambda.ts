import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { vi } from 'vitest';

export type ProxyHandler = (
  event: APIGatewayProxyEvent,
  context: Context,
) => Promise<APIGatewayProxyResult>;

export interface LoadedHandler {
  handler: ProxyHandler;
  shutdown: () => Promise<void>;
}

/**
 * Imports a fresh copy of a handler module with `env` as its environment, the way a Lambda
 * cold start would (config is read once at import).
 */
export const loadHandler = async (
  modulePath: string,
  env: Record<string, string>,
): Promise<LoadedHandler> => {
  vi.resetModules();
  const saved = { ...process.env };
  Object.assign(process.env, { POWERTOOLS_METRICS_DISABLED: 'true', LOG_LEVEL: 'SILENT' }, env);
  try {
    return (await import(modulePath)) as LoadedHandler;
  } finally {
    process.env = saved;
  }
};

export const lambdaContext = (remainingMs = 10_000): Context => ({
  callbackWaitsForEmptyEventLoop: false,
  functionName: 'dbopt-query-test',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:dbopt-query-test',
  memoryLimitInMB: '512',
  awsRequestId: randomUUID(),
  logGroupName: '/aws/lambda/dbopt-query-test',
  logStreamName: 'test',
  getRemainingTimeInMillis: () => remainingMs,
  done: () => undefined,
  fail: () => undefined,
  succeed: () => undefined,
});

/** An API Gateway REST (v1) proxy event for `method path` with a raw body. */
export const proxyEvent = (
  body: string | null,
  options: { method?: string; path?: string; headers?: Record<string, string> } = {},
): APIGatewayProxyEvent => {
  const method = options.method ?? 'POST';
  const path = options.path ?? '/query';
  return {
    httpMethod: method,
    path,
    resource: path,
    body,
    isBase64Encoded: false,
    headers: { 'content-type': 'application/json', ...(options.headers ?? {}) },
    multiValueHeaders: {},
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    pathParameters: null,
    stageVariables: null,
    requestContext: {
      accountId: '000000000000',
      apiId: 'test',
      authorizer: null,
      protocol: 'HTTP/1.1',
      httpMethod: method,
      identity: { sourceIp: '127.0.0.1' } as APIGatewayProxyEvent['requestContext']['identity'],
      path,
      stage: 'test',
      requestId: randomUUID(),
      requestTimeEpoch: Date.now(),
      resourceId: 'test',
      resourcePath: path,
    },
  };
};

/** Invokes the handler with a JSON body and parses the JSON response. */
export const invoke = async (
  handler: ProxyHandler,
  body: unknown,
  options: {
    method?: string;
    path?: string;
    raw?: boolean;
    headers?: Record<string, string>;
    remainingMs?: number;
  } = {},
): Promise<{ status: number; body: Record<string, unknown>; raw: string }> => {
  const text = options.raw ? (body as string | null) : JSON.stringify(body);
  const response = await handler(proxyEvent(text, options), lambdaContext(options.remainingMs));
  return { status: response.statusCode, body: JSON.parse(response.body), raw: response.body };
};
