import { z } from 'zod';
import { ConfigError } from '#shared/errors';
import { parseShardMap } from '#shared/sharding';

/**
 * The one configuration schema (STYLE.md rule 6). Every default lives here; nothing else
 * reads `process.env`. Parse once per cold start with {@link loadConfig}.
 */
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const positiveInt = () => z.coerce.number().int().positive();

export const ConfigSchema = z
  .object({
    /** Full connection string; when set it wins over the DB_* parts. */
    DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
    DB_HOST: z.string().min(1).optional(),
    DB_PORT: z.coerce.number().int().min(1).max(65535).default(5432),
    DB_NAME: z.string().min(1).default('postgres'),
    DB_USER: z.string().min(1).default('postgres'),
    /** Static password (local use). In AWS prefer DB_IAM_AUTH=true. */
    DB_PASSWORD: z.string().optional(),
    /** Sign a fresh RDS IAM auth token for every new connection (@aws-sdk/rds-signer). */
    DB_IAM_AUTH: bool.default(false),
    /** disable: plain TCP; require: TLS without verification; verify-full: TLS, CA + host name checked. */
    DB_SSL_MODE: z.enum(['disable', 'require', 'verify-full']).default('verify-full'),
    /** PEM bundle for verify-full (e.g. the RDS global bundle); Node's store is used when unset. */
    DB_SSL_CA_FILE: z.string().min(1).optional(),
    /** Pool size per process. 1 fits Lambda: one invocation at a time per instance. */
    DB_POOL_MAX: positiveInt().max(100).default(1),
    DB_CONNECT_TIMEOUT_MS: positiveInt().default(5_000),
    DB_IDLE_TIMEOUT_MS: positiveInt().default(60_000),

    /** Per database target: consecutive unavailable errors that open its circuit breaker. */
    DB_BREAKER_FAILURES: positiveInt().default(5),
    /** How long an open breaker fails fast before letting one trial call through. */
    DB_BREAKER_HALF_OPEN_MS: positiveInt().default(10_000),
    /** Extra attempts for transient failures of read-only statements (reset, failover, 40001). */
    DB_RETRIES: z.coerce.number().int().min(0).max(5).default(2),
    DB_RETRY_BASE_MS: positiveInt().default(25),

    /** Default per-request time limit, enforced on the client (`query_timeout`). */
    QUERY_TIMEOUT_MS: positiveInt().default(5_000),
    /** Largest `timeoutMs` a caller may ask for. */
    QUERY_MAX_TIMEOUT_MS: positiveInt().default(30_000),
    /** Default row cap when the request has no `maxRows`. */
    QUERY_DEFAULT_MAX_ROWS: positiveInt().default(1_000),
    /** Largest `maxRows` a caller may ask for. */
    QUERY_MAX_ROWS: positiveInt().default(10_000),
    /** Largest response body in bytes (API Gateway + Lambda cap payloads at 6 MB). */
    QUERY_MAX_RESPONSE_BYTES: positiveInt().max(6_000_000).default(5_000_000),
    /** Allow INSERT / UPDATE / DELETE / MERGE through the query API. */
    QUERY_ALLOW_WRITES: bool.default(false),
    /**
     * Largest accepted SQL text in bytes. The WASM parser's stack overflows on pathological
     * text from about 18 KB, so the ceiling stays below that.
     */
    QUERY_MAX_SQL_BYTES: positiveInt().max(16_384).default(16_384),
    /** Largest number of bound parameters. */
    QUERY_MAX_PARAMS: positiveInt().max(65_535).default(1_000),

    /** Redis for the L2 result cache (`rediss://` for TLS). Unset: L1 (in-process) only. */
    REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
    /** Turn the result cache off entirely. */
    CACHE_ENABLED: bool.default(true),
    /** Name of the database target in cache keys and version keys. */
    CACHE_TARGET: z.string().min(1).default('primary'),
    CACHE_KEY_PREFIX: z.string().min(1).default('dbopt'),
    /** In-process L1 size and lifetime; L1 is not re-validated, so its TTL is part of the bound. */
    CACHE_L1_MAX_BYTES: positiveInt().default(50_000_000),
    CACHE_L1_TTL_MS: positiveInt().max(60_000).default(1_000),
    /** L2 entry lifetime: default, and the most a request may ask for with `cacheTtlMs`. */
    CACHE_DEFAULT_TTL_MS: positiveInt().default(60_000),
    CACHE_MAX_TTL_MS: positiveInt().default(300_000),
    /** Results larger than this are served but not cached. */
    CACHE_MAX_ENTRY_BYTES: positiveInt().default(1_000_000),
    /** Cross-instance stampede lock: how long it is held at most, how long others wait. */
    CACHE_LOCK_TTL_MS: positiveInt().default(5_000),
    CACHE_LOCK_WAIT_MS: z.coerce.number().int().min(0).default(200),
    /** Consecutive Redis failures that open the breaker, and how long it stays open. */
    CACHE_BREAKER_FAILURES: positiveInt().default(5),
    CACHE_BREAKER_HALF_OPEN_MS: positiveInt().default(5_000),
    REDIS_COMMAND_TIMEOUT_MS: positiveInt().default(100),
    REDIS_CONNECT_TIMEOUT_MS: positiveInt().default(1_000),
    /** How often the freshness sweeper compares pg_stat_user_tables write counters. */
    CACHE_SWEEP_INTERVAL_MS: positiveInt().default(5_000),

    /**
     * Shard map (JSON, see shared/sharding: `{ "version", "shards": [{ "name" }], "slots"? }`).
     * With it, a request's `shardKey` routes the statement to one shard.
     */
    SHARD_MAP: z.string().min(1).optional(),
    /** Connection string per shard (JSON object: shard name → postgres:// URL). */
    SHARD_URLS: z.string().min(1).optional(),

    // ── repository (shared/repository) ──
    /** Database holding the `dbopt` schema (snapshots, history, alerts, suggestions). Default: the primary. */
    REPOSITORY_DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),

    // ── collectors (shared/stats) ──

    // ── health analysis and alerts (shared/analysis, shared/alerts) ──

    // ── advisor (shared/advisor) ──

    // ── read replicas and rebalancing (shared/sharding, shared/query) ──

    /** Entries kept in the per-process parse cache (shared/sql). */
    SQL_PARSE_CACHE_ENTRIES: positiveInt().default(2_000),

    /** Powertools service name and metrics namespace. */
    SERVICE_NAME: z.string().min(1).default('dbopt'),
    METRICS_NAMESPACE: z.string().min(1).default('dbopt'),
    LOG_LEVEL: z.enum(['DEBUG', 'INFO', 'WARN', 'ERROR', 'SILENT']).default('INFO'),

    /** Local mode: HTTP port of the API Gateway–shaped server. */
    PORT: z.coerce.number().int().min(0).max(65535).default(3000),
    /** Local mode: where the embedded PostgreSQL keeps its files (memory when unset). */
    DBOPT_DATA_DIR: z.string().min(1).optional(),
    AWS_REGION: z.string().min(1).optional(),
  })
  .superRefine((c, ctx) => {
    checkShards(c.SHARD_MAP, c.SHARD_URLS, ctx);
    if (!c.DATABASE_URL && !c.DB_HOST) {
      ctx.addIssue({
        code: 'custom',
        path: ['DB_HOST'],
        message: 'set DB_HOST (e.g. the RDS Proxy endpoint) or DATABASE_URL',
      });
    }
    if (c.DB_IAM_AUTH && !c.AWS_REGION) {
      ctx.addIssue({
        code: 'custom',
        path: ['AWS_REGION'],
        message: 'required when DB_IAM_AUTH=true',
      });
    }
    if (c.DB_IAM_AUTH && c.DB_SSL_MODE === 'disable') {
      ctx.addIssue({
        code: 'custom',
        path: ['DB_SSL_MODE'],
        message: 'IAM authentication needs TLS; use require or verify-full',
      });
    }
    if (c.QUERY_TIMEOUT_MS > c.QUERY_MAX_TIMEOUT_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['QUERY_TIMEOUT_MS'],
        message: `must not exceed QUERY_MAX_TIMEOUT_MS (${c.QUERY_MAX_TIMEOUT_MS})`,
      });
    }
    if (c.CACHE_DEFAULT_TTL_MS > c.CACHE_MAX_TTL_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['CACHE_DEFAULT_TTL_MS'],
        message: `must not exceed CACHE_MAX_TTL_MS (${c.CACHE_MAX_TTL_MS})`,
      });
    }
    if (c.QUERY_DEFAULT_MAX_ROWS > c.QUERY_MAX_ROWS) {
      ctx.addIssue({
        code: 'custom',
        path: ['QUERY_DEFAULT_MAX_ROWS'],
        message: `must not exceed QUERY_MAX_ROWS (${c.QUERY_MAX_ROWS})`,
      });
    }
  });

