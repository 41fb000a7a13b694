import { z } from 'zod';
import {
  bareTableName,
  type CacheRedisClient,
  cacheSettingsFromConfig,
  createResultCache,
  type ResultCache,
} from '#shared/cache';
import { type Config, shardUrlsOf } from '#shared/config';
import {
  BUILTIN_TYPE_NAMES,
  CLIENT_TIMEOUT_GRACE_MS,
  type Database,
  executeStatement,
  type ResultField,
  type StatementResult,
} from '#shared/db';
import {
  ConfigError,
  isAppError,
  QueryTimeoutError,
  ResultTooLargeError,
  ValidationError,
} from '#shared/errors';
import { type MetricsSink, MetricUnit } from '#shared/metrics';
import type { TargetGuard, TargetGuardOptions } from '#shared/resilience';
import { scatterGather } from '#shared/scatter';
import { createShardRouter, parseShardMap, type ShardRouter } from '#shared/sharding';
import { assertSingleStatement, type SqlAnalysis, type SqlAnalyzer } from '#shared/sql';
import { createRelationKinds, type RelationKinds } from './relations.ts';
import {
  createReplicaSet,
  isReplicaUnavailable,
  type LagProbe,
  type ReplicaEndpoint,
  type ReplicaHealth,
  type ReplicaSet,
  type SkippedReplica,
} from './replicas.ts';

export type { RelationKinds } from './relations.ts';
export {
  createReplicaSet,
  type LagProbe,
  type LagReading,
  type NonStandbyPolicy,
  probeReplicaLag,
  type ReplicaChoice,
  type ReplicaEndpoint,
  type ReplicaHealth,
  type ReplicaPolicy,
  type ReplicaSelection,
  type ReplicaSet,
  type ReplicaSkipReason,
  type SkippedReplica,
} from './replicas.ts';

type CacheLogger = { warn(message: string, ...extra: unknown[]): void };

/** Limits and policy of the query API, taken from {@link Config}. */
export interface QueryPolicy {
  allowWrites: boolean;
  defaultTimeoutMs: number;
  maxTimeoutMs: number;
  defaultMaxRows: number;
  maxRows: number;
  maxResponseBytes: number;
  maxSqlBytes: number;
  maxParams: number;
  maxCacheTtlMs: number;
}

export const queryPolicyFromConfig = (config: Config): QueryPolicy =>
  Object.freeze({
    allowWrites: config.QUERY_ALLOW_WRITES,
    defaultTimeoutMs: config.QUERY_TIMEOUT_MS,
    maxTimeoutMs: config.QUERY_MAX_TIMEOUT_MS,
    defaultMaxRows: config.QUERY_DEFAULT_MAX_ROWS,
    maxRows: config.QUERY_MAX_ROWS,
    maxResponseBytes: config.QUERY_MAX_RESPONSE_BYTES,
    maxSqlBytes: config.QUERY_MAX_SQL_BYTES,
    maxParams: config.QUERY_MAX_PARAMS,
    maxCacheTtlMs: config.CACHE_MAX_TTL_MS,
  });

/** The result cache and what its keys depend on; absent when the cache is off. */
export interface QueryCacheDeps {
  cache: ResultCache;
  /** Which relation names are plain tables, per target database (memoised per target). */
  relationsOf: (db: Database) => RelationKinds;
  /** Database target name in keys and version keys (shard name later). */
  target: string;
  /** Database role the statements run as (grants and row-level security change results). */
  role: string;
  defaultTtlMs: number;
  maxTtlMs: number;
  /** Whether an L2 Redis is configured (health reports its breaker). */
  hasRedis: boolean;
}

/** Shard routing: the router built once from SHARD_MAP, and one lazy pool per shard. */
export interface QueryShards {
  router: ShardRouter;
  databases: ReadonlyMap<string, Database>;
  /** One circuit breaker (and retry policy) per shard. */
  guards: ReadonlyMap<string, TargetGuard>;
}

export interface QueryDeps {
  /** The primary: statements without a `shardKey`. */
  db: Database;
  /** The primary's circuit breaker and retry policy. */
  guard?: TargetGuard;
  sql: SqlAnalyzer;
  policy: QueryPolicy;
  metrics: MetricsSink;
  cache?: QueryCacheDeps;
  shards?: QueryShards;
  /** Read replicas per target name (`primary` or a shard name), from REPLICA_URLS. */
  replicas?: ReadonlyMap<string, ReplicaSet>;
}

