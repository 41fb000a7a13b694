/**
 * Typed errors shared by every capability (STYLE.md rule 7). Each carries a stable `code`
 * that callers (the HTTP layer, the CLI) map to a status or exit code, and keeps the
 * original error as `cause`.
 */
export abstract class AppError extends Error {
  abstract readonly code: string;
  /** Extra, caller-safe facts (field names, SQLSTATE, positions). Never secrets. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(message: string, options?: AppErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.details = Object.freeze({ ...(options?.details ?? {}) });
  }
}

type AppErrorOptions = ErrorOptions & { details?: Record<string, unknown> };

/** An error family whose instances carry one of several codes, chosen where it is raised. */
export abstract class CodedError<C extends string = string> extends AppError {
  readonly code: C;
  constructor(code: C, message: string, options?: AppErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** The environment or a config file does not satisfy the schema. */
export class ConfigError extends AppError {
  readonly code = 'CONFIG_INVALID';
}

/** The caller sent something we refuse to act on (bad JSON, wrong field type, policy). */
export class ValidationError extends CodedError {}

/** A statement ran longer than its client-side or server-side time limit (SQLSTATE 57014). */
export class QueryTimeoutError extends AppError {
  readonly code = 'QUERY_TIMEOUT';
}

/** The database could not be reached, refused us, or dropped the connection. */
export class DatabaseUnavailableError extends AppError {
  readonly code = 'DATABASE_UNAVAILABLE';
}

/** SQLSTATE class 42: syntax error, undefined table/column/function, insufficient privilege. */
export class SqlSyntaxError extends CodedError<
  'SQL_SYNTAX_ERROR' | 'SQL_UNDEFINED_OBJECT' | 'SQL_INSUFFICIENT_PRIVILEGE' | 'SQL_INVALID'
> {}

/** SQLSTATE class 23: unique, foreign key, not null or check constraint violated. */
export class ConstraintViolationError extends AppError {
  readonly code = 'CONSTRAINT_VIOLATION';
}

/** SQLSTATE 25006: a write was attempted inside a read-only transaction. */
export class ReadOnlyViolationError extends AppError {
  readonly code = 'READ_ONLY_VIOLATION';
}

/** SQLSTATE class 22: a value the caller sent does not fit its type (e.g. 'abc' for an int). */
export class DataError extends AppError {
  readonly code = 'INVALID_DATA';
}

/** Any other error the database reported; the SQLSTATE is kept in `details.sqlState`. */
export class DatabaseError extends AppError {
  readonly code = 'DATABASE_ERROR';
}

/** A result exceeded a configured cap (rows or bytes). */
export class ResultTooLargeError extends CodedError<'ROW_LIMIT_EXCEEDED' | 'RESPONSE_TOO_LARGE'> {}

export const isAppError = (err: unknown): err is AppError => err instanceof AppError;
