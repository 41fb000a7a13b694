import { describe, expect, it } from 'vitest';
import { buildProxyEvent, createLambdaContext } from '../../../local/api-server.ts';

describe('buildProxyEvent', () => {
  it('keeps header case, the last value of repeated headers and every value in the multi-value maps', () => {
    // Prepare
    const request = {
      method: 'POST',
      url: '/query?a=1&a=2&b=%20x',
      rawHeaders: [
        'Content-Type',
        'application/json',
        'X-Tag',
        'one',
        'X-Tag',
        'two',
        'Host',
        'localhost:3000',
      ],
      body: '{"sql":"SELECT 1"}',
      sourceIp: '127.0.0.1',
      protocol: 'HTTP/1.1',
      requestId: '00000000-0000-4000-8000-000000000000',
      receivedAtMs: Date.UTC(2025, 3, 9, 12, 34, 56),
    };

    // Act
    const event = buildProxyEvent(request, '/query', null);

    // Assess
    expect(event.headers).toEqual({
      'Content-Type': 'application/json',
      'X-Tag': 'two',
      Host: 'localhost:3000',
    });
    expect(event.multiValueHeaders['X-Tag']).toEqual(['one', 'two']);
    expect(event.queryStringParameters).toEqual({ a: '2', b: ' x' });
    expect(event.multiValueQueryStringParameters).toEqual({ a: ['1', '2'], b: [' x'] });
    expect(event.requestContext.requestTime).toBe('09/Apr/2025:12:34:56 +0000');
    expect(event.requestContext.domainName).toBe('localhost:3000');
  });
});

describe('createLambdaContext', () => {
  it('counts the remaining time down from the timeout and never below zero', () => {
    // Prepare
    const startedAtMs = Date.now();

    // Act
    const fresh = createLambdaContext({
      functionName: 'f',
      timeoutMs: 30_000,
      awsRequestId: 'r',
      startedAtMs,
    });
    const expired = createLambdaContext({
      functionName: 'f',
      timeoutMs: 10,
      awsRequestId: 'r',
      startedAtMs: startedAtMs - 1_000,
    });

    // Assess
    expect(fresh.getRemainingTimeInMillis()).toBeGreaterThan(29_000);
    expect(fresh.getRemainingTimeInMillis()).toBeLessThanOrEqual(30_000);
    expect(expired.getRemainingTimeInMillis()).toBe(0);
    expect(fresh.invokedFunctionArn).toMatch(/:function:f$/);
  });
});