export type Config = Readonly<z.output<typeof ConfigSchema>>;

const ShardUrlsSchema = z.record(z.string(), z.url({ protocol: /^postgres(ql)?$/ }));

/** Parses SHARD_URLS (already validated by the schema when set). */
export const shardUrlsOf = (config: Config): Readonly<Record<string, string>> =>
  config.SHARD_URLS ? ShardUrlsSchema.parse(JSON.parse(config.SHARD_URLS)) : {};

/** SHARD_MAP and SHARD_URLS come together, parse, and name a URL for every shard. */
function checkShards(
  map: string | undefined,
  urls: string | undefined,
  ctx: z.RefinementCtx,
): void {
  if (!map && !urls) return;
  if (!map || !urls) {
    ctx.addIssue({
      code: 'custom',
      path: [map ? 'SHARD_URLS' : 'SHARD_MAP'],
      message: 'SHARD_MAP and SHARD_URLS must be set together',
    });
    return;
  }
  let names: string[] = [];
  try {
    names = parseShardMap(map).shards.map((s) => s.name);
  } catch (err) {
    ctx.addIssue({ code: 'custom', path: ['SHARD_MAP'], message: (err as Error).message });
  }
  let parsed: Record<string, string> | undefined;
  try {
    parsed = ShardUrlsSchema.parse(JSON.parse(urls));
  } catch {
    ctx.addIssue({
      code: 'custom',
      path: ['SHARD_URLS'],
      message: 'must be a JSON object mapping each shard name to a postgres:// URL',
    });
    return;
  }
  const missing = names.filter((name) => !parsed?.[name]);
  if (missing.length > 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['SHARD_URLS'],
      message: `has no URL for shard(s) ${missing.join(', ')}`,
    });
  }
}

/**
 * Parses the environment once into a frozen, typed object. Empty strings count as unset.
 * Throws one {@link ConfigError} that names every bad variable.
 *
 * @example
 * const config = loadConfig(); // at module scope of a handler, once per cold start
 */
export const loadConfig = (
  env: Readonly<Record<string, string | undefined>> = process.env,
): Config => {
  const cleaned = Object.fromEntries(
    Object.entries(env).filter(([, v]) => v !== undefined && v !== ''),
  );
  const parsed = ConfigSchema.safeParse(cleaned);
  if (!parsed.success) {
    const names = [...new Set(parsed.error.issues.map((i) => String(i.path[0] ?? '(root)')))];
    throw new ConfigError(
      `Invalid configuration (${names.join(', ')}):\n${z.prettifyError(parsed.error)}`,
      { details: { variables: names } },
    );
  }
  return Object.freeze(parsed.data);
};