/**
 * Builds the shard targets from SHARD_MAP and SHARD_URLS (validated by loadConfig), or
 * undefined when sharding is not configured. `createDb` makes one (lazy) pool per shard URL.
 */
export const createQueryShards = (
  config: Config,
  createDb: (connectionString: string) => Database,
  createGuard: (target: string) => TargetGuard,
): QueryShards | undefined => {
  if (!config.SHARD_MAP) return undefined;
  const router = createShardRouter(parseShardMap(config.SHARD_MAP));
  const urls = shardUrlsOf(config);
  const databases = new Map(router.shards.map((shard) => [shard, createDb(urls[shard] as string)]));
  const guards = new Map(router.shards.map((shard) => [shard, createGuard(shard)]));
  return { router, databases, guards };
};

const ReplicaUrlsSchema = z.record(
  z.string().min(1),
  z.array(z.url({ protocol: /^postgres(ql)?$/ })).min(1),
);

/**
 * Builds one {@link ReplicaSet} per target named in REPLICA_URLS (validated by loadConfig),
 * or undefined when it is unset. Targets are `primary` and the shard names of SHARD_MAP; an
 * unknown name fails the cold start. Replica `n` (from 1) of target `t` is named `t/rn`; each
 * gets a lazy pool (`createDb`, with REPLICA_CONNECT_TIMEOUT_MS) and its own breaker.
 */
export const createQueryReplicas = (
  config: Config,
  createDb: (connectionString: string, options: { connectTimeoutMs: number }) => Database,
  createGuard: (target: string) => TargetGuard,
  deps: { metrics: MetricsSink; probe?: LagProbe },
): ReadonlyMap<string, ReplicaSet> | undefined => {
  if (!config.REPLICA_URLS) return undefined;
  const urls = ReplicaUrlsSchema.parse(JSON.parse(config.REPLICA_URLS));
  const targets = [
    'primary',
    ...(config.SHARD_MAP ? parseShardMap(config.SHARD_MAP).shards.map((s) => s.name) : []),
  ];
  const unknown = Object.keys(urls).filter((name) => !targets.includes(name));
  if (unknown.length > 0) {
    throw new ConfigError(
      `Invalid configuration (REPLICA_URLS): unknown target(s) ${unknown.join(', ')}; use "primary" or a shard name of SHARD_MAP (${targets.join(', ')})`,
      { details: { variables: ['REPLICA_URLS'] } },
    );
  }
  const policy = {
    maxLagMs: config.REPLICA_MAX_LAG_MS,
    lagCheckIntervalMs: config.REPLICA_LAG_CHECK_INTERVAL_MS,
    lagProbeTimeoutMs: config.REPLICA_LAG_PROBE_TIMEOUT_MS,
    selection: config.REPLICA_SELECTION,
    nonStandby: config.REPLICA_NON_STANDBY,
  };
  const connectTimeoutMs = Math.min(
    config.DB_CONNECT_TIMEOUT_MS,
    config.REPLICA_CONNECT_TIMEOUT_MS,
  );
  return new Map(
    Object.entries(urls).map(([target, list]) => {
      const endpoints: ReplicaEndpoint[] = list.map((url, i) => {
        const name = `${target}/r${i + 1}`;
        return { name, db: createDb(url, { connectTimeoutMs }), guard: createGuard(name) };
      });
      return [target, createReplicaSet(target, endpoints, policy, deps)];
    }),
  );
};

/** Breaker and retry settings of every database target, from {@link Config}. */
export const targetGuardOptionsFromConfig = (config: Config): TargetGuardOptions => ({
  consecutiveFailures: config.DB_BREAKER_FAILURES,
  halfOpenAfterMs: config.DB_BREAKER_HALF_OPEN_MS,
  retries: config.DB_RETRIES,
  retryBaseDelayMs: config.DB_RETRY_BASE_MS,
});

/** A bound value: JSON scalars, arrays (sent as PostgreSQL arrays) and objects (sent as JSON). */
const ParamSchema = z.union([
  z.string(),
  z.number(),
  z.boolean(),
  z.null(),
  z.array(z.unknown()),
  z.record(z.string(), z.unknown()),
]);

