import type { Config } from '#shared/config';
import {
  CLIENT_TIMEOUT_GRACE_MS,
  type DatabaseOptions,
  databaseOptionsFromConfig,
} from '#shared/db';
import type { AdvisorOptions } from './types.ts';

/** The advisor's options from the config (ADVISOR_* keys; defaults live in the schema). */
export const advisorOptionsFromConfig = (config: Config): AdvisorOptions => ({
  maxIndexes: config.ADVISOR_MAX_INDEXES,
  maxIndexBytes: config.ADVISOR_MAX_INDEX_BYTES,
  minTableRows: config.ADVISOR_MIN_TABLE_ROWS,
  statementTimeoutMs: config.ADVISOR_STATEMENT_TIMEOUT_MS,
  minImprovement: config.ADVISOR_MIN_IMPROVEMENT,
  partialMaxFraction: config.ADVISOR_PARTIAL_MAX_FRACTION,
  useHypopg: config.ADVISOR_USE_HYPOPG,
});

/** Defaults identical to the config schema's, for callers without a Config (tests, bench). */
export const DEFAULT_ADVISOR_OPTIONS: Readonly<AdvisorOptions> = Object.freeze({
  maxIndexes: 25,
  maxIndexBytes: 10 * 1024 ** 3,
  minTableRows: 10_000,
  statementTimeoutMs: 30_000,
  minImprovement: 0.2,
  partialMaxFraction: 0.1,
  useHypopg: 'auto',
});

/**
 * Where the advisor plans: ADVISOR_DATABASE_URL (the DB endpoint — HypoPG and prepared
 * statements pin the session, so never RDS Proxy) when set, else the primary. One connection;
 * the client-side limit leaves room for a rolled-back candidate build.
 */
export const advisorDatabaseOptions = (config: Config): DatabaseOptions => {
  const primary = databaseOptionsFromConfig(config);
  const base = {
    ...primary,
    poolMax: 1,
    queryTimeoutMs: config.ADVISOR_STATEMENT_TIMEOUT_MS + CLIENT_TIMEOUT_GRACE_MS,
  };
  if (!config.ADVISOR_DATABASE_URL) return base;
  const url = new URL(config.ADVISOR_DATABASE_URL);
  return {
    ...base,
    connectionString: config.ADVISOR_DATABASE_URL,
    host: url.hostname,
    database: decodeURIComponent(url.pathname.slice(1)) || primary.database,
  };
};
