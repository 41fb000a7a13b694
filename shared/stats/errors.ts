import { CodedError, DatabaseUnavailableError, QueryTimeoutError } from '#shared/errors';

/**
 * What went wrong while collecting statistics from one target:
 * - `PG_STAT_STATEMENTS_MISSING`: the extension is not created or not preloaded;
 * - `STATS_READ_FAILED`: a catalog read failed for another reason (see `cause`);
 * - `SNAPSHOT_INVALID`: a stored snapshot does not have the expected shape;
 * - `QUEUE_SEND_FAILED`: SQS refused some slow-query messages after retries.
 */
export class StatsError extends CodedError<
  'PG_STAT_STATEMENTS_MISSING' | 'STATS_READ_FAILED' | 'SNAPSHOT_INVALID' | 'QUEUE_SEND_FAILED'
> {}

/** The actionable message for a target without a usable pg_stat_statements. */
export const pgStatStatementsMissingMessage = (target: string): string =>
  `pg_stat_statements is not enabled on ${target}: add it to shared_preload_libraries ` +
  '(on RDS/Aurora: in the DB parameter group, then reboot) and run CREATE EXTENSION pg_stat_statements';

/**
 * Whether a failed read means the target is not there: no connection, or a time limit hit
 * without the server reporting a cancel. A server that is alive cancels a statement past
 * `SET LOCAL statement_timeout` itself (SQLSTATE 57014); a client-side timeout without that
 * SQLSTATE (pg's "Query read timeout", the Data API's StatementTimeoutException) means it did
 * not answer at all: frozen, or the network path is gone.
 */
export const isTargetUnreachable = (err: unknown): boolean =>
  err instanceof DatabaseUnavailableError ||
  (err instanceof QueryTimeoutError && err.details.sqlState === undefined);
