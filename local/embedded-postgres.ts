import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type {
  EmbeddedWorkerCommand,
  EmbeddedWorkerInput,
  EmbeddedWorkerMessage,
} from './embedded-postgres-worker.ts';
import { LocalModeError } from './errors.ts';

/**
 * Embedded PostgreSQL for local mode: PGlite (PostgreSQL compiled to WebAssembly) with
 * `pg_stat_statements` and `pg_trgm`, served over TCP by `@electric-sql/pglite-socket` so the
 * ordinary `pg` driver — and psql — can connect to it.
 *
 * How it differs from a real server (measured with PGlite 0.5.14 / pglite-socket 0.2.17,
 * see README "Local mode"):
 * - PGlite is ONE backend. pglite-socket alone multiplexes its connections onto it one
 *   protocol MESSAGE at a time, so concurrent parameterised queries (Parse/Bind/Execute/Sync)
 *   clobbered each other's unnamed statement or got each other's rows. So clients connect to
 *   a serializing front (pg-serializer.ts) instead: up to `maxConnections` clients, each
 *   with its own connection to pglite-socket, and the backend goes to one client at a time
 *   for a whole unit of work — one Sync-terminated extended exchange, one simple Query, or a
 *   whole transaction (until ReadyForQuery says idle). Other clients wait, FIFO, with no
 *   server-side timeout: a client idle inside a transaction makes them wait as long as it
 *   stays there (like row locks on a real server; bound waits with `query_timeout`). A
 *   client that disconnects mid-transaction is rolled back before anyone else runs.
 *   More than `maxConnections` clients get FATAL 53300 "sorry, too many clients already".
 * - Session state is still shared by all connections: `SET` (without LOCAL), temp tables
 *   and named prepared statements leak between them, and `pg_backend_pid()` is the same.
 * - `statement_timeout` is accepted and ignored, and CancelRequest is ignored: a statement
 *   always runs to completion. Enforce limits on the client (`query_timeout`). PGlite runs in
 *   a worker thread precisely so that those client-side timers can fire while it works.
 * - Pipelined queries (pg `pipeline: true`) work; no TLS (use `DB_SSL_MODE=disable`).
 * - No HypoPG.
 */

export interface EmbeddedPostgresOptions {
  /** Keep the database files here (created when missing). In memory when unset. */
  dataDir?: string;
  /** TCP port; 0 (the default) lets the OS pick a free one. */
  port?: number;
  /** Interface to bind; default 127.0.0.1. */
  host?: string;
  /** Client connections served at once (more get FATAL 53300); default 8. */
  maxConnections?: number;
  /**
   * Serialize clients' units of work in front of pglite-socket (pg-serializer.ts); default
   * true. `false` exposes pglite-socket directly, where concurrent clients corrupt each
   * other's parameterised queries — only to measure the front.
   */
  serialize?: boolean;
  /** Give up starting after this long; default 120 000 ms (first start compiles the WASM). */
  startTimeoutMs?: number;
  /** How long `stop()` waits for a clean shutdown before terminating the worker; default 10 000 ms. */
  stopTimeoutMs?: number;
  /** Called once if the database thread dies after it started (clients will then fail). */
  onCrash?: (err: Error) => void;
}

export interface EmbeddedPostgres {
  /** `postgres://postgres@127.0.0.1:PORT/postgres` — no password, no TLS. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** PostgreSQL version of the embedded server, e.g. "18.6". */
  readonly serverVersion: string;
  /** Time PGlite took to start (initdb or open the data dir, extensions), in ms. */
  readonly startMs: number;
  /** Closes the socket server and the database (flushing `dataDir`). Safe to call twice. */
  stop(): Promise<void>;
}

const DEFAULT_MAX_CONNECTIONS = 8;

/**
 * The worker entry is TypeScript. Node 20 cannot load `.ts` in a worker by itself and does
 * not pass tsx's loader hooks to workers, so the worker boots through tsx's `tsImport`
 * API (it works the same under `tsx`, vitest and plain node).
 */
const createWorker = (input: EmbeddedWorkerInput): Worker => {
  const entry = new URL(
    import.meta.url.endsWith('.js')
      ? './embedded-postgres-worker.js'
      : './embedded-postgres-worker.ts',
    import.meta.url,
  );
  if (entry.pathname.endsWith('.js')) return new Worker(entry, { workerData: input });
  // tsx's "./esm/api" export (import condition); require.resolve would pick the CJS build.
  const tsxApi = new URL(
    'dist/esm/api/index.mjs',
    pathToFileURL(createRequire(import.meta.url).resolve('tsx/package.json')),
  );
  const boot = `import(${JSON.stringify(tsxApi.href)}).then((tsx) => tsx.tsImport(${JSON.stringify(entry.href)}, ${JSON.stringify(entry.href)}));`;
  return new Worker(boot, { eval: true, workerData: input });
};

