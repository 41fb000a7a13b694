/** Verified auto-apply: CREATE INDEX CONCURRENTLY within limits, kept only if it proves itself. */
export {
  type ApplyDeps,
  type ApplyLimits,
  type ApplyOutcome,
  type ApplyRequest,
  type ApplySession,
  applyIndex,
  dropIndex,
  type ServedStatement,
  type StatementCheck,
} from './apply.ts';
export { type IndexDdl, prepareIndexDdl } from './ddl.ts';
export { ApplyError, type ApplyErrorCode } from './errors.ts';
export {
  compareMeanTimes,
  type MeanTimeBaseline,
  type MeanTimeCheck,
  type MeanTimeComparison,
  readMeanTimeBaselines,
} from './mean-times.ts';
