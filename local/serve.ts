import pg from 'pg';
import { type Config, loadConfig } from '#shared/config';
import {
  type AccessLogEntry,
  createLocalApiServer,
  type LocalApiServer,
  type LocalRoute,
  type LocalRouteHandler,
} from './api-server.ts';
import { type LocalCollectors, startLocalCollectors } from './collect-loop.ts';
import { DEMO_VERSION, loadDemo } from './demo/seed.ts';
import { readWorkloadFile, runWorkload } from './demo/workload.ts';
import { type EmbeddedPostgres, startEmbeddedPostgres } from './embedded-postgres.ts';
import { formatCount, formatSeconds, printDemoStep, redactUrl } from './format.ts';

/** What a handler module offers local mode. */
export interface LocalHandlers {
  routes: LocalRoute[];
  /** Closes the handlers' clients (the query handler's pool). */
  shutdown?: () => Promise<void>;
}

export interface LocalServeOptions {
  /** HTTP port; overrides PORT. */
  port?: number;
  host?: string;
  /** Port of the embedded PostgreSQL; default 0 (a free one). */
  pgPort?: number;
  /** Keep embedded PostgreSQL's files here; overrides DBOPT_DATA_DIR. */
  dataDir?: string;
  /** Load the demo: `auto` (default) only into embedded PostgreSQL, `true` also into DATABASE_URL. */
  demo?: boolean | 'auto';
  /** Demo scale factor; default 1. */
  scale?: number;
  /** Replay the demo workload this many rounds after start (in the background); default 0. */
  workloadRounds?: number;
  /** Print one line per HTTP request; default true. */
  accessLog?: boolean;
  /**
   * Quieter handlers: LOG_LEVEL=WARN and POWERTOOLS_METRICS_DISABLED=true unless set
   * (the EMF metric lines are what CloudWatch would receive; locally they are noise).
   */
  quiet?: boolean;
  /**
   * Run the metrics and slow-query collectors on their timers, printing health verdicts and
   * alerts; default true (only with the default handlers).
   */
  collect?: boolean;
  /** Imports the handlers. It runs after the environment is final (handlers read it on import). */
  loadHandlers?: () => Promise<LocalHandlers>;
  /** The environment to read and complete (DATABASE_URL, …); default `process.env`. */
  env?: NodeJS.ProcessEnv;
  print?: (line: string) => void;
}

export interface LocalServe {
  readonly api: LocalApiServer;
  readonly databaseUrl: string;
  readonly embedded: EmbeddedPostgres | undefined;
  /** Stops the workload, the HTTP server, the handlers' pools and embedded PostgreSQL. Safe to call twice. */
  stop(): Promise<void>;
}

/** Placeholder that lets the first config check pass before embedded PostgreSQL has a port. */
const EMBEDDED_PLACEHOLDER_URL = 'postgres://postgres@127.0.0.1:1/postgres';

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

/** The query Lambda, imported only now because it reads its configuration on import. */
export const loadQueryHandlers = async (): Promise<LocalHandlers> => {
  const mod = await import('../functions/query/handler.ts');
  return {
    routes: [
      {
        method: 'POST',
        path: '/query',
        handler: mod.handler as LocalRouteHandler,
        functionName: 'dbopt-query-local',
      },
      {
        method: 'GET',
        path: '/health',
        handler: mod.handler as LocalRouteHandler,
        functionName: 'dbopt-query-local',
      },
    ],
    shutdown: mod.shutdown,
  };
};

/**
 * `dbopt serve`: a database (DATABASE_URL, or embedded PostgreSQL with the demo), the
 * handlers, and the API Gateway–shaped HTTP server in front of them.
 *
 * The HTTP port is bound first, so a taken port fails in milliseconds, not after the
 * database started; until the handlers are ready, routes answer 503 `STARTING`.
 */
