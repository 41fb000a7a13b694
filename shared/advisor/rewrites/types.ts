/** The rewrite rules, one per plan-changing transformation PostgreSQL 15 does not do itself. */
export type RewriteRule =
  | 'not_in_subquery'
  | 'or_across_tables'
  | 'deep_offset'
  | 'non_sargable_predicate'
  | 'mismatched_literal'
  | 'count_gt_zero'
  | 'or_list';

/** What a rule found, before measuring. */
export interface RewriteCandidate {
  readonly rule: RewriteRule;
  readonly title: string;
  readonly originalSql: string;
  readonly rewrittenSql: string;
  readonly rationale: string;
  /** The rewrite also fixes a wrong result (NOT IN with NULLs), so it is worth it at any cost. */
  readonly correctnessFix: boolean;
  /**
   * Parameters the rewrite introduces (keyset values), by number. For measuring, `probeSql`
   * (same parameters as the original) returns one row with plausible values for them.
   */
  readonly extraParams?: { readonly numbers: readonly number[]; readonly probeSql: string };
}

/** A measured rewrite: EXPLAIN (FORMAT JSON) total cost of the original and of the rewrite. */
export interface RewriteSuggestion extends RewriteCandidate {
  readonly costBefore: number;
  readonly costAfter: number;
  /** costAfter / costBefore: below 1 is cheaper. */
  readonly costRatio: number;
  /** custom: planned with the statement's real parameter values; generic: values unknown. */
  readonly planMode: 'custom' | 'generic' | 'none';
  /** Indexes the rewritten statement's plan reads (hygiene must not propose dropping them). */
  readonly indexesUsed: string[];
}

/** Column types and indexed columns of the relations a statement reads. */
export interface SchemaInfo {
  /** `format_type` of a column (e.g. 'bigint', 'timestamp with time zone'), or undefined. */
  columnType(relation: string, column: string): string | undefined;
  /** Whether some valid index has the column as its first key. */
  isIndexed(relation: string, column: string): boolean;
  /** Whether the column is declared NOT NULL (false when unknown). */
  isNotNull?(relation: string, column: string): boolean;
}
