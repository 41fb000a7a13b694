import { readFileSync } from 'node:fs';
import { Signer } from '@aws-sdk/rds-signer';
import pg from 'pg';
import type { Config } from '#shared/config';
import { isAppError } from '#shared/errors';
import { mapDbError } from './errors.ts';

/** The narrow logging surface shared/db needs (Powertools Logger satisfies it). */
export interface DbLogger {
  warn(message: string, ...extra: unknown[]): void;
}

/** Options for {@link createDatabase}, derived from {@link Config} by {@link databaseOptionsFromConfig}. */
export interface DatabaseOptions {
  connectionString?: string;
  host?: string;
  port: number;
  database: string;
  user: string;
  password?: string;
  /** Sign an RDS IAM auth token per new connection instead of a static password. */
  iamAuth?: { region: string };
  sslMode: 'disable' | 'require' | 'verify-full';
  sslCaFile?: string;
  poolMax: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  /** Client-side limit for any query that does not pass its own. */
  queryTimeoutMs: number;
}

export const databaseOptionsFromConfig = (config: Config): DatabaseOptions => ({
  connectionString: config.DATABASE_URL,
  host: config.DB_HOST,
  port: config.DB_PORT,
  database: config.DB_NAME,
  user: config.DB_USER,
  password: config.DB_PASSWORD,
  iamAuth: config.DB_IAM_AUTH && config.AWS_REGION ? { region: config.AWS_REGION } : undefined,
  sslMode: config.DB_SSL_MODE,
  sslCaFile: config.DB_SSL_CA_FILE,
  poolMax: config.DB_POOL_MAX,
  connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
  idleTimeoutMs: config.DB_IDLE_TIMEOUT_MS,
  // The statement's own server-side limit (SET LOCAL) fires first; this client-side backstop
  // covers a stalled network or a server that ignores statement_timeout (PGlite).
  queryTimeoutMs: config.QUERY_MAX_TIMEOUT_MS + CLIENT_TIMEOUT_GRACE_MS,
});

/** How much longer than the server-side limit the client waits before giving up on a socket. */
export const CLIENT_TIMEOUT_GRACE_MS = 1_000;

const sslOptions = (options: DatabaseOptions): pg.ClientConfig['ssl'] => {
  if (options.sslMode === 'disable') return false;
  if (options.sslMode === 'require') return { rejectUnauthorized: false };
  return {
    rejectUnauthorized: true,
    ...(options.sslCaFile ? { ca: readFileSync(options.sslCaFile, 'utf8') } : {}),
  };
};

/**
 * Builds the pg.Pool configuration. Deliberately sends no startup `options` and runs no
 * session `SET`: RDS Proxy rejects `statement_timeout` as a startup option and pins the
 * client connection on any session-level SET. Time limits come from `SET LOCAL` inside each
 * transaction plus the driver's client-side `query_timeout`.
 */
export const buildPoolConfig = (options: DatabaseOptions): pg.PoolConfig => {
  const base: pg.PoolConfig = {
    max: options.poolMax,
    connectionTimeoutMillis: options.connectTimeoutMs,
    idleTimeoutMillis: options.idleTimeoutMs,
    query_timeout: options.queryTimeoutMs,
    // Lambda freezes between invocations; let an idle pool not hold the process open locally.
    allowExitOnIdle: true,
  };
  // A password-less URL with IAM auth on (a shard, replica or repository behind RDS Proxy):
  // sign a token for the URL's own host, port and user, as for the DB_* parts.
  if (options.connectionString && options.iamAuth) {
    const url = new URL(options.connectionString);
    if (!url.password) return { ...base, ...iamPartsOfUrl(url, options, options.iamAuth.region) };
  }
  // With a connection string pg reads sslmode from it; an explicit ssl object would override it.
  if (options.connectionString) {
    const url = new URL(options.connectionString);
    return url.searchParams.has('sslmode')
      ? { ...base, connectionString: options.connectionString }
      : { ...base, connectionString: options.connectionString, ssl: sslOptions(options) };
  }
  const password = options.iamAuth
    ? iamTokenProvider(options, options.iamAuth.region)
    : options.password;
  return {
    ...base,
    host: options.host,
    port: options.port,
    database: options.database,
    user: options.user,
    password,
    ssl: sslOptions(options),
  };
};

