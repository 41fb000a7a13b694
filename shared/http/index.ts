import type { MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { type AppError, isAppError, ValidationError } from '#shared/errors';
import { type MetricsSink, MetricUnit } from '#shared/metrics';

/** The logging surface the error middleware needs (Powertools Logger satisfies it). */
export interface HttpLogger {
  warn(message: string, ...extra: unknown[]): void;
  error(message: string, ...extra: unknown[]): void;
}

/** HTTP status for each error code; codes not listed here fall back by class (see statusOf). */
const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  INVALID_JSON: 400,
  INVALID_REQUEST: 400,
  EMPTY_STATEMENT: 400,
  MULTIPLE_STATEMENTS: 400,
  PARAM_COUNT_MISMATCH: 400,
  SQL_SYNTAX_ERROR: 400,
  SQL_UNDEFINED_OBJECT: 400,
  SQL_INVALID: 400,
  INVALID_DATA: 400,
  SCATTER_UNSUPPORTED: 400,
  SHARDING_NOT_CONFIGURED: 400,
  WRITE_NOT_ALLOWED: 403,
  STATEMENT_NOT_ALLOWED: 403,
  FUNCTION_NOT_ALLOWED: 403,
  READ_ONLY_VIOLATION: 403,
  SQL_INSUFFICIENT_PRIVILEGE: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONSTRAINT_VIOLATION: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  ROW_LIMIT_EXCEEDED: 422,
  RESPONSE_TOO_LARGE: 422,
  DATABASE_ERROR: 500,
  CONFIG_INVALID: 500,
  DATABASE_UNAVAILABLE: 503,
  SHARDS_UNAVAILABLE: 503,
  QUERY_TIMEOUT: 504,
};

export const statusOf = (err: AppError): number =>
  STATUS_BY_CODE[err.code] ?? (err instanceof ValidationError ? 400 : 500);

const JSON_HEADERS = Object.freeze({
  'content-type': 'application/json; charset=utf-8',
  'cache-control': 'no-store',
});

/** A 200 response whose body is already-serialized JSON. */
export const jsonResponse = (statusCode: number, body: string): APIGatewayProxyResult => ({
  statusCode,
  headers: { ...JSON_HEADERS },
  body,
});

/** The error body every endpoint returns: `{ "error": { "code", "message", …details } }`. */
export const errorResponse = (
  statusCode: number,
  code: string,
  message: string,
  details?: Readonly<Record<string, unknown>>,
  requestId?: string,
): APIGatewayProxyResult =>
  jsonResponse(
    statusCode,
    JSON.stringify({
      error: { code, message, ...(details ?? {}), ...(requestId ? { requestId } : {}) },
    }),
  );

/**
 * Reads an API Gateway body (base64 when `isBase64Encoded`) as JSON. Rejects a missing body,
 * a non-JSON content type and malformed JSON with a 4xx naming the problem.
 */
export const readJsonBody = (event: APIGatewayProxyEvent): unknown => {
  const contentType = Object.entries(event.headers ?? {}).find(
    ([name]) => name.toLowerCase() === 'content-type',
  )?.[1];
  if (contentType && !/^application\/(.+\+)?json\b/i.test(contentType)) {
    throw new ValidationError(
      'UNSUPPORTED_MEDIA_TYPE',
      `Send the body as application/json (got content-type: ${contentType})`,
    );
  }
  if (event.body === null || event.body === undefined || event.body === '') {
    throw new ValidationError('INVALID_JSON', 'The request body is empty; send a JSON object');
  }
  const text = event.isBase64Encoded
    ? Buffer.from(event.body, 'base64').toString('utf8')
    : event.body;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ValidationError(
      'INVALID_JSON',
      `The request body is not valid JSON: ${(err as Error).message}`,
      { cause: err },
    );
  }
};

/**
 * middy middleware that turns any thrown error into the JSON error shape: typed errors keep
 * their code and caller-safe details; anything else becomes a 500 that names the request id
 * and never carries a stack trace. 5xx errors are logged with their cause; 4xx at warn.
 */
export const httpErrors = (deps: {
  logger: HttpLogger;
  metrics: MetricsSink;
}): MiddlewareObj<APIGatewayProxyEvent, APIGatewayProxyResult, Error, Context> => ({
  onError: async (request) => {
    const err = request.error;
    const requestId = request.context?.awsRequestId;
    if (isAppError(err)) {
      const status = statusOf(err);
      if (status >= 500) deps.logger.error('request failed', { code: err.code, err });
      else deps.logger.warn('request rejected', { code: err.code, reason: err.message });
      deps.metrics.addMetric(status >= 500 ? 'ServerErrors' : 'ClientErrors', MetricUnit.Count, 1);
      request.response = errorResponse(
        status,
        err.code,
        err.message,
        err.details,
        status >= 500 ? requestId : undefined,
      );
      return;
    }
    deps.logger.error('unexpected error', { err });
    deps.metrics.addMetric('ServerErrors', MetricUnit.Count, 1);
    request.response = errorResponse(
      500,
      'INTERNAL_ERROR',
      'Internal error; the request id identifies it in the logs',
      undefined,
      requestId,
    );
  },
});

/** Rejects any method but `method` with a 405 (the local server and tests can route anything). */
export const requireMethod = (event: APIGatewayProxyEvent, method: string): void => {
  if (event.httpMethod.toUpperCase() !== method) {
    throw new ValidationError(
      'METHOD_NOT_ALLOWED',
      `${event.httpMethod} is not allowed here; use ${method}`,
    );
  }
};
