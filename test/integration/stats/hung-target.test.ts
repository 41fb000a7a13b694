import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '#shared/config';
import { noMetrics } from '#shared/metrics';
import { createCollectorRuntime } from '#shared/stats';
import { DEAD_DATABASE_URL } from '../support/env.ts';

/**
 * A PostgreSQL stand-in that completes the startup handshake (AuthenticationOk,
 * ReadyForQuery) and then never answers a query: a frozen server, or a pooled connection
 * whose network path went away (failover) — the socket stays open, nothing comes back.
 */
const startHungServer = async (): Promise<{ port: number; close: () => Promise<void> }> => {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    let startup = true;
    socket.on('data', () => {
      if (!startup) return;
      startup = false;
      const auth = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0]); // 'R' AuthenticationOk
      const ready = Buffer.from([0x5a, 0, 0, 0, 5, 0x49]); // 'Z' ReadyForQuery idle
      socket.write(Buffer.concat([auth, ready]));
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
};

const logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

describe('collector targets against a server that stops answering', () => {
  let hung: Awaited<ReturnType<typeof startHungServer>>;

  beforeAll(async () => {
    hung = await startHungServer();
  });

  afterAll(async () => {
    await hung.close();
  });

  it('gives up on a repository call (repository on the hung primary) within twice the read limit', async () => {
    // Prepare
    const url = `postgres://postgres@127.0.0.1:${hung.port}/app`;
    const config = loadConfig({
      DATABASE_URL: url,
      REPOSITORY_DATABASE_URL: url,
      DB_SSL_MODE: 'disable',
      STATS_READ_TIMEOUT_MS: '300',
      SLOW_QUERY_EXPLAIN_TIMEOUT_MS: '200',
    });
    const runtime = createCollectorRuntime(config, {
      logger,
      metrics: {
        ...noMetrics,
        addDimensions: () => undefined,
        publishStoredMetrics: () => undefined,
      },
    });
    const startedMs = performance.now();
    // Act
    const failure = await runtime
      .metricsDeps()
      .repository.loadSnapshot('primary', 'database')
      .catch((err: unknown) => err);
    const elapsedMs = performance.now() - startedMs;
    await runtime.shutdown();
    // Assess
    expect(failure).toBeInstanceOf(Error);
    expect(elapsedMs).toBeLessThan(3_000);
  }, 10_000);

  it('gives up on a catalog read after about STATS_READ_TIMEOUT_MS, not QUERY_MAX_TIMEOUT_MS', async () => {
    // Prepare: the API's query limit stays at its 30 s default; the collector reads get 300 ms.
    const config = loadConfig({
      DATABASE_URL: `postgres://postgres@127.0.0.1:${hung.port}/app`,
      REPOSITORY_DATABASE_URL: DEAD_DATABASE_URL,
      DB_SSL_MODE: 'disable',
      STATS_READ_TIMEOUT_MS: '300',
      SLOW_QUERY_EXPLAIN_TIMEOUT_MS: '200',
    });
    const runtime = createCollectorRuntime(config, {
      logger,
      metrics: {
        ...noMetrics,
        addDimensions: () => undefined,
        publishStoredMetrics: () => undefined,
      },
    });
    const target = runtime.targets[0];
    const startedMs = performance.now();
    // Act
    const failure = await target
      ?.readOnly(config.STATS_READ_TIMEOUT_MS, (q) => q.query('SELECT 1'))
      .catch((err: unknown) => err);
    const elapsedMs = performance.now() - startedMs;
    await runtime.shutdown();
    // Assess
    expect(failure).toBeInstanceOf(Error);
    expect(elapsedMs).toBeLessThan(3_000);
  }, 10_000);
});