const buildRequestSchema = (policy: QueryPolicy) =>
  z.strictObject({
    sql: z
      .string({ error: (i) => (i.input === undefined ? 'is required' : 'must be a string') })
      .refine((s) => s.trim().length > 0, 'must not be empty')
      .refine(
        (s) => Buffer.byteLength(s) <= policy.maxSqlBytes,
        `must be at most ${policy.maxSqlBytes} bytes`,
      ),
    params: z
      .array(ParamSchema, { error: 'must be an array of JSON values' })
      .max(policy.maxParams, `must have at most ${policy.maxParams} items`)
      .optional(),
    timeoutMs: z
      .number({ error: 'must be a number of milliseconds' })
      .int('must be an integer')
      .positive('must be positive')
      .max(policy.maxTimeoutMs, `must be at most ${policy.maxTimeoutMs}`)
      .optional(),
    maxRows: z
      .number({ error: 'must be a number' })
      .int('must be an integer')
      .positive('must be positive')
      .max(policy.maxRows, `must be at most ${policy.maxRows}`)
      .optional(),
    shardKey: z
      .union([z.string().min(1), z.number().finite()], {
        error: 'must be a non-empty string or a finite number',
      })
      .optional(),
    scatter: z.boolean({ error: 'must be true or false' }).optional(),
    failurePolicy: z.enum(['fail', 'partial'], { error: 'must be "fail" or "partial"' }).optional(),
    consistency: z
      .enum(['primary', 'replica'], { error: 'must be "primary" or "replica"' })
      .optional(),
    cacheTtlMs: z
      .number({ error: 'must be a number of milliseconds' })
      .int('must be an integer')
      .min(0, 'must be 0 (do not cache) or more')
      .max(policy.maxCacheTtlMs, `must be at most ${policy.maxCacheTtlMs}`)
      .optional(),
  });

export type QueryRequest = {
  sql: string;
  params?: unknown[];
  timeoutMs?: number;
  maxRows?: number;
  /** L2 lifetime for this result; 0 skips the cache. Default CACHE_DEFAULT_TTL_MS. */
  cacheTtlMs?: number;
  /** Routes the statement to the shard that owns this key (needs SHARD_MAP). */
  shardKey?: string | number;
  /** Runs the SELECT on every shard in parallel and merges the results. */
  scatter?: boolean;
  /** With `scatter`: `fail` (503 naming the failed shards, default) or `partial`. */
  failurePolicy?: 'fail' | 'partial';
  /**
   * Where a read-only statement may run when its target has replicas: `replica` (default) —
   * a replica within REPLICA_MAX_LAG_MS, else the primary; `primary` — always the primary
   * (read-your-writes). Writes and locking reads always run on the primary.
   */
  consistency?: 'primary' | 'replica';
};

export interface QueryResponse {
  rows: Record<string, unknown>[];
  rowCount: number;
  fields: { name: string; dataType: string }[];
  durationMs: number;
  /** Where the result came from; `bypass` comes with `cacheReason`. */
  cache: 'l1' | 'l2' | 'miss' | 'bypass';
  cacheReason?: string;
  /** The shard that ran the statement, when the request had a `shardKey`. */
  shard?: string;
  /** With `scatter` and `failurePolicy: "partial"`: shards that did not answer. */
  missingShards?: string[];
  /**
   * When the target has replicas and the statement ran (not a cache hit): `primary` or
   * `replica:<name>` (e.g. `replica:s1/r2`).
   */
  servedBy?: string;
  /** Replicas passed over for this read and why (lagging, breaker open, failed…). */
  skippedReplicas?: SkippedReplica[];
}

