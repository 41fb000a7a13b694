import { request } from 'node:http';
import type { APIGatewayProxyEvent, Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  createLocalApiServer,
  type LocalApiServer,
  type LocalRouteHandler,
} from '../../../local/api-server.ts';

/** A fake Lambda: records what it was called with and answers per the request path. */
const calls: { event: APIGatewayProxyEvent; context: Context; remainingMs: number }[] = [];

const echoHandler: LocalRouteHandler = async (event, context) => {
  calls.push({ event, context, remainingMs: context.getRemainingTimeInMillis() });
  return {
    statusCode: 201,
    headers: { 'content-type': 'application/json', 'x-echo': 'yes' },
    body: JSON.stringify({ received: event.body }),
  };
};

const logError = vi.fn();
let api: LocalApiServer;

beforeAll(async () => {
  api = await createLocalApiServer({
    port: 0,
    timeoutMs: 300,
    maxBodyBytes: 1_024,
    logError,
    routes: [
      { method: 'POST', path: '/query', handler: echoHandler },
      { method: 'GET', path: '/items/{id}', handler: echoHandler },
      {
        method: 'POST',
        path: '/boom',
        handler: async () => {
          throw new Error('secret internal detail');
        },
      },
      { method: 'POST', path: '/malformed', handler: async () => ({ body: 42 }) },
      {
        method: 'POST',
        path: '/slow',
        handler: () =>
          new Promise((resolve) => setTimeout(() => resolve({ statusCode: 200 }), 1_000)),
      },
    ],
  });
});

afterAll(async () => {
  await api.close();
});

/** Sends a request body in chunks without content-length (chunked transfer encoding). */
const postChunked = (url: string, chunks: string[]): Promise<{ status: number; body: string }> =>
  new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json' } });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });

describe('createLocalApiServer', () => {
  it('turns a request into an API Gateway REST proxy event and writes the result back', async () => {
    // Prepare
    calls.length = 0;
    const body = JSON.stringify({ sql: 'SELECT 1' });

    // Act
    const res = await fetch(`${api.url}/query?x=1&x=2&y=z`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Custom': 'abc' },
      body,
    });

    // Assess
    expect(res.status).toBe(201);
    expect(res.headers.get('x-echo')).toBe('yes');
    expect(await res.json()).toEqual({ received: body });
    expect(calls).toHaveLength(1);
    const { event, context, remainingMs } = calls[0] ?? expect.unreachable();
    expect(event).toMatchObject({
      httpMethod: 'POST',
      path: '/query',
      resource: '/query',
      body,
      isBase64Encoded: false,
      pathParameters: null,
      stageVariables: null,
      queryStringParameters: { x: '2', y: 'z' },
      multiValueQueryStringParameters: { x: ['1', '2'], y: ['z'] },
    });
    expect(event.headers['X-Custom']).toBe('abc');
    expect(event.multiValueHeaders['X-Custom']).toEqual(['abc']);
    expect(event.requestContext).toMatchObject({
      httpMethod: 'POST',
      stage: 'local',
      resourcePath: '/query',
      path: '/local/query',
      protocol: 'HTTP/1.1',
      identity: { sourceIp: '127.0.0.1' },
    });
    expect(event.requestContext.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers.get('x-amzn-requestid')).toBe(event.requestContext.requestId);
    expect(Math.abs(event.requestContext.requestTimeEpoch - Date.now())).toBeLessThan(5_000);
    expect(context.functionName).toBe('dbopt-query-local');
    expect(context.awsRequestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(remainingMs).toBeGreaterThan(0);
    expect(remainingMs).toBeLessThanOrEqual(300);
  });

  it('passes path parameters and a null body for a GET', async () => {
    // Prepare
    calls.length = 0;

    // Act
    const res = await fetch(`${api.url}/items/a%20b`);

    // Assess
    expect(res.status).toBe(201);
    const { event } = calls[0] ?? expect.unreachable();
    expect(event).toMatchObject({
      httpMethod: 'GET',
      resource: '/items/{id}',
      pathParameters: { id: 'a b' },
      body: null,
      queryStringParameters: null,
    });
  });

  it.each([
    ['GET', '/nope', 404, 'NOT_FOUND'],
    ['GET', '/query', 405, 'METHOD_NOT_ALLOWED'],
    ['POST', '/items/1', 405, 'METHOD_NOT_ALLOWED'],
  ])('%s %s → %i %s', async (method, path, status, code) => {
    // Act
    const res = await fetch(`${api.url}${path}`, { method });

    // Assess
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe(code);
    expect(body.error.message).toContain(path);
    if (status === 405) expect(res.headers.get('allow')).toBeTruthy();
  });

  it('refuses a body over the limit with 413, by content-length and while streaming', async () => {
    // Prepare
    calls.length = 0;
    const big = 'x'.repeat(2_000);

    // Act
    const declared = await fetch(`${api.url}/query`, { method: 'POST', body: big });
    const streamed = await postChunked(`${api.url}/query`, [big.slice(0, 600), big.slice(600)]);

    // Assess
    expect(declared.status).toBe(413);
    expect(((await declared.json()) as { error: { code: string } }).error.code).toBe(
      'PAYLOAD_TOO_LARGE',
    );
    expect(streamed.status).toBe(413);
    expect(JSON.parse(streamed.body).error.code).toBe('PAYLOAD_TOO_LARGE');
    expect(calls).toHaveLength(0);
  });

  it('answers 500 JSON without internals when the handler throws, and logs the error', async () => {
    // Prepare
    logError.mockClear();

    // Act
    const res = await fetch(`${api.url}/boom`, { method: 'POST', body: '{}' });

    // Assess
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text).error.code).toBe('INTERNAL_ERROR');
    expect(text).not.toContain('secret internal detail');
    expect(text).not.toContain('at ');
    expect(logError).toHaveBeenCalledTimes(1);
    expect(logError.mock.calls[0]?.[1]).toBeInstanceOf(Error);
  });

  it('answers 502 for a malformed proxy result and 504 past the simulated Lambda timeout', async () => {
    // Act
    const malformed = await fetch(`${api.url}/malformed`, { method: 'POST' });
    const slow = await fetch(`${api.url}/slow`, { method: 'POST' });

    // Assess
    expect(malformed.status).toBe(502);
    expect(((await malformed.json()) as { error: { code: string } }).error.code).toBe(
      'MALFORMED_PROXY_RESPONSE',
    );
    expect(slow.status).toBe(504);
    expect(((await slow.json()) as { error: { code: string } }).error.code).toBe('HANDLER_TIMEOUT');
  });

  it('fails with PORT_IN_USE when the port is taken', async () => {
    // Act
    const attempt = createLocalApiServer({ port: api.port, routes: [] });

    // Assess
    await expect(attempt).rejects.toMatchObject({ code: 'PORT_IN_USE' });
  });

  it('closes promptly even with a keep-alive connection open, and then refuses connections', async () => {
    // Prepare
    const other = await createLocalApiServer({
      port: 0,
      routes: [{ method: 'POST', path: '/query', handler: echoHandler }],
    });
    await (await fetch(`${other.url}/query`, { method: 'POST', body: '{}' })).text(); // leaves an idle keep-alive socket
    const startedAt = Date.now();

    // Act
    await other.close();

    // Assess
    expect(Date.now() - startedAt).toBeLessThan(2_000);
    await expect(fetch(`${other.url}/query`, { method: 'POST' })).rejects.toThrow();
  });
});
