/** Public types of the index advisor (shared/advisor). Kept stable: the optimize Lambda uses them. */

/** One statement of the workload to optimise for. */
export interface WorkloadStatement {
  /** Stable id (template id, or the pg_stat_statements queryid). */
  id: string;
  /** One SQL statement with `$n` placeholders (the shape pg_stat_statements reports). */
  sql: string;
  /** Example parameter sets, one per execution; values are passed as SQL literals. May be empty. */
  params: unknown[][];
  /** Executions per hour (a stand-in for pg_stat_statements calls over an hour). */
  weightPerHour: number;
  kind: 'read' | 'write';
  /** Mean execution time measured in production (pg_stat_statements), when known. */
  meanExecMs?: number;
}

export type IndexMethod = 'btree' | 'gin' | 'gist' | 'brin';
export type EvaluationMethod = 'hypopg' | 'rollback-build' | 'heuristic';

/** How the advisor decided: the caller's limits, all with defaults from the config. */
export interface AdvisorOptions {
  /** Most indexes proposed in one run (ADVISOR_MAX_INDEXES). */
  maxIndexes: number;
  /** Total estimated size budget of the proposals, bytes (ADVISOR_MAX_INDEX_BYTES). */
  maxIndexBytes: number;
  /** Tables with fewer (estimated) rows are never indexed (ADVISOR_MIN_TABLE_ROWS). */
  minTableRows: number;
  /** Server-side limit per statement, including rollback builds (ADVISOR_STATEMENT_TIMEOUT_MS). */
  statementTimeoutMs: number;
  /**
   * A candidate must cut at least one statement's cost by this fraction (0–1) to count
   * (ADVISOR_MIN_IMPROVEMENT); keeps wide-range reports from buying big indexes.
   */
  minImprovement: number;
  /** A literal predicate qualifies for a partial index when its value matches at most this fraction of rows (ADVISOR_PARTIAL_MAX_FRACTION). */
  partialMaxFraction: number;
  /** 'auto': HypoPG when installed (creating the extension if allowed); 'never': always build in a rolled-back transaction (ADVISOR_USE_HYPOPG). */
  useHypopg: 'auto' | 'never';
}

/** Cost of index maintenance charged to a proposal, from the workload's write statements. */
export interface WriteOverhead {
  /** Write statements touching the table. */
  statements: string[];
  /** Index entries written per hour (inserts + non-HOT updates). */
  entriesPerHour: number;
  /** Columns of the index that write statements SET: these updates can no longer be HOT. */
  updatedColumns: string[];
  /** True when some UPDATE of the workload loses HOT because of this index. */
  hotUpdatesLost: boolean;
  /** Planner cost units per hour charged against the benefit. */
  costPerHour: number;
}

export interface IndexProposal {
  /** Schema-qualified table, e.g. `public.bookings`. */
  table: string;
  method: IndexMethod;
  /** Key expressions as SQL, including opclass / COLLATE / DESC, e.g. `lower(email)`, `name text_pattern_ops`. */
  keys: string[];
  include: string[];
  /** Partial-index predicate, or null. */
  where: string | null;
  /** `CREATE INDEX CONCURRENTLY name ON table USING method (…) …;` on one line. */
  ddl: string;
  /** Index name used in the DDL (deterministic). */
  name: string;
  /** Statement ids whose final plan uses this index. */
  serves: string[];
  benefit: {
    /** Σ over served statements of the mean plan cost without the proposals (planner units). */
    costBefore: number;
    /** Same, with every proposal of the report in place. */
    costAfter: number;
    /** Σ weightPerHour × (before − after), shared between the proposals a plan uses. */
    weightedCostReduction: number;
    /** From pg_stat_statements mean times, when the workload has them. */
    estimatedTimeSavedMsPerHour?: number;
  };
  sizeBytes: number;
  writeOverhead: WriteOverhead;
  evaluatedWith: EvaluationMethod;
  rationale: string;
}

/** A candidate the advisor considered, in the same shape as a proposal's identity. */
export interface CandidateSummary {
  table: string;
  method: IndexMethod;
  keys: string[];
  include: string[];
  where: string | null;
  ddl: string;
}

export interface StatementCost {
  id: string;
  weightPerHour: number;
  /** Mean plan cost over the parameter sets, without / with the proposals. */
  costBefore: number;
  costAfter: number;
  /** Proposal names the final plans use. */
  indexesUsed: string[];
  /** Set when the statement could not be evaluated (parse, PREPARE or EXPLAIN failure). */
  error?: string;
}

export interface AdvisorReport {
  proposals: IndexProposal[];
  rejected: { candidate: CandidateSummary; reason: string }[];
  statements: StatementCost[];
  method: 'hypopg' | 'rollback-build' | 'mixed';
  runtimeMs: number;
  warnings: string[];
}

/** The narrow logging surface the advisor uses (Powertools Logger fits). */
export interface AdvisorLogger {
  debug(message: string, ...extra: unknown[]): void;
  warn(message: string, ...extra: unknown[]): void;
}
