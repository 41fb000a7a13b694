import {
  BeginTransactionCommand,
  CommitTransactionCommand,
  ExecuteStatementCommand,
  type ExecuteStatementCommandOutput,
  RollbackTransactionCommand,
  type SqlParameter,
} from '@aws-sdk/client-rds-data';
import { AppError, DatabaseUnavailableError, isAppError, QueryTimeoutError } from '#shared/errors';
import { mapDbError } from './errors.ts';
import type { Queryable } from './transaction.ts';

/**
 * The narrow RDS Data API surface the adapter sends commands through; an `RDSDataClient`
 * fits (construct it in the handler module; it honours AWS_ENDPOINT_URL by itself).
 */
export interface DataApiClient {
  // biome-ignore lint/suspicious/noExplicitAny: the SDK's send() is overloaded per command
  send(command: any): Promise<any>;
}

export interface DataApiOptions {
  client: DataApiClient;
  /** Aurora cluster ARN (DATA_API_RESOURCE_ARN). */
  resourceArn: string;
  /** Secrets Manager ARN with the database credentials (DATA_API_SECRET_ARN). */
  secretArn: string;
  /** Database name (DATA_API_DATABASE). */
  database: string;
}

/** A {@link Queryable} over the RDS Data API, plus read-only transactions. */
export interface DataApiQueryable extends Queryable {
  /**
   * Runs `work` in a Data API transaction made read-only with a `SET LOCAL statement_timeout`,
   * then commits; rolls back on any error.
   */
  withReadOnlyTransaction<T>(timeoutMs: number, work: (tx: Queryable) => Promise<T>): Promise<T>;
}

