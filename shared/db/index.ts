export {
  createDataApiQueryable,
  type DataApiClient,
  type DataApiOptions,
  type DataApiQueryable,
} from './data-api.ts';
export { mapDbError } from './errors.ts';
export {
  buildPoolConfig,
  CLIENT_TIMEOUT_GRACE_MS,
  createDatabase,
  type Database,
  type DatabaseOptions,
  type DbLogger,
  databaseOptionsFromConfig,
} from './pool.ts';
export {
  executeStatement,
  type ResultField,
  type StatementRequest,
  type StatementResult,
} from './statement.ts';
export { type Queryable, withReadOnlyTransaction } from './transaction.ts';
export { BUILTIN_TYPE_NAMES } from './types.ts';