/** Builds the request validator once; the schema depends only on the policy. */
export const createQueryRequestParser = (policy: QueryPolicy) => {
  const schema = buildRequestSchema(policy);
  return (body: unknown): QueryRequest => {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new ValidationError(
        'INVALID_REQUEST',
        'The body must be a JSON object like {"sql": "SELECT 1"}',
      );
    }
    const parsed = schema.safeParse(body);
    if (parsed.success) return parsed.data;
    const problems = parsed.error.issues.map((issue) => {
      if (issue.code === 'unrecognized_keys') return `unknown field(s): ${issue.keys.join(', ')}`;
      const field = issue.path.length ? issue.path.join('.') : 'body';
      return `${field}: ${issue.message}`;
    });
    const fields = [
      ...new Set(
        parsed.error.issues.flatMap((i) =>
          i.code === 'unrecognized_keys' ? i.keys : [String(i.path[0] ?? 'body')],
        ),
      ),
    ];
    throw new ValidationError('INVALID_REQUEST', problems.join('; '), { details: { fields } });
  };
};

const WRITE_KINDS: ReadonlySet<string> = new Set(['insert', 'update', 'delete', 'merge']);

/**
 * Functions a caller may not invoke through the API, even in a SELECT: they change the pooled
 * session beyond the transaction (set_config with is_local=false, session advisory locks),
 * reach other sessions or servers, or read server files. A changed search_path or role on a
 * pooled connection would leak into other callers' results (and into the cache). Functions
 * called inside views or user functions are the database role's business: grant the API's
 * role only what it needs.
 */
const FORBIDDEN_FUNCTIONS: ReadonlySet<string> = new Set([
  'set_config',
  'pg_advisory_lock',
  'pg_advisory_lock_shared',
  'pg_try_advisory_lock',
  'pg_try_advisory_lock_shared',
  'pg_advisory_unlock',
  'pg_advisory_unlock_shared',
  'pg_advisory_unlock_all',
  'pg_terminate_backend',
  'pg_cancel_backend',
  'pg_reload_conf',
  'pg_rotate_logfile',
  'pg_read_file',
  'pg_read_binary_file',
  'pg_ls_dir',
  'lo_import',
  'lo_export',
  'dblink',
  'dblink_exec',
  'dblink_connect',
  'dblink_connect_u',
  'dblink_send_query',
]);

const bareFunctionName = (name: string): string => name.slice(name.lastIndexOf('.') + 1);

/**
 * The statement policy: exactly one statement; SELECT (or VALUES / set operations) always;
 * INSERT/UPDATE/DELETE/MERGE and locking reads only when writes are allowed; DDL, utility and
 * transaction-control statements never (they would change session state or the schema).
 * Returns whether the statement must run read-only.
 */
export const checkStatementPolicy = (
  analysis: SqlAnalysis,
  paramCount: number,
  policy: QueryPolicy,
): { readOnly: boolean } => {
  assertSingleStatement(analysis);
  const isWrite =
    WRITE_KINDS.has(analysis.kind) || (analysis.kind === 'select' && !analysis.readOnly);
  if (analysis.kind !== 'select' && !isWrite) {
    throw new ValidationError(
      'STATEMENT_NOT_ALLOWED',
      `${analysis.kind.toUpperCase()} statements are not allowed through the query API; send SELECT${policy.allowWrites ? ', INSERT, UPDATE, DELETE or MERGE' : ''}`,
      { details: { kind: analysis.kind } },
    );
  }
  if (isWrite && !policy.allowWrites) {
    throw new ValidationError(
      'WRITE_NOT_ALLOWED',
      'The query API is read-only: this statement writes or locks rows. Set QUERY_ALLOW_WRITES=true to allow writes',
      { details: { kind: analysis.kind } },
    );
  }
  const forbidden = analysis.functions
    .map(bareFunctionName)
    .filter((f) => FORBIDDEN_FUNCTIONS.has(f));
  if (forbidden.length > 0) {
    throw new ValidationError(
      'FUNCTION_NOT_ALLOWED',
      `${forbidden.join(', ')} cannot be called through the query API: it changes the pooled session or reaches outside this statement`,
      { details: { functions: forbidden } },
    );
  }
  if (analysis.maxParamIndex !== paramCount) {
    throw new ValidationError(
      'PARAM_COUNT_MISMATCH',
      `The statement uses ${analysis.maxParamIndex} parameter(s) ($1…$${analysis.maxParamIndex}) but params has ${paramCount}`,
      { details: { expected: analysis.maxParamIndex, received: paramCount } },
    );
  }
  return { readOnly: !isWrite };
};

/**
 * Time kept back from the invocation's remaining time: the client-side grace after a
 * statement's own limit (CLIENT_TIMEOUT_GRACE_MS) plus room to map an error and respond.
 */
