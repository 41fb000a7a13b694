/**
 * Rewrite advisor: plan-changing SQL rewrites PostgreSQL 15 does not do by itself, found on
 * the parse tree and kept only when EXPLAIN measures the rewrite cheaper.
 */
export {
  type AdviseRewritesOptions,
  adviseRewrites,
  loadSchemaInfo,
  type RewriteAdvice,
  type RewriteError,
  type RewriteInput,
  schemaInfoFrom,
} from './advise.ts';
export { type ExplainedPlan, explainStatement, type PlanNode, planIndexNames } from './explain.ts';
export { type DetectOptions, detectRewrites } from './rules.ts';
export type { RewriteCandidate, RewriteRule, RewriteSuggestion, SchemaInfo } from './types.ts';