const URL_SSL_MODES: Readonly<Record<string, DatabaseOptions['sslMode']>> = {
  disable: 'disable',
  require: 'require',
  'verify-ca': 'verify-full',
  'verify-full': 'verify-full',
};

/** Connection parts of a password-less URL, with an IAM token provider for its user. */
const iamPartsOfUrl = (url: URL, options: DatabaseOptions, region: string): pg.PoolConfig => {
  const sslMode = URL_SSL_MODES[url.searchParams.get('sslmode') ?? ''] ?? options.sslMode;
  const parts: DatabaseOptions = {
    ...options,
    host: url.hostname,
    port: url.port ? Number(url.port) : 5432,
    database: decodeURIComponent(url.pathname.slice(1)) || options.database,
    user: decodeURIComponent(url.username) || options.user,
    sslMode,
  };
  return {
    host: parts.host,
    port: parts.port,
    database: parts.database,
    user: parts.user,
    password: iamTokenProvider(parts, region),
    ssl: sslOptions(parts),
  };
};

/** RDS IAM tokens live 15 minutes; pg calls this once per new physical connection. */
const iamTokenProvider = (options: DatabaseOptions, region: string): (() => Promise<string>) => {
  const signer = new Signer({
    hostname: options.host ?? '',
    port: options.port,
    username: options.user,
    region,
  });
  return () => signer.getAuthToken();
};

/**
 * A lazily created pool: constructing it opens nothing; the pg.Pool (and its first
 * connection) appears on first use. Handlers build one at module scope, once per cold start.
 */
export interface Database {
  /** The underlying pool, created on first access. */
  pool(): pg.Pool;
  /** Closes every connection; safe to call when the pool was never created. */
  end(): Promise<void>;
  /** Whether the pool has been created (for tests and diagnostics). */
  readonly started: boolean;
}

export const createDatabase = (options: DatabaseOptions, logger?: DbLogger): Database => {
  let pool: pg.Pool | undefined;
  return {
    pool() {
      if (!pool) {
        pool = new pg.Pool(buildPoolConfig(options));
        // An idle client losing its socket must not crash the process; the pool drops it.
        pool.on('error', (err) => logger?.warn('idle database connection failed', { err }));
      }
      return pool;
    },
    async end() {
      const current = pool;
      pool = undefined;
      await current?.end();
    },
    get started() {
      return pool !== undefined;
    },
  };
};

/** A client checked out of the pool, with the two ways to give it back. */
export interface Checkout {
  client: pg.PoolClient;
  /** Returns a healthy, idle connection to the pool. */
  release(): void;
  /**
   * Gives the connection back after `err`. An error the server reported (or one of ours
   * raised between statements) leaves the socket healthy: roll back an open transaction when
   * `inTransaction`, and reuse it. Anything else (a client-side timeout with the statement
   * still running, a broken socket) destroys it; a ROLLBACK there would only queue behind the
   * running statement.
   */
  discard(err: unknown, inTransaction: boolean): Promise<void>;
}

/**
 * Checks a client out of the pool, mapping connection failures to typed errors. While it is
 * checked out, a socket error reaches the running query (which rejects with it); the
 * listener added here only keeps the same error, emitted again as an 'error' event, from
 * crashing the process.
 */
export const acquireClient = async (db: Database): Promise<Checkout> => {
  let client: pg.PoolClient;
  try {
    client = await db.pool().connect();
  } catch (err) {
    throw mapDbError(err);
  }
  const onError = (): void => undefined;
  client.on('error', onError);
  const giveBack = (destroy?: Error | boolean): void => {
    client.off('error', onError);
    client.release(destroy);
  };
  return {
    client,
    release: () => giveBack(),
    discard: async (err, inTransaction) => {
      if (!(err instanceof pg.DatabaseError || isAppError(err))) {
        giveBack(err instanceof Error ? err : true);
        return;
      }
      if (!inTransaction) {
        giveBack();
        return;
      }
      try {
        await client.query('ROLLBACK');
        giveBack();
      } catch (rollbackErr) {
        giveBack(rollbackErr instanceof Error ? rollbackErr : true);
      }
    },
  };
};
