/**
 * Runs inside a worker thread started by `startEmbeddedPostgres` (embedded-postgres.ts).
 *
 * PGlite executes SQL synchronously inside WebAssembly, so in the main thread a slow
 * statement (`pg_sleep(5)`, a big join) would freeze the whole process: the HTTP server,
 * the `pg` driver's client-side `query_timeout`, even Ctrl-C. In a worker thread only this
 * thread blocks; the main thread keeps serving and its timers fire on time.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';
import { pg_stat_statements } from '@electric-sql/pglite/contrib/pg_stat_statements';
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { type PgSerializer, startPgSerializer } from './pg-serializer.ts';

/** What the main thread passes in `workerData`. */
export interface EmbeddedWorkerInput {
  dataDir: string | undefined;
  host: string;
  port: number;
  maxConnections: number;
  /** Put the serializing front (pg-serializer.ts) before pglite-socket; false only to measure it. */
  serialize: boolean;
}

/** Messages the worker posts to the main thread. */
export type EmbeddedWorkerMessage =
  | { type: 'ready'; host: string; port: number; serverVersion: string; startMs: number }
  | { type: 'failed'; message: string; errorCode: string | undefined }
  | { type: 'stopped' };

/** Messages the main thread posts to the worker. */
export type EmbeddedWorkerCommand = { type: 'stop' };

const post = (message: EmbeddedWorkerMessage): void => parentPort?.postMessage(message);

const run = async (input: EmbeddedWorkerInput): Promise<void> => {
  const startedAt = performance.now();
  // pg_stat_statements' setup() asks PGlite to add it to shared_preload_libraries, which is
  // what the extension needs before CREATE EXTENSION can expose its view.
  const db = await PGlite.create({
    ...(input.dataDir ? { dataDir: input.dataDir } : {}),
    extensions: { pg_stat_statements, pg_trgm },
  });
  await db.exec(
    'CREATE EXTENSION IF NOT EXISTS pg_stat_statements; CREATE EXTENSION IF NOT EXISTS pg_trgm;',
  );
  const version = await db.query<{ server_version: string }>('SHOW server_version');

  // With the front, pglite-socket listens on a private port and only the front connects to
  // it, one connection per client. A client's slot there frees a moment after the front
  // closed it, hence the headroom.
  const server = new PGLiteSocketServer({
    db,
    host: input.serialize ? '127.0.0.1' : input.host,
    port: input.serialize ? 0 : input.port,
    maxConnections: input.serialize ? input.maxConnections * 2 + 2 : input.maxConnections,
  });
  let front: PgSerializer | undefined;
  let socketPort = input.port;
  try {
    await server.start();
    socketPort = Number(/:(\d+)$/.exec(server.getServerConn())?.[1] ?? input.port);
    if (input.serialize) {
      front = await startPgSerializer({
        upstream: { host: '127.0.0.1', port: socketPort },
        host: input.host,
        port: input.port,
        maxConnections: input.maxConnections,
      });
    }
  } catch (err) {
    await server.stop();
    await db.close();
    throw err;
  }

  parentPort?.on('message', (command: EmbeddedWorkerCommand) => {
    if (command.type !== 'stop') return;
    void (async () => {
      await front?.close();
      await server.stop();
      await db.close(); // flushes dataDir to disk
      post({ type: 'stopped' });
      parentPort?.close();
    })();
  });

  post({
    type: 'ready',
    host: input.host,
    port: front?.port ?? socketPort,
    serverVersion: version.rows[0]?.server_version ?? 'unknown',
    startMs: performance.now() - startedAt,
  });
};

if (!isMainThread) {
  run(workerData as EmbeddedWorkerInput).catch((err: unknown) => {
    const error = err instanceof Error ? err : new Error(String(err));
    post({
      type: 'failed',
      message: error.message,
      errorCode: (error as NodeJS.ErrnoException).code,
    });
  });
}
