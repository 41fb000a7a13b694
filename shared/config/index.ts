import { z } from 'zod';
import { healthThresholdsEnvSchema } from '#shared/analysis';
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
    /** SQS queue for slow-query messages (optimizer input). Unset: slow queries are only logged/returned. */
    SLOW_QUERY_QUEUE_URL: z.url({ protocol: /^https?$/ }).optional(),
    /** Slow statements reported per target and run (ranked by time consumed in the interval). */
    SLOW_QUERY_TOP_N: positiveInt().max(1_000).default(20),
    /** Interval mean execution time (ms) from which a statement can be "slow". */
    SLOW_QUERY_MIN_MEAN_MS: z.coerce.number().min(0).default(10),
    /** Interval calls from which a statement can be "slow". */
    SLOW_QUERY_MIN_CALLS: positiveInt().default(1),
    /** A sequential scan of a table with at least this many estimated rows is a finding. */
    SLOW_QUERY_SEQ_SCAN_MIN_ROWS: positiveInt().default(10_000),
    /** Server-side limit (SET LOCAL statement_timeout) of each EXPLAIN of a slow statement. */
    SLOW_QUERY_EXPLAIN_TIMEOUT_MS: positiveInt().default(2_000),
    /** Server-side limit of one target's catalog reads (pg_stat_* views). */
    STATS_READ_TIMEOUT_MS: positiveInt().default(5_000),
    /** How the collectors read statistics: `pg` (in the VPC) or `data-api` (RDS Data API, Aurora). */
    STATS_SOURCE: z.enum(['pg', 'data-api']).default('pg'),
    /** With STATS_SOURCE=data-api: the Aurora cluster ARN… */
    DATA_API_RESOURCE_ARN: z.string().startsWith('arn:').optional(),
    /** …the Secrets Manager secret ARN with its credentials… */
    DATA_API_SECRET_ARN: z.string().startsWith('arn:').optional(),
    /** …and the database name. */
    DATA_API_DATABASE: z.string().min(1).optional(),
    /** Days of metric history kept in the repository (trend analysis reads it). */
    METRICS_HISTORY_DAYS: positiveInt().max(3_650).default(14),
    /** History window of the trend analysis (minutes). */
    STATS_TREND_WINDOW_MINUTES: positiveInt().default(60),
    /** Local mode: how often `dbopt serve` / `dbopt collect` run the metrics collector. */
    COLLECT_METRICS_INTERVAL_MS: positiveInt().min(1_000).default(60_000),
    /** Local mode: how often they run the slow-query collector. */
    COLLECT_SLOW_QUERIES_INTERVAL_MS: positiveInt().min(1_000).default(300_000),

    // ── health analysis and alerts (shared/analysis, shared/alerts) ──
    /** SNS topic for alerts. Unset: alerts are computed and logged only (local mode prints them). */
    ALERT_TOPIC_ARN: z.string().startsWith('arn:').optional(),
    /** How long an unchanged open alert stays quiet before a reminder (default 30 min). */
    ALERT_COOLDOWN_MS: positiveInt().default(1_800_000),
    /** Extra SNS Publish attempts for throttling, 5xx and network errors (exponential back-off). */
    ALERT_PUBLISH_RETRIES: z.coerce.number().int().min(0).max(10).default(3),
    /**
     * Health threshold overrides (JSON, any subset of checks and levels, merged over the defaults
     * of shared/analysis), e.g. `{"connectionUtilisation":{"critical":0.9}}`. Parsed once here.
     */
    HEALTH_THRESHOLDS: healthThresholdsEnvSchema().optional(),

    // ── advisor (shared/advisor) ──
    /** Database the index advisor plans on: the DB endpoint, never RDS Proxy (HypoPG pins the session). Default: the primary. */
    ADVISOR_DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
    /** Most indexes one advisor run proposes. */
    ADVISOR_MAX_INDEXES: positiveInt().max(1_000).default(25),
    /** Size budget of one run's proposals, bytes (default 10 GiB). */
    ADVISOR_MAX_INDEX_BYTES: positiveInt().default(10 * 1024 ** 3),
    /** Tables with fewer estimated rows are never indexed: a sequential scan is already cheap. */
    ADVISOR_MIN_TABLE_ROWS: z.coerce.number().int().min(0).default(10_000),
    /** Server-side limit per advisor statement (EXPLAIN, HypoPG, rolled-back candidate builds). */
    ADVISOR_STATEMENT_TIMEOUT_MS: positiveInt().default(30_000),
    /** A candidate must cut some statement's plan cost by at least this fraction (0–1). */
    ADVISOR_MIN_IMPROVEMENT: z.coerce.number().min(0).max(1).default(0.2),
    /** A hard-coded literal gets a partial index when it matches at most this fraction of rows. */
    ADVISOR_PARTIAL_MAX_FRACTION: z.coerce.number().min(0).max(1).default(0.1),
    /** auto: HypoPG when installed (creating the extension if allowed); never: always build candidates in rolled-back transactions. */
    ADVISOR_USE_HYPOPG: z.enum(['auto', 'never']).default('auto'),
    // optimizer / auto-apply
    /** Build verified indexes automatically (CREATE INDEX CONCURRENTLY, then check; drop if useless). Off: suggest only. */
    ADVISOR_AUTO_APPLY: bool.default(false),
    /** lock_timeout of an index build (ms): give up rather than queue writers behind it. */
    APPLY_LOCK_TIMEOUT_MS: positiveInt().default(5_000),
    /** Largest index auto-apply or `dbopt apply` builds, bytes (default 1 GiB). */
    APPLY_MAX_INDEX_BYTES: positiveInt().default(1024 ** 3),
    /** statement_timeout of one index build (ms, default 10 min). */
    APPLY_MAX_BUILD_MS: positiveInt().default(600_000),
    /** SNS topic announcing new suggestions. Default: ALERT_TOPIC_ARN; neither: logged only. */
    SUGGESTION_TOPIC_ARN: z.string().startsWith('arn:').optional(),
    /** Calls each served statement needs since an auto-applied build before its mean time is compared with before. */
    APPLY_RECHECK_MIN_CALLS: positiveInt().default(100),
    /** Index hygiene calls an index unused only after scan counters cover this many days. */
    HYGIENE_MIN_INDEX_AGE_DAYS: z.coerce.number().min(0).default(7),
    /** Top pg_stat_statements entries of a target optimised together with a slow statement. */
    OPTIMIZER_WORKLOAD_STATEMENTS: positiveInt().max(500).default(50),

    // ── read replicas and rebalancing (shared/sharding, shared/query) ──
    /**
     * Read endpoints per target: JSON object, "primary" or a shard name → array of postgres://
     * URLs, e.g. `{"primary":["postgres://…/app"],"s1":["postgres://…"]}`. Read-only statements
     * go to them unless the request says `consistency: "primary"`. Unset: no replicas.
     */
    REPLICA_URLS: z
      .string()
      .min(1)
      .refine((text) => {
        try {
          const urls = z.array(z.url({ protocol: /^postgres(ql)?$/ })).min(1);
          return z.record(z.string().min(1), urls).safeParse(JSON.parse(text)).success;
        } catch {
          return false;
        }
      }, 'must be a JSON object mapping "primary" or a shard name to an array of postgres:// URLs')
      .optional(),
    /**
     * Largest replication lag a replica may have to serve a read; also the staleness bound of
     * replica-served results (cached ones expire by then; plus CACHE_L1_TTL_MS in L1).
     */
    REPLICA_MAX_LAG_MS: positiveInt().default(5_000),
    /** How long a measured lag is trusted; the next read after that measures it again. */
    REPLICA_LAG_CHECK_INTERVAL_MS: positiveInt().default(1_000),
    /** Time limit of one lag probe (runs on the request path, at most once per interval). */
    REPLICA_LAG_PROBE_TIMEOUT_MS: positiveInt().default(250),
    /** Connect timeout of replica pools: a dead replica should cost little before the fallback. */
    REPLICA_CONNECT_TIMEOUT_MS: positiveInt().default(1_000),
    /** How reads pick among healthy replicas. */
    REPLICA_SELECTION: z.enum(['round-robin', 'least-outstanding']).default('round-robin'),
    /**
     * An endpoint that is not in recovery (logical subscriber, plain database) has no
     * measurable lag: `skip` it, or trust it as `zero-lag` (lag monitored elsewhere; tests).
     */
    REPLICA_NON_STANDBY: z.enum(['skip', 'zero-lag']).default('skip'),

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
    if (c.STATS_SOURCE === 'data-api') {
      for (const key of [
        'DATA_API_RESOURCE_ARN',
        'DATA_API_SECRET_ARN',
        'DATA_API_DATABASE',
      ] as const) {
        if (!c[key])
          ctx.addIssue({
            code: 'custom',
            path: [key],
            message: 'required when STATS_SOURCE=data-api (set all three)',
          });
      }
    }
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
