import {
  ConstraintViolationError,
  DatabaseError,
  DatabaseUnavailableError,
  DataError,
  isAppError,
  QueryTimeoutError,
  ReadOnlyViolationError,
  SqlSyntaxError,
} from '#shared/errors';

/** Node socket errors that mean "the server is not there" rather than "the query is wrong". */
const NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
]);

/**
 * SQLSTATEs outside class 08 that also mean "try again later": admin/crash shutdown,
 * cannot connect now, too many connections.
 * https://www.postgresql.org/docs/15/errcodes-appendix.html
 */
const UNAVAILABLE_STATES: ReadonlySet<string> = new Set(['57P01', '57P02', '57P03', '53300']);

/** pg raises these as plain Errors with no code when the socket or a client-side timer gives up. */
const UNAVAILABLE_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error',
  'Connection terminated unexpectedly',
];

interface DriverError {
  code?: string;
  message?: string;
  position?: string;
  detail?: string;
  hint?: string;
  table?: string;
  column?: string;
  constraint?: string;
}

const isDriverError = (err: unknown): err is Error & DriverError => err instanceof Error;

/**
 * Maps an error from `pg` (or the socket under it) to a typed {@link AppError}, keeping the
 * SQLSTATE in `details.sqlState` and the original error as `cause`. Errors that are already
 * typed pass through unchanged.
 */
export const mapDbError = (err: unknown): Error => {
  if (isAppError(err) || !isDriverError(err)) {
    return isDriverError(err) ? err : new DatabaseError(String(err), { cause: err });
  }
  const sqlState = typeof err.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code) ? err.code : '';
  const details: Record<string, unknown> = { sqlState: sqlState || undefined };
  const message = err.message ?? 'database error';

  if (err.message === 'Query read timeout' || sqlState === '57014') {
    return new QueryTimeoutError(
      'The statement exceeded its time limit; narrow it (WHERE, LIMIT) or raise timeoutMs',
      { cause: err, details },
    );
  }
  if (
    (err.code !== undefined && NETWORK_CODES.has(err.code)) ||
    sqlState.startsWith('08') ||
    UNAVAILABLE_STATES.has(sqlState) ||
    UNAVAILABLE_MESSAGES.some((m) => message.includes(m))
  ) {
    // The driver's text names internal hosts and ports: it stays in `cause` (logged), not here.
    return new DatabaseUnavailableError('The database is unavailable; retry shortly', {
      cause: err,
      details,
    });
  }
  if (sqlState === '28P01' || sqlState === '28000') {
    return new DatabaseUnavailableError(
      'Database rejected the credentials; check DB_USER and DB_PASSWORD / DB_IAM_AUTH',
      { cause: err, details },
    );
  }
  if (sqlState.startsWith('42')) {
    const position = err.position ? Number(err.position) : undefined;
    if (position !== undefined) details.position = position;
    const withPosition = position === undefined ? message : `${message} (position ${position})`;
    if (sqlState === '42601')
      return new SqlSyntaxError('SQL_SYNTAX_ERROR', withPosition, { cause: err, details });
    if (sqlState === '42501') {
      return new SqlSyntaxError('SQL_INSUFFICIENT_PRIVILEGE', message, { cause: err, details });
    }
    if (['42P01', '42703', '42883', '42704', '42P02'].includes(sqlState)) {
      return new SqlSyntaxError('SQL_UNDEFINED_OBJECT', withPosition, { cause: err, details });
    }
    return new SqlSyntaxError('SQL_INVALID', withPosition, { cause: err, details });
  }
  if (sqlState === '3F000') {
    return new SqlSyntaxError('SQL_UNDEFINED_OBJECT', message, { cause: err, details });
  }
  if (sqlState.startsWith('23')) {
    if (err.constraint) details.constraint = err.constraint;
    if (err.table) details.table = err.table;
    return new ConstraintViolationError(message, { cause: err, details });
  }
  if (sqlState === '25006') {
    return new ReadOnlyViolationError(
      'The statement tried to write inside a read-only transaction',
      { cause: err, details },
    );
  }
  if (sqlState.startsWith('22')) {
    return new DataError(message, { cause: err, details });
  }
  return new DatabaseError(message, { cause: err, details });
};
