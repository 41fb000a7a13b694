import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { LocalModeError } from './errors.ts';

/**
 * A node:http server shaped like API Gateway REST (v1) with Lambda proxy integration: each
 * request becomes a full `APIGatewayProxyEvent` plus a Lambda `Context`, and the handler's
 * `{ statusCode, headers, body }` becomes the HTTP response. Handlers run unchanged.
 *
 * Differences from AWS, on purpose: no IAM auth (bind to 127.0.0.1), no throttling or
 * usage plans, bodies are always passed as UTF-8 text (`isBase64Encoded: false`), and
 * requests run concurrently in one process (Lambda would use one instance per request).
 */

/** A Lambda handler as local mode calls it; what it returns is checked at run time like API Gateway does. */
export type LocalRouteHandler = (event: APIGatewayProxyEvent, context: Context) => Promise<unknown>;

export interface LocalRoute {
  /** GET, POST, … (upper case) */
  method: string;
  /** API Gateway resource path: `/query`, `/suggestions/{id}`, `/files/{path+}`. */
  path: string;
  handler: LocalRouteHandler;
  /** Lambda function name shown in `context.functionName`; default `dbopt-<first segment>-local`. */
  functionName?: string;
}

export interface LocalApiServerOptions {
  routes: readonly LocalRoute[];
  /** 0 picks a free port. Default 3000. */
  port?: number;
  /** Default 127.0.0.1 (local mode has no auth; do not expose it). */
  host?: string;
  /** The simulated Lambda timeout behind `context.getRemainingTimeInMillis()`; default 30 000 ms. */
  timeoutMs?: number;
  /** Larger request bodies get 413; default 1 MiB. */
  maxBodyBytes?: number;
  /** API Gateway stage name in `requestContext.stage`; default `local`. */
  stage?: string;
  /** Where handler failures are reported (with stack); default stderr. */
  logError?: (message: string, err: unknown) => void;
  /** Called once per request after the response is written, e.g. for an access log. */
  onResponse?: (entry: AccessLogEntry) => void;
}

export interface AccessLogEntry {
  method: string;
  path: string;
  statusCode: number;
  durationMs: number;
  requestId: string;
}

export interface LocalApiServer {
  /** `http://127.0.0.1:3000` */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly server: Server;
  /** Replaces the routes (e.g. placeholders answering 503 while the handlers load). */
  setRoutes(routes: readonly LocalRoute[]): void;
  /** Stops accepting, lets in-flight requests finish (up to `graceMs`, default 5 000), then closes. */
  close(graceMs?: number): Promise<void>;
}

const ACCOUNT_ID = '000000000000';
const REGION = 'local';
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

interface CompiledRoute {
  route: LocalRoute;
  functionName: string;
  /** Literal segments, or `{ name, greedy }` for `{name}` / `{name+}`. */
  segments: readonly (string | { name: string; greedy: boolean })[];
}

type RouteMatch =
  | { kind: 'found'; route: CompiledRoute; pathParameters: Record<string, string> | null }
  | { kind: 'wrong-method'; allowed: string[] }
  | { kind: 'not-found' };

const compileRoute = (route: LocalRoute): CompiledRoute => {
  const segments = route.path
    .split('/')
    .filter(Boolean)
    .map((segment) => {
      const param = /^\{([A-Za-z0-9_]+)(\+?)\}$/.exec(segment);
      return param?.[1] ? { name: param[1], greedy: param[2] === '+' } : segment;
    });
  const first = typeof segments[0] === 'string' ? segments[0] : 'root';
  return {
    route: { ...route, method: route.method.toUpperCase() },
    functionName: route.functionName ?? `dbopt-${first}-local`,
    segments,
  };
};

const matchPath = (
  compiled: CompiledRoute,
  parts: readonly string[],
): Record<string, string> | undefined => {
  const params: Record<string, string> = {};
  for (let i = 0; i < compiled.segments.length; i++) {
    const segment = compiled.segments[i];
    const part = parts[i];
    if (segment === undefined || part === undefined) return undefined;
    if (typeof segment === 'string') {
      if (segment !== part) return undefined;
    } else if (segment.greedy) {
      params[segment.name] = parts.slice(i).map(decodeSegment).join('/');
      return params;
    } else {
      params[segment.name] = decodeSegment(part);
    }
  }
  return parts.length === compiled.segments.length ? params : undefined;
};

