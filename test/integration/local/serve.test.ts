import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { LocalRouteHandler } from '../../../local/api-server.ts';
import { startLocalServe } from '../../../local/serve.ts';
import { TEST_DATABASE_URL } from '../support/env.ts';

// `dbopt serve` against an external database (the integration PostgreSQL), with a fake
// handler: what the CLI adds around the handlers. The embedded path is covered by
// embedded.test.ts and by running `npm start`.
const DATABASE_URL = TEST_DATABASE_URL;

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });

const echo =
  (env: NodeJS.ProcessEnv): LocalRouteHandler =>
  async () => ({
    statusCode: 200,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sslMode: env.DB_SSL_MODE, url: env.DATABASE_URL }),
  });

describe('startLocalServe', () => {
  it('uses DATABASE_URL as is, answers 503 STARTING until the handlers load, then serves them', async () => {
    // Prepare
    const env: NodeJS.ProcessEnv = { DATABASE_URL };
    const lines: string[] = [];
    const port = await freePort();
    let releaseHandlers: () => void = () => undefined;
    const handlersRequested = new Promise<void>((resolve) => {
      releaseHandlers = resolve;
    });
    let gate: () => void = () => undefined;
    const gateOpen = new Promise<void>((resolve) => {
      gate = resolve;
    });

    // Act
    const starting = startLocalServe({
      env,
      port,
      accessLog: false,
      print: (line) => lines.push(line),
      loadHandlers: async () => {
        releaseHandlers();
        await gateOpen;
        return { routes: [{ method: 'POST', path: '/query', handler: echo(env) }] };
      },
    });
    await handlersRequested;
    const early = await fetch(`http://127.0.0.1:${port}/query`, { method: 'POST', body: '{}' });
    gate();
    const serve = await starting;
    const ready = await fetch(`${serve.api.url}/query`, { method: 'POST', body: '{}' });
    await serve.stop();

    // Assess
    expect(early.status).toBe(503);
    expect(((await early.json()) as { error: { code: string } }).error.code).toBe('STARTING');
    expect(ready.status).toBe(200);
    // A localhost DATABASE_URL gets DB_SSL_MODE=disable unless it was set.
    expect(await ready.json()).toEqual({ sslMode: 'disable', url: DATABASE_URL });
    expect(serve.embedded).toBeUndefined();
    expect(lines.join('\n')).toContain(`Using the database from the environment: ${DATABASE_URL}`);
    expect(lines.join('\n')).toContain(`curl -s localhost:${port}/query`);
    await expect(fetch(`${serve.api.url}/query`, { method: 'POST' })).rejects.toThrow();
  });

  it('rejects a bad environment before binding the port or starting a database', async () => {
    // Prepare
    const env: NodeJS.ProcessEnv = { PORT: 'not-a-port', LOG_LEVEL: 'LOUD' };

    // Act
    const attempt = startLocalServe({ env, print: () => undefined });

    // Assess
    await expect(attempt).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(attempt).rejects.toThrow(/PORT.*LOG_LEVEL|LOG_LEVEL.*PORT/s);
    expect(env.DATABASE_URL).toBeUndefined();
  });

  it('reports a taken HTTP port as PORT_IN_USE', async () => {
    // Prepare
    const first = await startLocalServe({
      env: { DATABASE_URL },
      port: 0,
      print: () => undefined,
      loadHandlers: async () => ({ routes: [] }),
    });

    // Act
    const second = startLocalServe({
      env: { DATABASE_URL },
      port: first.api.port,
      print: () => undefined,
      loadHandlers: async () => ({ routes: [] }),
    });

    // Assess
    await expect(second).rejects.toMatchObject({ code: 'PORT_IN_USE' });
    await first.stop();
  });
});