const RESPONSE_RESERVE_MS = CLIENT_TIMEOUT_GRACE_MS + 500;

/**
 * The statement's limit never outlives the invocation: a Lambda killed at its own timeout
 * answers API Gateway with a bare 502, while a cancelled statement answers with a clear 504.
 */
const fitTimeout = (timeoutMs: number, remainingMs: number | undefined): number => {
  if (remainingMs === undefined) return timeoutMs;
  const budget = Math.floor(remainingMs - RESPONSE_RESERVE_MS);
  if (budget < 1) {
    throw new QueryTimeoutError('Not enough time left in this invocation to run the statement');
  }
  return Math.min(timeoutMs, budget);
};

const typeNameOf = (field: ResultField): string =>
  BUILTIN_TYPE_NAMES.get(field.dataTypeId) ?? `oid:${field.dataTypeId}`;

/** One instance per target database: a shard's catalog answers for that shard's tables. */
const memoisePerTarget = <T>(make: (db: Database) => T): ((db: Database) => T) => {
  const made = new WeakMap<Database, T>();
  return (db) => {
    let value = made.get(db);
    if (value === undefined) {
      value = make(db);
      made.set(db, value);
    }
    return value;
  };
};

/** The role statements run as: the user in DATABASE_URL, else DB_USER. */
const databaseRole = (config: Config): string =>
  config.DATABASE_URL ? decodeURIComponent(new URL(config.DATABASE_URL).username) : config.DB_USER;

/**
 * Assembles the query API's cache dependencies from config, or undefined when
 * CACHE_ENABLED=false. Without a Redis client the cache is L1-only.
 */
export const createQueryCacheDeps = (
  config: Config,
  clients: { redis?: CacheRedisClient; metrics: MetricsSink; logger: CacheLogger },
): QueryCacheDeps | undefined =>
  config.CACHE_ENABLED
    ? {
        cache: createResultCache({
          ...cacheSettingsFromConfig(config),
          redis: clients.redis,
          metrics: clients.metrics,
          logger: clients.logger,
        }),
        relationsOf: memoisePerTarget(createRelationKinds),
        target: config.CACHE_TARGET,
        role: databaseRole(config),
        defaultTtlMs: config.CACHE_DEFAULT_TTL_MS,
        maxTtlMs: config.CACHE_MAX_TTL_MS,
        hasRedis: clients.redis !== undefined,
      }
    : undefined;

/**
 * Scatter-gather: the SELECT runs on every shard in parallel within the request's time limit
 * and the results merge as the parse tree allows (shared/scatter); shapes that cannot merge
 * correctly are refused with SCATTER_UNSUPPORTED. Not cached (bypass reason `scatter`).
 */
const runScatter = async (
  request: QueryRequest,
  deps: QueryDeps,
  limits: { readOnly: boolean; maxRows: number; timeoutMs: number },
): Promise<string> => {
  if (request.shardKey !== undefined) {
    throw new ValidationError(
      'INVALID_REQUEST',
      'shardKey and scatter exclude each other: route to one shard, or fan out to all',
      { details: { fields: ['shardKey', 'scatter'] } },
    );
  }
  if (!deps.shards) {
    throw new ValidationError(
      'SHARDING_NOT_CONFIGURED',
      'scatter needs a shard map; set SHARD_MAP and SHARD_URLS',
    );
  }
  if (!limits.readOnly) {
    throw new ValidationError(
      'SCATTER_UNSUPPORTED',
      'scatter runs read-only SELECT statements only',
    );
  }
  const startedAt = performance.now();
  const result = await scatterGather({
    shards: [...deps.shards.databases].map(([name, db]) => ({
      name,
      db,
      guard: deps.shards?.guards.get(name),
    })),
    sql: request.sql,
    params: request.params ?? [],
    deadlineMs: limits.timeoutMs,
    maxRows: limits.maxRows,
    failurePolicy: request.failurePolicy ?? 'fail',
  });
  const durationMs = Math.round((performance.now() - startedAt) * 100) / 100;
  deps.metrics.addMetric('ScatterDuration', MetricUnit.Milliseconds, durationMs);
  const body = JSON.stringify({
    rows: result.rows,
    rowCount: result.rows.length,
    fields: result.fields.map((f) => ({ name: f.name, dataType: typeNameOf(f) })),
    durationMs,
    cache: 'bypass',
    cacheReason: 'scatter',
    ...(result.missingShards.length > 0 ? { missingShards: result.missingShards } : {}),
  } satisfies QueryResponse);
  assertWithinBytes(body, deps.policy.maxResponseBytes);
  return body;
};

