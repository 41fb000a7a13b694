/**
 * The index advisor: workload in, proven index proposals out. See {@link adviseIndexes}.
 * No module-level state; every run opens (and destroys) its own session on the DB endpoint.
 */
export { type AdvisorDeps, adviseIndexes } from './advise.ts';
export { AdvisorError, type AdvisorErrorCode } from './errors.ts';
export { advisorOptionsFromConfig, DEFAULT_ADVISOR_OPTIONS } from './options.ts';
export type {
  AdvisorLogger,
  AdvisorOptions,
  AdvisorReport,
  CandidateSummary,
  EvaluationMethod,
  IndexMethod,
  IndexProposal,
  StatementCost,
  WorkloadStatement,
  WriteOverhead,
} from './types.ts';
export { workloadFromFile, workloadFromStatStatements } from './workload.ts';
