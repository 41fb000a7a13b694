/**
 * Pieces the benchmarks share: percentiles over sorted samples, and the API Gateway event
 * and Lambda context a handler is invoked with in-process.
 */
import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';

/** The p-th percentile of an ascending-sorted sample (nearest rank). */
export const percentile = (sorted: readonly number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;

/** The median of an unsorted sample. */
export const median = (xs: readonly number[]): number =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );

export type Handler = (e: APIGatewayProxyEvent, c: Context) => Promise<APIGatewayProxyResult>;

/** A Lambda context with a fresh request id and 30 s left. */
export const lambdaContext = (functionName: string): Context =>
  ({
    awsRequestId: randomUUID(),
    functionName,
    getRemainingTimeInMillis: () => 30_000,
  }) as Context;

/** A `POST /query` REST (v1) proxy event for `sql` with `params`. */
export const queryEvent = (sql: string, params: unknown[]): APIGatewayProxyEvent =>
  ({
    httpMethod: 'POST',
    path: '/query',
    resource: '/query',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sql, params, maxRows: 1000 }),
    isBase64Encoded: false,
    requestContext: { requestId: randomUUID(), stage: 'bench' },
  }) as unknown as APIGatewayProxyEvent;