/** The database a statement runs on: the primary (no name), or the shard owning its key. */
const resolveTarget = (
  shardKey: string | number | undefined,
  deps: QueryDeps,
): { db: Database; name?: string; guard?: TargetGuard } => {
  if (shardKey === undefined) return { db: deps.db, guard: deps.guard };
  if (!deps.shards) {
    throw new ValidationError(
      'SHARDING_NOT_CONFIGURED',
      'shardKey was sent but this API has no shard map; set SHARD_MAP and SHARD_URLS or drop shardKey',
    );
  }
  const { shard } = deps.shards.router.route(shardKey);
  return {
    db: deps.shards.databases.get(shard) as Database,
    name: shard,
    guard: deps.shards.guards.get(shard),
  };
};

/** What the cache decided, before the response is assembled. */
interface CacheDecision {
  level: QueryResponse['cache'];
  reason?: string;
}

const bypass = (reason: string): CacheDecision => ({ level: 'bypass', reason });

/**
 * Validates, checks policy, runs the statement (through the result cache when it is
 * cacheable) and serializes the response. Returns the JSON body text: serializing here lets
 * the byte cap be checked on the exact bytes sent, and a cached payload is spliced in as is.
 *
 * @throws ValidationError (4xx), SqlSyntaxError, ResultTooLargeError, QueryTimeoutError,
 *   DatabaseUnavailableError and the other typed errors of shared/db.
 */