const decodeSegment = (segment: string): string => {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment; // malformed %-escape: pass it through as API Gateway does
  }
};

const matchRoute = (routes: readonly CompiledRoute[], method: string, path: string): RouteMatch => {
  const parts = path.split('/').filter(Boolean);
  const allowed: string[] = [];
  for (const compiled of routes) {
    const params = matchPath(compiled, parts);
    if (!params) continue;
    if (compiled.route.method === method) {
      return {
        kind: 'found',
        route: compiled,
        pathParameters: Object.keys(params).length > 0 ? params : null,
      };
    }
    allowed.push(compiled.route.method);
  }
  return allowed.length > 0 ? { kind: 'wrong-method', allowed } : { kind: 'not-found' };
};

/** Request facts the event is built from (kept separate from node:http for unit tests). */
export interface ProxyRequest {
  method: string;
  /** Path plus query string, as received: `/query?x=1`. */
  url: string;
  /** Alternating names and values, original case (node's `rawHeaders`). */
  rawHeaders: readonly string[];
  body: string | null;
  sourceIp: string;
  protocol: string;
  requestId: string;
  receivedAtMs: number;
}

/** Builds the API Gateway REST proxy event for a matched route. */
export const buildProxyEvent = (
  request: ProxyRequest,
  resourcePath: string,
  pathParameters: Record<string, string> | null,
  stage = 'local',
): APIGatewayProxyEvent => {
  const url = new URL(request.url, 'http://localhost');
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  for (let i = 0; i + 1 < request.rawHeaders.length; i += 2) {
    const name = request.rawHeaders[i] as string;
    const value = request.rawHeaders[i + 1] as string;
    headers[name] = value; // API Gateway keeps the last value of a repeated header here
    multiValueHeaders[name] = [...(multiValueHeaders[name] ?? []), value];
  }
  const query: Record<string, string> = {};
  const multiQuery: Record<string, string[]> = {};
  for (const [name, value] of url.searchParams) {
    query[name] = value;
    multiQuery[name] = [...(multiQuery[name] ?? []), value];
  }
  const hasQuery = Object.keys(query).length > 0;
  const header = (name: string) =>
    Object.entries(headers).find(([key]) => key.toLowerCase() === name)?.[1];
  const host = header('host') ?? 'localhost';

  return {
    resource: resourcePath,
    path: url.pathname,
    httpMethod: request.method,
    headers,
    multiValueHeaders,
    queryStringParameters: hasQuery ? query : null,
    multiValueQueryStringParameters: hasQuery ? multiQuery : null,
    pathParameters,
    stageVariables: null,
    body: request.body,
    isBase64Encoded: false,
    requestContext: {
      accountId: ACCOUNT_ID,
      apiId: 'local',
      authorizer: undefined,
      domainName: host,
      domainPrefix: host.split('.')[0] ?? host,
      extendedRequestId: request.requestId,
      httpMethod: request.method,
      identity: {
        accessKey: null,
        accountId: null,
        apiKey: null,
        apiKeyId: null,
        caller: null,
        clientCert: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: null,
        sourceIp: request.sourceIp,
        user: null,
        userAgent: header('user-agent') ?? null,
        userArn: null,
      },
      path: `/${stage}${url.pathname}`,
      protocol: request.protocol,
      requestId: request.requestId,
      requestTime: formatRequestTime(new Date(request.receivedAtMs)),
      requestTimeEpoch: request.receivedAtMs,
      resourceId: 'local',
      resourcePath,
      stage,
    },
  };
};

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** API Gateway's `requestTime`: `09/Apr/2015:12:34:56 +0000`. */
const formatRequestTime = (date: Date): string => {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(date.getUTCDate())}/${MONTHS[date.getUTCMonth()]}/${date.getUTCFullYear()}:${pad(
    date.getUTCHours(),
  )}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000`;
};

/** A Lambda context whose remaining time counts down from `timeoutMs` at creation. */
export const createLambdaContext = (options: {
  functionName: string;
  timeoutMs: number;
  awsRequestId: string;
  startedAtMs?: number;
}): Context => {
  const deadlineMs = (options.startedAtMs ?? Date.now()) + options.timeoutMs;
  const unsupported = (name: string) => () => {
    throw new Error(`context.${name}() is not supported in local mode; return a promise instead`);
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: options.functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${REGION}:${ACCOUNT_ID}:function:${options.functionName}`,
    memoryLimitInMB: '1024',
    awsRequestId: options.awsRequestId,
    logGroupName: `/aws/lambda/${options.functionName}`,
    logStreamName: `local/[$LATEST]${options.awsRequestId.replaceAll('-', '')}`,
    getRemainingTimeInMillis: () => Math.max(0, deadlineMs - Date.now()),
    done: unsupported('done'),
    fail: unsupported('fail'),
    succeed: unsupported('succeed'),
  };
};