/**
 * Starts PGlite in a worker thread and serves it on `host:port`.
 *
 * @example
 * const pg = await startEmbeddedPostgres(); // free port, in memory
 * process.env.DATABASE_URL = pg.url;
 * // …
 * await pg.stop();
 */
export const startEmbeddedPostgres = async (
  options: EmbeddedPostgresOptions = {},
): Promise<EmbeddedPostgres> => {
  const input: EmbeddedWorkerInput = {
    dataDir: options.dataDir,
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 0,
    maxConnections: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    serialize: options.serialize ?? true,
  };
  const startTimeoutMs = options.startTimeoutMs ?? 120_000;
  const stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
  // PGlite takes seconds to start; find a taken port before that, not after.
  if (input.port !== 0) await assertPortFree(input);
  const worker = createWorker(input);

  const ready = await new Promise<Extract<EmbeddedWorkerMessage, { type: 'ready' }>>(
    (resolve, reject) => {
      const fail = (err: Error) => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        void worker.terminate();
        reject(err);
      };
      const timer = setTimeout(
        () =>
          fail(
            new LocalModeError(
              'EMBEDDED_POSTGRES_FAILED',
              `Embedded PostgreSQL did not start within ${startTimeoutMs} ms`,
            ),
          ),
        startTimeoutMs,
      );
      const onMessage = (message: EmbeddedWorkerMessage) => {
        if (message.type === 'ready') {
          clearTimeout(timer);
          worker.off('message', onMessage);
          worker.off('error', onError);
          worker.off('exit', onExit);
          resolve(message);
        } else if (message.type === 'failed') {
          fail(toStartError(message, input));
        }
      };
      const onError = (err: Error) =>
        fail(
          new LocalModeError(
            'EMBEDDED_POSTGRES_FAILED',
            `Embedded PostgreSQL failed to start: ${err.message}`,
            { cause: err },
          ),
        );
      const onExit = (code: number) =>
        fail(
          new LocalModeError(
            'EMBEDDED_POSTGRES_FAILED',
            `Embedded PostgreSQL exited during start (exit code ${code})`,
          ),
        );
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    },
  );

  let stopping: Promise<void> | undefined;
  const onCrashError = (err: Error) => {
    if (!stopping) options.onCrash?.(err);
  };
  const onCrashExit = (code: number) => {
    if (!stopping) options.onCrash?.(new Error(`embedded PostgreSQL thread exited (code ${code})`));
  };
  worker.on('error', onCrashError);
  worker.on('exit', onCrashExit);

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      const stopped = new Promise<void>((resolve) => {
        worker.on('message', (m: EmbeddedWorkerMessage) => {
          if (m.type === 'stopped') resolve();
        });
      });
      worker.postMessage({ type: 'stop' } satisfies EmbeddedWorkerCommand);
      // A statement still running in PGlite delays the clean stop; past the deadline the
      // thread is terminated (an in-memory database loses nothing it would have kept).
      let deadline: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        deadline = setTimeout(() => resolve('timeout'), stopTimeoutMs);
      });
      await Promise.race([Promise.race([stopped, exited]), timedOut]);
      clearTimeout(deadline);
      await worker.terminate();
    })();
    return stopping;
  };

  return Object.freeze({
    url: `postgres://postgres@${ready.host}:${ready.port}/postgres`,
    host: ready.host,
    port: ready.port,
    serverVersion: ready.serverVersion,
    startMs: ready.startMs,
    stop,
  });
};

const assertPortFree = (input: EmbeddedWorkerInput): Promise<void> =>
  new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? toStartError({ type: 'failed', message: err.message, errorCode: err.code }, input)
          : err,
      ),
    );
    probe.listen(input.port, input.host, () => probe.close(() => resolve()));
  });

const toStartError = (
  message: Extract<EmbeddedWorkerMessage, { type: 'failed' }>,
  input: EmbeddedWorkerInput,
): LocalModeError => {
  if (message.errorCode === 'EADDRINUSE') {
    return new LocalModeError(
      'PORT_IN_USE',
      `Port ${input.port} on ${input.host} is already in use, so embedded PostgreSQL cannot listen there; pick another port or 0 for a free one`,
      { details: { port: input.port, host: input.host } },
    );
  }
  const where = input.dataDir ? ` (data dir ${input.dataDir})` : '';
  return new LocalModeError(
    'EMBEDDED_POSTGRES_FAILED',
    `Embedded PostgreSQL failed to start${where}: ${message.message}`,
  );
};