export const startLocalServe = async (options: LocalServeOptions = {}): Promise<LocalServe> => {
  const env = options.env ?? process.env;
  const print = options.print ?? ((line: string) => console.log(line));
  const useEmbedded = !env.DATABASE_URL && !env.DB_HOST;

  // Validate everything else now (bad PORT, bad LOG_LEVEL…), before the slow steps.
  const preflight = loadConfig(
    useEmbedded ? { ...env, DATABASE_URL: EMBEDDED_PLACEHOLDER_URL } : withLocalSslDefault(env),
  );
  const dataDir = options.dataDir ?? preflight.DBOPT_DATA_DIR;

  let handlers: LocalHandlers | undefined;
  const api = await createLocalApiServer({
    routes: [
      {
        method: 'POST',
        path: '/query',
        functionName: 'dbopt-query-local',
        handler: async () => startingResponse(),
      },
    ],
    port: options.port ?? preflight.PORT,
    host: options.host ?? '127.0.0.1',
    onResponse: options.accessLog === false ? undefined : (entry) => print(formatAccess(entry)),
  });

  let embedded: EmbeddedPostgres | undefined;
  const workloadAbort = new AbortController();
  let workloadDone: Promise<void> = Promise.resolve();
  const sweepAbort = new AbortController();
  let sweeper: LocalSweeper | undefined;
  const collectAbort = new AbortController();
  let collectors: LocalCollectors | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      workloadAbort.abort();
      sweepAbort.abort();
      collectAbort.abort();
      await workloadDone;
      await sweeper?.done;
      await collectors?.done;
      await api.close();
      await sweeper?.shutdown();
      await collectors?.shutdown();
      await handlers?.shutdown?.();
      await embedded?.stop();
    })();
    return stopping;
  };

  try {
    let databaseUrl: string;
    if (useEmbedded) {
      print(
        `Starting embedded PostgreSQL (PGlite${dataDir ? `, data in ${dataDir}` : ', in memory'})…`,
      );
      embedded = await startEmbeddedPostgres({
        port: options.pgPort ?? 0,
        ...(dataDir ? { dataDir } : {}),
        onCrash: (err) => print(`embedded PostgreSQL stopped unexpectedly: ${err.message}`),
      });
      databaseUrl = embedded.url;
      // Before the handlers are imported: they read the environment once, on import.
      env.DATABASE_URL = databaseUrl;
      env.DB_SSL_MODE = 'disable'; // pglite-socket has no TLS
      env.DB_POOL_MAX = '1'; // PGlite is a single backend
      print(
        `  PostgreSQL ${embedded.serverVersion} (PGlite) at ${databaseUrl} — ready in ${formatSeconds(embedded.startMs)}`,
      );
    } else {
      Object.assign(env, withLocalSslDefault(env));
      databaseUrl = env.DATABASE_URL ?? describeDbHost(preflight);
      print(`Using the database from the environment: ${redactUrl(databaseUrl)}`);
    }

    const wantsDemo = options.demo === true || ((options.demo ?? 'auto') === 'auto' && useEmbedded);
    if (wantsDemo && env.DATABASE_URL) {
      print('Loading demo data…');
      const result = await loadDemo(env.DATABASE_URL, {
        ...(options.scale ? { scale: options.scale } : {}),
        resetStatementStats: useEmbedded,
        onProgress: (step) => printDemoStep(print, step),
      });
      print(
        result.status === 'loaded'
          ? `  done in ${formatSeconds(result.durationMs)}`
          : `  already loaded (scale ${result.scale}): ${formatCount(result.counts.customers)} customers, ${formatCount(result.counts.orders)} orders`,
      );
      if (result.version !== DEMO_VERSION) {
        print(
          `  note: this is demo version ${result.version}, the current one is ${DEMO_VERSION}; run \`dbopt demo load --force\` to reload`,
        );
      }
      if (useEmbedded && !dataDir) {
        print(
          '  tip: set DBOPT_DATA_DIR=.dbopt/pgdata to keep this database between runs (restarts take ~2 s instead of loading again)',
        );
      }
    }

    if (options.quiet) {
      env.LOG_LEVEL ??= 'WARN';
      env.POWERTOOLS_METRICS_DISABLED ??= 'true';
    }
    const config = loadConfig(env); // the configuration the handlers will see
    handlers = await (options.loadHandlers ?? loadQueryHandlers)();
    api.setRoutes(handlers.routes);
    // With Redis, writes that bypass the API are caught by the same sweeper the scheduled
    // Lambda runs; without it the cache is L1-only and bounded by CACHE_L1_TTL_MS alone.
    if (!options.loadHandlers && config.CACHE_ENABLED && config.REDIS_URL) {
      sweeper = await startLocalSweeper(sweepAbort.signal, print);
    }
    printReady(print, api, handlers, config);
    // The scheduled Lambdas' work, on timers: health verdicts and alerts print here.
    if (!options.loadHandlers && options.collect !== false) {
      collectors = await startLocalCollectors({ signal: collectAbort.signal, print, env });
    }

    const rounds = options.workloadRounds ?? 0;
    if (rounds > 0 && env.DATABASE_URL) {
      workloadDone = replayInBackground(env.DATABASE_URL, rounds, workloadAbort.signal, print);
    }
    return Object.freeze({ api, databaseUrl, embedded, stop });
  } catch (err) {
    await stop();
    throw err;
  }
};