const errorResult = (
  statusCode: number,
  code: string,
  message: string,
  requestId: string,
  headers: Record<string, string> = {},
): APIGatewayProxyResult => ({
  statusCode,
  headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
  body: JSON.stringify({ error: { code, message, requestId } }),
});

const isProxyResult = (value: unknown): value is APIGatewayProxyResult => {
  if (typeof value !== 'object' || value === null) return false;
  const { statusCode, body } = value as Record<string, unknown>;
  return (
    Number.isInteger(statusCode) &&
    (statusCode as number) >= 100 &&
    (statusCode as number) <= 599 &&
    (body === undefined || typeof body === 'string')
  );
};

class BodyTooLargeError extends Error {}

/** Reads the body as UTF-8, refusing more than `maxBytes` (checked as it streams in). */
const readBody = (req: IncomingMessage, maxBytes: number): Promise<string | null> =>
  new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes) {
      reject(new BodyTooLargeError());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        req.off('data', onData);
        reject(new BodyTooLargeError());
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(size === 0 ? null : Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });

const writeResult = (
  res: ServerResponse,
  result: APIGatewayProxyResult,
  requestId: string,
  closeConnection = false,
): void => {
  if (res.headersSent) return;
  res.statusCode = result.statusCode;
  for (const [name, value] of Object.entries(result.multiValueHeaders ?? {})) {
    res.setHeader(name, value.map(String));
  }
  for (const [name, value] of Object.entries(result.headers ?? {})) {
    res.setHeader(name, String(value));
  }
  if (!res.hasHeader('x-amzn-requestid')) res.setHeader('x-amzn-RequestId', requestId);
  if (closeConnection) res.setHeader('connection', 'close');
  const body = result.body ?? '';
  res.end(result.isBase64Encoded ? Buffer.from(body, 'base64') : body);
};

/**
 * Starts the API Gateway–shaped HTTP server and resolves once it listens.
 *
 * @example
 * const { handler } = await import('../functions/query/handler.ts');
 * const api = await createLocalApiServer({ routes: [{ method: 'POST', path: '/query', handler }] });
 * console.log(`listening on ${api.url}`);
 */
