import type { Config } from '#shared/config';
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
