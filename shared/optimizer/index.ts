/**
 * The optimizer behind the `optimize` Lambda: one slow-query message → index proposals,
 * rewrites and hygiene findings, stored as suggestions, new ones announced on SNS, optionally
 * applied and verified.
 */
export {
  ANNOUNCEMENT_KINDS,
  type AnnounceDeps,
  type AnnounceFailure,
  announceSuggestion,
  buildSuggestionPublishInput,
} from './announce.ts';
export { OptimizerError, type OptimizerErrorCode } from './errors.ts';
export { parseSlowQueryMessage } from './message.ts';
export {
  type BatchResult,
  type OptimizeResult,
  type OptimizerDeps,
  type OptimizerLogger,
  type OptimizerSettings,
  optimizeSlowQuery,
  processSlowQueryBatch,
  type QueueRecord,
} from './optimize.ts';
export {
  createOptimizerRuntime,
  type OptimizerRuntime,
  optimizerSettingsFromConfig,
  suggestionTopicOf,
} from './runtime.ts';