export const createLocalApiServer = async (
  options: LocalApiServerOptions,
): Promise<LocalApiServer> => {
  let routes = options.routes.map(compileRoute);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const stage = options.stage ?? 'local';
  const logError =
    options.logError ?? ((message: string, err: unknown) => console.error(message, err));

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const receivedAtMs = Date.now();
    const requestId = randomUUID();
    const method = (req.method ?? 'GET').toUpperCase();
    const rawUrl = req.url ?? '/';
    const path = new URL(rawUrl, 'http://localhost').pathname;
    res.once('finish', () =>
      options.onResponse?.({
        method,
        path,
        statusCode: res.statusCode,
        durationMs: Date.now() - receivedAtMs,
        requestId,
      }),
    );

    const match = matchRoute(routes, method, path);
    if (match.kind !== 'found') {
      req.resume(); // discard any body
      writeResult(
        res,
        match.kind === 'not-found'
          ? errorResult(404, 'NOT_FOUND', `No route for ${method} ${path}`, requestId)
          : errorResult(
              405,
              'METHOD_NOT_ALLOWED',
              `${path} does not accept ${method}; use ${match.allowed.join(', ')}`,
              requestId,
              { allow: match.allowed.join(', ') },
            ),
        requestId,
      );
      return;
    }

    let body: string | null;
    try {
      body = await readBody(req, maxBodyBytes);
    } catch (err) {
      if (!(err instanceof BodyTooLargeError)) throw err;
      req.resume(); // drain the rest so the client can read the 413, then close
      writeResult(
        res,
        errorResult(
          413,
          'PAYLOAD_TOO_LARGE',
          `The request body is larger than ${maxBodyBytes} bytes`,
          requestId,
        ),
        requestId,
        true,
      );
      return;
    }

    const event = buildProxyEvent(
      {
        method,
        url: rawUrl,
        rawHeaders: req.rawHeaders,
        body,
        sourceIp: (req.socket.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, ''),
        protocol: `HTTP/${req.httpVersion}`,
        requestId,
        receivedAtMs,
      },
      match.route.route.path,
      match.pathParameters,
      stage,
    );
    const context = createLambdaContext({
      functionName: match.route.functionName,
      timeoutMs,
      awsRequestId: randomUUID(),
      startedAtMs: receivedAtMs,
    });

    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const invocation = Promise.resolve()
      .then(() => match.route.route.handler(event, context))
      .then(
        (value) => ({ ok: true as const, value }),
        (error: unknown) => ({ ok: false as const, error }),
      );
    const outcome = await Promise.race([invocation, timedOut]);
    clearTimeout(timer);

    if (outcome === 'timeout') {
      writeResult(
        res,
        errorResult(
          504,
          'HANDLER_TIMEOUT',
          `The handler did not respond within ${timeoutMs} ms (the simulated Lambda timeout)`,
          requestId,
        ),
        requestId,
      );
      void invocation.then((late) => {
        if (!late.ok) logError(`[${requestId}] handler failed after its timeout:`, late.error);
      });
    } else if (!outcome.ok) {
      logError(`[${requestId}] ${method} ${path} handler threw:`, outcome.error);
      writeResult(
        res,
        errorResult(
          500,
          'INTERNAL_ERROR',
          `The handler failed; the server log has the details (request ${requestId})`,
          requestId,
        ),
        requestId,
      );
    } else if (!isProxyResult(outcome.value)) {
      logError(
        `[${requestId}] ${method} ${path} handler returned a malformed result:`,
        outcome.value,
      );
      writeResult(
        res,
        errorResult(
          502,
          'MALFORMED_PROXY_RESPONSE',
          'The handler returned something other than { statusCode, headers?, body: string }',
          requestId,
        ),
        requestId,
      );
    } else {
      writeResult(res, outcome.value, requestId);
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      logError('local API server failed to answer a request:', err);
      if (!res.headersSent) {
        writeResult(
          res,
          errorResult(500, 'INTERNAL_ERROR', 'The local API server failed', 'unknown'),
          'unknown',
        );
      } else {
        res.destroy();
      }
    });
  });

  const host = options.host ?? '127.0.0.1';
  const requestedPort = options.port ?? 3000;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'EADDRINUSE'
          ? new LocalModeError(
              'PORT_IN_USE',
              `Port ${requestedPort} on ${host} is already in use; stop the other process or choose another port (--port or PORT)`,
              { cause: err, details: { port: requestedPort, host } },
            )
          : err,
      );
    };
    server.once('error', onError);
    server.listen(requestedPort, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  let closing: Promise<void> | undefined;
  const close = (graceMs = 5_000): Promise<void> => {
    closing ??= new Promise<void>((resolve, reject) => {
      const force = setTimeout(() => server.closeAllConnections(), graceMs);
      server.close((err) => {
        clearTimeout(force);
        if (err) reject(err);
        else resolve();
      });
      server.closeIdleConnections();
    });
    return closing;
  };

  return Object.freeze({
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    host,
    port,
    server,
    setRoutes: (next: readonly LocalRoute[]) => {
      routes = next.map(compileRoute);
    },
    close,
  });
};