/** Quotes one element of a PostgreSQL array literal. */
const arrayElement = (v: unknown): string => {
  if (v === null || v === undefined) return 'NULL';
  const text = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return `"${text.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
};

/**
 * One bound value as a Data API SqlParameter named `p<n>`. The Data API has no array
 * parameters, so arrays travel as PostgreSQL array literals (the SQL casts them, `$1::text[]`);
 * objects travel as JSON text.
 */
export const toSqlParameter = (value: unknown, index: number): SqlParameter => {
  const name = `p${index + 1}`;
  if (value === null || value === undefined) return { name, value: { isNull: true } };
  if (typeof value === 'boolean') return { name, value: { booleanValue: value } };
  if (typeof value === 'bigint') return { name, value: { longValue: Number(value) } };
  if (typeof value === 'number') {
    return Number.isInteger(value)
      ? { name, value: { longValue: value } }
      : { name, value: { doubleValue: value } };
  }
  if (typeof value === 'string') return { name, value: { stringValue: value } };
  if (value instanceof Date) {
    return {
      name,
      value: { stringValue: value.toISOString().replace('T', ' ').replace('Z', '') },
      typeHint: 'TIMESTAMP',
    };
  }
  if (value instanceof Uint8Array) return { name, value: { blobValue: value } };
  if (Array.isArray(value)) {
    return { name, value: { stringValue: `{${value.map(arrayElement).join(',')}}` } };
  }
  return { name, value: { stringValue: JSON.stringify(value) }, typeHint: 'JSON' };
};

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';
const isIdentChar = (c: string | undefined): boolean =>
  c !== undefined && (c === '_' || isDigit(c) || c.toLowerCase() !== c.toUpperCase());

/**
 * Rewrites positional placeholders `$1…$n` to the Data API's named `:p1…:pn`, leaving string
 * literals (also E'' and dollar-quoted), quoted identifiers and comments untouched. A lexer,
 * not a pattern match: `'$1'`, `"$1"`, `-- $1` and `$tag$ $1 $tag$` stay as they are.
 */
export const toNamedPlaceholders = (sql: string): string => {
  let out = '';
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i] as string;
    const next = sql[i + 1];
    if (c === "'" || c === '"') {
      const escapes = c === "'" && (sql[i - 1] === 'E' || sql[i - 1] === 'e');
      let j = i + 1;
      while (j < n) {
        if (escapes && sql[j] === '\\') j += 2;
        else if (sql[j] === c && sql[j + 1] === c) j += 2;
        else if (sql[j] === c) break;
        else j += 1;
      }
      out += sql.slice(i, j + 1);
      i = j + 1;
    } else if (c === '-' && next === '-') {
      const end = sql.indexOf('\n', i);
      const j = end === -1 ? n : end;
      out += sql.slice(i, j);
      i = j;
    } else if (c === '/' && next === '*') {
      let depth = 1;
      let j = i + 2;
      while (j < n && depth > 0) {
        if (sql[j] === '/' && sql[j + 1] === '*') {
          depth += 1;
          j += 2;
        } else if (sql[j] === '*' && sql[j + 1] === '/') {
          depth -= 1;
          j += 2;
        } else j += 1;
      }
      out += sql.slice(i, j);
      i = j;
    } else if (c === '$' && isDigit(next) && !isIdentChar(sql[i - 1])) {
      let j = i + 1;
      while (isDigit(sql[j])) j += 1;
      out += `:p${sql.slice(i + 1, j)}`;
      i = j;
    } else if (c === '$' && !isIdentChar(sql[i - 1])) {
      // A dollar quote $tag$ … $tag$ (tag empty or an identifier not starting with a digit).
      let j = i + 1;
      while (isIdentChar(sql[j])) j += 1;
      if (sql[j] === '$') {
        const tag = sql.slice(i, j + 1);
        const end = sql.indexOf(tag, j + 1);
        const stop = end === -1 ? n : end + tag.length;
        out += sql.slice(i, stop);
        i = stop;
      } else {
        out += c;
        i += 1;
      }
    } else {
      out += c;
      i += 1;
    }
  }
  return out;
};

/**
 * The RDS Data API's response limits: at most 1 MiB per ExecuteStatement response and 64 KB per
 * row of the result set (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.limitations.html).
 * Readers that may return more page by key and keep each page well under these.
 */
export const DATA_API_RESPONSE_LIMIT_BYTES = 1024 * 1024;
export const DATA_API_ROW_LIMIT_BYTES = 64 * 1024;

/**
 * A statement's result was larger than the RDS Data API returns in one response (1 MiB, or
 * 64 KB for one row). Not retryable as is: the statement must return less (page it by key
 * with a smaller LIMIT, select fewer or shorter columns), or run over pg inside the VPC.
 */
export class DataApiResponseTooLargeError extends AppError {
  readonly code = 'DATA_API_RESPONSE_TOO_LARGE';
}

/** Texts of the Data API's BadRequestException when a result exceeds its limits. */
const RESPONSE_TOO_LARGE_MESSAGES = [
  'more than the allowed response size limit',
  'response exceeded size limit',
  'packet for query is too large',
];

const isResponseTooLarge = (message: string): boolean => {
  const lower = message.toLowerCase();
  return RESPONSE_TOO_LARGE_MESSAGES.some((m) => lower.includes(m));
};

/** Errors the Data API raises when the cluster cannot serve right now. */
const UNAVAILABLE_NAMES = new Set([
  'DatabaseUnavailableException',
  'DatabaseResumingException',
  'DatabaseNotFoundException',
  'DatabaseErrorException',
  'ServiceUnavailableError',
  'InternalServerErrorException',
  'TimeoutError',
  'ECONNREFUSED',
]);
const ACCESS_NAMES = new Set([
  'AccessDeniedException',
  'ForbiddenException',
  'SecretsErrorException',
  'InvalidSecretException',
  'HttpEndpointNotEnabledException',
]);

/**
 * Maps a Data API error to the typed errors pg errors map to. SQL errors arrive as
 * BadRequestException whose message ends in `SQLState: XXXXX`; that SQLSTATE goes through
 * {@link mapDbError}, so a syntax error is the same `SqlSyntaxError` on both paths.
 */
export const mapDataApiError = (err: unknown): Error => {
  if (isAppError(err)) return err;
  const e = err as { name?: string; message?: string; code?: string };
  const name = e.name ?? '';
  const message = e.message ?? String(err);
  if (name === 'StatementTimeoutException') {
    return new QueryTimeoutError(
      'The statement exceeded its time limit; narrow it (WHERE, LIMIT) or raise timeoutMs',
      { cause: err },
    );
  }
  if (UNAVAILABLE_NAMES.has(name) || UNAVAILABLE_NAMES.has(e.code ?? '')) {
    return new DatabaseUnavailableError(
      'The database is unavailable through the Data API; retry shortly',
      {
        cause: err,
        details: { dataApiError: name },
      },
    );
  }
  if (ACCESS_NAMES.has(name)) {
    return new DatabaseUnavailableError(
      'The Data API refused access: check DATA_API_RESOURCE_ARN, DATA_API_SECRET_ARN, that the cluster has the Data API (HTTP endpoint) enabled, and the IAM policy (rds-data:ExecuteStatement, secretsmanager:GetSecretValue)',
      { cause: err, details: { dataApiError: name } },
    );
  }
  if (isResponseTooLarge(message)) {
    return new DataApiResponseTooLargeError(
      `The result is larger than the RDS Data API returns in one response (${DATA_API_RESPONSE_LIMIT_BYTES} bytes, ${DATA_API_ROW_LIMIT_BYTES} per row): page the statement by key with a smaller LIMIT or select shorter columns, or read this target over pg (STATS_SOURCE=pg) inside the VPC`,
      { cause: err, details: { dataApiError: name, limitBytes: DATA_API_RESPONSE_LIMIT_BYTES } },
    );
  }
  const marker = 'SQLState: ';
  const at = message.lastIndexOf(marker);
  if (at !== -1) {
    const sqlState = message.slice(at + marker.length, at + marker.length + 5);
    const text = message
      .slice(0, at)
      .replace(/^ERROR:\s*/, '')
      .replace(/;\s*$/, '');
    const mapped = mapDbError(Object.assign(new Error(text), { code: sqlState }));
    // The cause is the Data API's own error (request id, metadata), not the stand-in.
    Object.defineProperty(mapped, 'cause', { value: err, configurable: true, writable: true });
    return mapped;
  }
  return mapDbError(err);
};

type Row = Record<string, unknown>;

const decodeRecords = (output: ExecuteStatementCommandOutput): Row[] => {
  if (!output.formattedRecords) return [];
  const parsed = JSON.parse(output.formattedRecords) as unknown;
  return Array.isArray(parsed) ? (parsed as Row[]) : [];
};

/**
 * A {@link Queryable} over the RDS Data API (`ExecuteStatement` with
 * `formatRecordsAs: 'JSON'`): rows come back as objects keyed by column name, like pg's.
 * Placeholders `$n` are rewritten to named `:pn` parameters. No connection is held; each
 * call is one HTTPS request.
 *
 * @example
 * const q = createDataApiQueryable({ client: new RDSDataClient({}), resourceArn, secretArn, database });
 * const { rows } = await q.query('SELECT /* dbopt *\/ datname FROM pg_database WHERE oid = $1', [5]);
 */
export const createDataApiQueryable = (options: DataApiOptions): DataApiQueryable => {
  const base = {
    resourceArn: options.resourceArn,
    secretArn: options.secretArn,
    database: options.database,
  };
  const execute = async (
    sql: string,
    params: unknown[] | undefined,
    transactionId?: string,
  ): Promise<{ rows: Row[] }> => {
    let output: ExecuteStatementCommandOutput;
    try {
      output = await options.client.send(
        new ExecuteStatementCommand({
          ...base,
          sql: params && params.length > 0 ? toNamedPlaceholders(sql) : sql,
          ...(params && params.length > 0 ? { parameters: params.map(toSqlParameter) } : {}),
          ...(transactionId ? { transactionId } : {}),
          formatRecordsAs: 'JSON',
        }),
      );
    } catch (err) {
      throw mapDataApiError(err);
    }
    return { rows: decodeRecords(output) };
  };

  const query = async <R extends Row = Row>(sql: string, params?: unknown[]) =>
    (await execute(sql, params)) as { rows: R[] };

  const withReadOnlyTransaction = async <T>(
    timeoutMs: number,
    work: (tx: Queryable) => Promise<T>,
  ): Promise<T> => {
    let transactionId: string;
    try {
      const begun = await options.client.send(new BeginTransactionCommand(base));
      transactionId = begun.transactionId as string;
    } catch (err) {
      throw mapDataApiError(err);
    }
    const tx: Queryable = {
      query: async <R extends Row = Row>(sql: string, params?: unknown[]) =>
        (await execute(sql, params, transactionId)) as { rows: R[] },
    };
    try {
      // Marked like every statement of ours: pg_stat_statements tracks utility statements too.
      await tx.query('SET /* dbopt */ TRANSACTION READ ONLY');
      await tx.query(`SET /* dbopt */ LOCAL statement_timeout = ${Math.trunc(timeoutMs)}`);
      const result = await work(tx);
      await options.client.send(
        new CommitTransactionCommand({
          resourceArn: base.resourceArn,
          secretArn: base.secretArn,
          transactionId,
        }),
      );
      return result;
    } catch (err) {
      await options.client
        .send(
          new RollbackTransactionCommand({
            resourceArn: base.resourceArn,
            secretArn: base.secretArn,
            transactionId,
          }),
        )
        .catch(() => undefined); // the transaction times out on its own; the first error matters
      throw mapDataApiError(err);
    }
  };

  return Object.freeze({ query, withReadOnlyTransaction });
};