export const runQuery = async (
  request: QueryRequest,
  deps: QueryDeps,
  options: { remainingMs?: number } = {},
): Promise<string> => {
  const { policy } = deps;
  const params = request.params ?? [];
  const analysis = deps.sql.analyze(request.sql);
  const { readOnly } = checkStatementPolicy(analysis, params.length, policy);
  const maxRows = request.maxRows ?? policy.defaultMaxRows;
  const timeoutMs = fitTimeout(request.timeoutMs ?? policy.defaultTimeoutMs, options.remainingMs);
  // One absolute deadline for the whole request: retries and waits share it, never reset it.
  const deadline = performance.now() + timeoutMs;

  if (request.scatter) return runScatter(request, deps, { readOnly, maxRows, timeoutMs });
  const target = resolveTarget(request.shardKey, deps);
  const targetName = target.name ?? 'primary';
  const hasReplicas = deps.replicas?.has(targetName) === true;
  // Writes and locking reads (readOnly false) never reach a replica.
  const replicaSet =
    readOnly && request.consistency !== 'primary' ? deps.replicas?.get(targetName) : undefined;
  // durationMs includes choosing a replica (a lag probe, at most once per interval).
  const startedAt = performance.now();
  const choice = replicaSet ? await replicaSet.choose() : undefined;
  const chosenAt = performance.now();
  const skipped: SkippedReplica[] = choice?.skipped ?? [];
  /** Set by `load`: the endpoint that ran the statement (absent on a cache hit). */
  let servedBy: string | undefined;
  const toPayload = (result: StatementResult): string => {
    const payload = JSON.stringify({
      rows: result.rows,
      rowCount: result.rowCount,
      fields: result.fields.map((f) => ({ name: f.name, dataType: typeNameOf(f) })),
    });
    assertWithinBytes(payload, policy.maxResponseBytes);
    return payload;
  };
  const runOn = async (db: Database, guard: TargetGuard | undefined): Promise<string> => {
    let payload = '';
    const execute = () => {
      const leftMs = Math.floor(deadline - performance.now());
      if (leftMs < 1) {
        throw new QueryTimeoutError('The request ran out of time before the statement could run');
      }
      return executeStatement(db, {
        sql: request.sql,
        params,
        readOnly,
        timeoutMs: leftMs,
        maxRows,
        // Writes: refuse an oversized result before COMMIT, so a 422 never hides a write.
        beforeCommit: (result) => {
          payload = toPayload(result);
        },
      });
    };
    const result = guard ? await guard.run(execute, { readOnly }) : await execute();
    return payload || toPayload(result);
  };
  /**
   * The chosen replica's lag bound now: it grows by the time spent since the choice (the
   * relation check, cache round trips, waiting for a peer's load).
   */
  const lagBoundNowMs = (): number => (choice?.lagBoundMs ?? 0) + (performance.now() - chosenAt);
  const load = async (): Promise<string> => {
    const replica = choice?.replica;
    // Checked again as the statement starts: the cache keeps what it returns in L1 for
    // CACHE_L1_TTL_MS from now, so its data must be at most REPLICA_MAX_LAG_MS old now.
    const boundMs = replica && replicaSet ? lagBoundNowMs() : 0;
    if (replica && replicaSet && boundMs > replicaSet.policy.maxLagMs) {
      skipped.push({ name: replica.name, reason: 'lagging', lagMs: Math.round(boundMs) });
      deps.metrics.addMetric('ReplicaFallbackToPrimary', MetricUnit.Count, 1);
    } else if (replica && replicaSet) {
      try {
        const payload = await replicaSet.track(replica, () => runOn(replica.db, replica.guard));
        servedBy = `replica:${replica.name}`;
        return payload;
      } catch (err) {
        // The replica is down (its breaker counted it): the primary answers this read.
        if (!isReplicaUnavailable(err)) throw err;
        skipped.push({ name: replica.name, reason: 'failed' });
        deps.metrics.addMetric('ReplicaFallbackToPrimary', MetricUnit.Count, 1);
      }
    }
    const payload = await runOn(target.db, target.guard);
    servedBy = 'primary';
    return payload;
  };
  // A replica-served result may miss writes of the last `lagBound` ms: cached, it must expire
  // before its data is REPLICA_MAX_LAG_MS old (lag bound at choice + time since, taken just
  // before the cache call), and it gets its own key variant so `consistency: "primary"`
  // reads never see it.
  const servesReplica = choice?.replica !== undefined && replicaSet !== undefined;
  const replicaTtlNowMs = (): number =>
    Math.floor((replicaSet?.policy.maxLagMs ?? 0) - lagBoundNowMs());

  let payload: string;
  let decision: CacheDecision;
  const cache = deps.cache;
  if (!cache) {
    payload = await load();
    decision = bypass('disabled');
  } else if (!readOnly) {
    try {
      payload = await load();
    } finally {
      // After the commit, and also after any failure that may have followed a commit (a lost
      // COMMIT reply): every instance's next read of these tables misses in L2. An extra
      // bump after a rolled-back write only costs a miss.
      await cache.cache.bumpTables(target.name ?? cache.target, analysis.tablesWritten);
    }
    decision = bypass('write');
  } else if (!analysis.cacheable) {
    payload = await load();
    decision = bypass(analysis.uncacheableReason ?? 'not-cacheable');
  } else if (request.cacheTtlMs === 0) {
    payload = await load();
    decision = bypass('request');
  } else if (
    !(await cache.relationsOf(target.db).allWatched(analysis.tablesRead.map(bareTableName)))
  ) {
    payload = await load();
    decision = bypass('view-or-foreign-table');
  } else if (servesReplica && replicaTtlNowMs() < 1) {
    payload = await load();
    decision = bypass('replica-lag');
  } else {
    const requestedTtlMs = request.cacheTtlMs ?? cache.defaultTtlMs;
    const replicaTtlMs = servesReplica ? Math.max(1, replicaTtlNowMs()) : undefined;
    const result = await cache.cache.getOrLoad(
      {
        sql: request.sql,
        params,
        target: target.name ?? cache.target,
        role: cache.role,
        tablesRead: analysis.tablesRead,
        ttlMs: replicaTtlMs === undefined ? requestedTtlMs : Math.min(requestedTtlMs, replicaTtlMs),
        variant: replicaTtlMs === undefined ? `maxRows=${maxRows}` : `maxRows=${maxRows};replica`,
      },
      load,
    );
    payload = result.payload;
    decision = { level: result.outcome.level, reason: result.outcome.reason };
  }
  const durationMs = Math.round((performance.now() - startedAt) * 100) / 100;
  deps.metrics.addMetric('QueryDuration', MetricUnit.Milliseconds, durationMs);
  deps.metrics.addMetric('ResponseBytes', MetricUnit.Bytes, payload.length);
  const shardPart = target.name === undefined ? '' : `,"shard":${JSON.stringify(target.name)}`;
  const reasonPart =
    decision.reason === undefined ? '' : `,"cacheReason":${JSON.stringify(decision.reason)}`;
  const servedPart =
    hasReplicas && servedBy !== undefined ? `,"servedBy":${JSON.stringify(servedBy)}` : '';
  const skippedPart = skipped.length > 0 ? `,"skippedReplicas":${JSON.stringify(skipped)}` : '';
  return `${payload.slice(0, -1)},"durationMs":${durationMs},"cache":"${decision.level}"${reasonPart}${shardPart}${servedPart}${skippedPart}}`;
};