interface LocalSweeper {
  done: Promise<unknown>;
  shutdown: () => Promise<void>;
}

/** Runs the cache-sweeper Lambda's loop in the background until `signal` aborts. */
const startLocalSweeper = async (
  signal: AbortSignal,
  print: (line: string) => void,
): Promise<LocalSweeper> => {
  const mod = await import('../functions/cache-sweeper/handler.ts');
  const done = mod.runSweeps({ signal }).catch((err: unknown) => {
    print(`cache sweeper stopped: ${(err as Error).message}`);
  });
  return { done, shutdown: mod.shutdown };
};

/** A DATABASE_URL on this machine almost never has TLS; default DB_SSL_MODE to disable there. */
const withLocalSslDefault = (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv => {
  if (env.DB_SSL_MODE || !env.DATABASE_URL) return env;
  try {
    const host = new URL(env.DATABASE_URL).hostname;
    return LOCAL_HOSTS.has(host) ? { ...env, DB_SSL_MODE: 'disable' } : env;
  } catch {
    return env; // loadConfig reports the malformed URL
  }
};

const describeDbHost = (config: Config): string =>
  `postgres://${config.DB_USER}@${config.DB_HOST ?? '?'}:${config.DB_PORT}/${config.DB_NAME}`;

const startingResponse = () => ({
  statusCode: 503,
  headers: { 'content-type': 'application/json; charset=utf-8', 'retry-after': '5' },
  body: JSON.stringify({
    error: {
      code: 'STARTING',
      message: 'dbopt is still starting (database and demo data); retry in a few seconds',
    },
  }),
});

const formatAccess = (entry: AccessLogEntry): string =>
  `${new Date().toISOString().slice(11, 23)}  ${entry.method} ${entry.path} → ${entry.statusCode} in ${entry.durationMs} ms  (${entry.requestId})`;

const printReady = (
  print: (line: string) => void,
  api: LocalApiServer,
  handlers: LocalHandlers,
  config: Config,
): void => {
  const curlHost = LOCAL_HOSTS.has(api.host) ? `localhost:${api.port}` : `${api.host}:${api.port}`;
  print('');
  print(`dbopt query API listening on ${api.url}`);
  for (const route of handlers.routes) print(`  ${route.method} ${route.path}`);
  print(
    `  writes ${config.QUERY_ALLOW_WRITES ? 'allowed' : 'refused (set QUERY_ALLOW_WRITES=true)'}`,
  );
  print(
    `  result cache ${
      !config.CACHE_ENABLED
        ? 'off'
        : config.REDIS_URL
          ? `L1 + Redis L2 (${redactUrl(config.REDIS_URL)}), out-of-band writes swept every ${config.CACHE_SWEEP_INTERVAL_MS} ms`
          : `L1 only, ${config.CACHE_L1_TTL_MS} ms (set REDIS_URL for L2)`
    }`,
  );
  print('');
  print('Try:');
  print(
    `  curl -s ${curlHost}/query -H 'content-type: application/json' -d '{"sql":"SELECT id, email FROM customers WHERE id = $1","params":[42]}'`,
  );
  print('');
  print('Ctrl-C to stop.');
};

const replayInBackground = async (
  url: string,
  rounds: number,
  signal: AbortSignal,
  print: (line: string) => void,
): Promise<void> => {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
    const report = await runWorkload(client, await readWorkloadFile(), { rounds, signal });
    print(
      `workload: ${formatCount(report.executions)} statements in ${report.rounds} round(s), ${report.errors} errors, ${formatSeconds(report.durationMs)}`,
    );
  } catch (err) {
    // Reported, not fatal: the API keeps serving without the warm-up data.
    print(`workload stopped: ${(err as Error).message}`);
  } finally {
    await client.end().catch(() => undefined);
  }
};
