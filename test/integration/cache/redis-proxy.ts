import net from 'node:net';

/**
 * A TCP relay in front of the test Redis that a test can stop, restart or stall, to play
 * "Redis went away" and "Redis is slow" without touching the shared Redis server.
 */
export interface RedisRelay {
  readonly port: number;
  /** Close the listener and drop every connection (Redis "stopped"). */
  stop(): Promise<void>;
  /** Listen again on the same port. */
  start(): Promise<void>;
  /** Stop forwarding client bytes (Redis "hangs"); `false` resumes. */
  stall(stalled: boolean): void;
}

export const startRedisRelay = async (upstreamPort: number): Promise<RedisRelay> => {
  const sockets = new Set<net.Socket>();
  let stalled = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(upstreamPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.on('data', (chunk) => {
      if (!stalled) upstream.write(chunk);
    });
    upstream.pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', close).on('error', close);
    upstream.on('close', close).on('error', close);
  });
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
  await listen(0);
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('relay has no port');
  const port = address.port;
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        sockets.clear();
        server.close(() => resolve());
      }),
    start: () => listen(port),
    stall: (value) => {
      stalled = value;
    },
  };
};