const assertWithinBytes = (body: string, maxBytes: number): void => {
  // String length undercounts multi-byte characters; measure bytes only when it could matter.
  if (body.length * 3 > maxBytes && Buffer.byteLength(body) > maxBytes) {
    throw new ResultTooLargeError(
      'RESPONSE_TOO_LARGE',
      `The response would be larger than ${maxBytes} bytes; select fewer columns or rows`,
      { details: { maxResponseBytes: maxBytes } },
    );
  }
};

/** One target in the health report. */
export interface TargetHealth {
  name: string;
  kind: 'postgres' | 'redis';
  breaker: string;
  reachable?: boolean;
  latencyMs?: number;
  error?: string;
}

const PROBE_TIMEOUT_MS = 1_000;

/**
 * `GET /health`: each database target's breaker state plus a `SELECT 1` probe (skipped while
 * its breaker is open: the breaker already knows), the Redis breaker's state, and each read
 * replica's breaker, state and last measured lag (`replicas`, measured again when older than
 * REPLICA_LAG_CHECK_INTERVAL_MS). `ok` only when every database answers, no breaker is open
 * and no replica is unreachable (a lagging replica does not degrade: reads fall back).
 */
export const checkHealth = async (
  deps: QueryDeps,
): Promise<{ status: 'ok' | 'degraded'; targets: TargetHealth[]; replicas?: ReplicaHealth[] }> => {
  const probe = async (name: string, db: Database, guard?: TargetGuard): Promise<TargetHealth> => {
    const breaker = guard?.state() ?? 'closed';
    if (breaker === 'open') return { name, kind: 'postgres', breaker, reachable: false };
    const startedAt = performance.now();
    const select = () =>
      executeStatement(db, {
        sql: 'SELECT /* dbopt */ 1',
        params: [],
        readOnly: true,
        timeoutMs: PROBE_TIMEOUT_MS,
        maxRows: 1,
      });
    try {
      // No retries: a health probe reports what it sees.
      await (guard ? guard.run(select, { readOnly: false }) : select());
      const latencyMs = Math.round((performance.now() - startedAt) * 100) / 100;
      return {
        name,
        kind: 'postgres',
        breaker: guard?.state() ?? 'closed',
        reachable: true,
        latencyMs,
      };
    } catch (err) {
      return {
        name,
        kind: 'postgres',
        breaker: guard?.state() ?? 'closed',
        reachable: false,
        error: isAppError(err) ? err.code : 'UNKNOWN',
      };
    }
  };
  const targets = await Promise.all([
    probe('primary', deps.db, deps.guard),
    ...[...(deps.shards?.databases ?? [])].map(([name, db]) =>
      probe(name, db, deps.shards?.guards.get(name)),
    ),
  ]);
  if (deps.cache?.hasRedis) {
    targets.push({ name: 'redis', kind: 'redis', breaker: deps.cache.cache.stats().breaker });
  }
  const replicas = (
    await Promise.all([...(deps.replicas?.values() ?? [])].map((set) => set.health()))
  ).flat();
  // A lagging replica is working as designed (reads fall back); an unreachable one is not.
  const healthy =
    targets.every((t) => t.reachable !== false && t.breaker !== 'open') &&
    replicas.every((r) => r.state !== 'unreachable' && r.state !== 'breaker-open');
  return {
    status: healthy ? 'ok' : 'degraded',
    targets,
    ...(replicas.length > 0 ? { replicas } : {}),
  };
};
