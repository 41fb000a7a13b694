/**
 * The index advisor: workload in, proven index proposals out. See {@link adviseIndexes}.
 * No module-level state; every run opens (and destroys) its own session on the DB endpoint.
 */
export { type AdvisorDeps, adviseIndexes } from './advise.ts';
// Rewrite advisor, index hygiene and verified apply (subfolders, helper D).
export * from './apply/index.ts';
export { AdvisorError, type AdvisorErrorCode } from './errors.ts';
export * from './hygiene/index.ts';
export {
  advisorDatabaseOptions,
  advisorOptionsFromConfig,
  DEFAULT_ADVISOR_OPTIONS,
} from './options.ts';
export * from './rewrites/index.ts';
export { proposalKey, storeIndexProposals, toSuggestion } from './store.ts';
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
