import { type Database, executeStatement, type ResultField } from '#shared/db';
import {
  DatabaseUnavailableError,
  isAppError,
  QueryTimeoutError,
  ResultTooLargeError,
} from '#shared/errors';
import { type ShardFailure, ShardsUnavailableError } from './errors.ts';
import { planScatter, type ScatterPlan } from './plan.ts';

/** One shard: a name for reports and its database. */
export interface ScatterShard {
  readonly name: string;
  readonly db: Database;
  /** The shard's circuit breaker and retry policy, when the caller has one. */
  readonly guard?: { run<T>(work: () => Promise<T>, options: { readOnly: boolean }): Promise<T> };
}

export interface ScatterRequest {
  readonly shards: readonly ScatterShard[];
  readonly sql: string;
  readonly params: readonly unknown[];
  /** Time budget for the whole fan-out; every shard gets it, in parallel. */
  readonly deadlineMs: number;
  /** Row cap per shard and for the merged result. */
  readonly maxRows: number;
  /** `fail`: any unavailable shard fails the request; `partial`: merge what answered. */
  readonly failurePolicy: 'fail' | 'partial';
  /** A plan made earlier for `sql` (e.g. cached); planned here when absent. */
  readonly plan?: ScatterPlan;
}

export interface ScatterResult {
  rows: Record<string, unknown>[];
  fields: ResultField[];
  /** Shards that did not answer (only ever non-empty under the `partial` policy). */
  missingShards: string[];
}

class ShardDeadlineError extends QueryTimeoutError {}

/** Errors that mean "this shard is unavailable" rather than "this query is wrong". */
const isUnavailability = (err: unknown): boolean =>
  err instanceof DatabaseUnavailableError || err instanceof QueryTimeoutError;

// The client-side backstop (executeStatement's grace) fits inside the deadline.
const clientGraceFor = (deadlineMs: number): number => Math.min(1_000, Math.floor(deadlineMs / 10));

const runShard = async (shard: ScatterShard, request: ScatterRequest, sql: string) => {
  const graceMs = clientGraceFor(request.deadlineMs);
  let timer: NodeJS.Timeout | undefined;
  // Bounds connection set-up too, which the statement timeout does not cover.
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new ShardDeadlineError(
            `Shard ${shard.name} missed the ${request.deadlineMs} ms deadline`,
          ),
        ),
      request.deadlineMs,
    );
  });
  try {
    const execute = () =>
      executeStatement(
        shard.db,
        {
          sql,
          params: request.params,
          readOnly: true,
          timeoutMs: Math.max(1, request.deadlineMs - graceMs),
          maxRows: request.maxRows,
        },
        graceMs,
      );
    return await Promise.race([
      shard.guard ? shard.guard.run(execute, { readOnly: true }) : execute(),
      deadline,
    ]);
  } finally {
    clearTimeout(timer);
  }
};

/**
 * Runs one SELECT on every shard in parallel (read-only, each within `deadlineMs`) and merges
 * the results as {@link planScatter} decided. An error that says the query itself is wrong
 * (syntax, types, row cap) is rethrown as is; unreachable or timed-out shards follow
 * `failurePolicy`.
 *
 * @throws ValidationError `SCATTER_UNSUPPORTED` for a query shape that cannot be merged.
 * @throws ShardsUnavailableError `SHARDS_UNAVAILABLE` (policy `fail`, or no shard answered).
 * @throws ResultTooLargeError `ROW_LIMIT_EXCEEDED` when a shard or the merge exceeds maxRows.
 */
export const scatterGather = async (request: ScatterRequest): Promise<ScatterResult> => {
  const plan = request.plan ?? planScatter(request.sql);
  const settled = await Promise.allSettled(
    request.shards.map((shard) => runShard(shard, request, plan.shardSql)),
  );
  const failures: ShardFailure[] = [];
  const results: { rows: Record<string, unknown>[]; fields: ResultField[] }[] = [];
  settled.forEach((outcome, i) => {
    const shard = request.shards[i]?.name ?? String(i);
    if (outcome.status === 'fulfilled') {
      results.push({ rows: outcome.value.rows, fields: outcome.value.fields });
      return;
    }
    const err: unknown = outcome.reason;
    if (!isUnavailability(err)) throw err;
    failures.push({
      shard,
      code: isAppError(err) ? err.code : 'UNKNOWN',
      message: err instanceof Error ? err.message : String(err),
    });
  });
  if (failures.length > 0 && (request.failurePolicy === 'fail' || results.length === 0)) {
    throw new ShardsUnavailableError(failures);
  }
  const merged = plan.merge(results);
  if (merged.rows.length > request.maxRows) {
    throw new ResultTooLargeError(
      'ROW_LIMIT_EXCEEDED',
      `The merged result has more than maxRows (${request.maxRows}) rows; add a LIMIT or raise maxRows`,
      { details: { maxRows: request.maxRows } },
    );
  }
  return { rows: merged.rows, fields: merged.fields, missingShards: failures.map((f) => f.shard) };
};
