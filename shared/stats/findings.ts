import { randomUUID } from 'node:crypto';
import type { Queryable } from '#shared/db';
import type { SqlAnalyzer } from '#shared/sql';
import { RELATION_ROWS_SQL } from './catalog.ts';
import type { SlowStatement } from './rank.ts';

/** Limits for the per-statement findings. */
export interface FindingThresholds {
  /** Shared-buffer hit ratio below which reads count as a finding (0..1). */
  minHitRatio: number;
  /** …when at least this many blocks were touched in the interval. */
  minBlocksForHitRatio: number;
  /** stddev / mean above which execution time counts as highly variable… */
  maxCoefficientOfVariation: number;
  /** …when at least this many calls were made. */
  minCallsForVariance: number;
  /** Rows per call above which a statement returns "many rows". */
  maxRowsPerCall: number;
  /** A sequential scan of a table with at least this many (estimated) rows is "big". */
  seqScanMinRows: number;
}

export const DEFAULT_FINDING_THRESHOLDS: FindingThresholds = Object.freeze({
  minHitRatio: 0.9,
  minBlocksForHitRatio: 100,
  maxCoefficientOfVariation: 1,
  minCallsForVariance: 10,
  maxRowsPerCall: 1_000,
  seqScanMinRows: 10_000,
});

export type FindingKind =
  | 'low_cache_hit_ratio'
  | 'high_variance'
  | 'many_rows_per_call'
  | 'temp_spill'
  | 'seq_scan'
  | 'plan_unavailable';

/** One thing worth knowing about a slow statement; extra fields depend on `kind`. */
export interface Finding {
  kind: FindingKind;
  detail: string;
  [extra: string]: unknown;
}

const pct = (ratio: number): string => `${(ratio * 100).toFixed(1)}%`;

/** Findings that follow from the interval counters alone. Pure. */
export const findCounterFindings = (
  s: SlowStatement,
  t: FindingThresholds = DEFAULT_FINDING_THRESHOLDS,
): Finding[] => {
  const findings: Finding[] = [];
  const blocks = s.sharedBlksHit + s.sharedBlksRead;
  if (blocks >= t.minBlocksForHitRatio) {
    const hitRatio = s.sharedBlksHit / blocks;
    if (hitRatio < t.minHitRatio) {
      findings.push({
        kind: 'low_cache_hit_ratio',
        detail: `${pct(hitRatio)} of ${blocks} shared blocks came from the buffer cache (below ${pct(t.minHitRatio)}): the statement reads from disk; an index or more shared_buffers may help`,
        hitRatio,
        blocks,
      });
    }
  }
  if (s.calls >= t.minCallsForVariance && s.meanExecTimeMs > 0) {
    const cv = s.stddevExecTimeMs / s.meanExecTimeMs;
    if (cv > t.maxCoefficientOfVariation) {
      findings.push({
        kind: 'high_variance',
        detail: `execution time varies widely (stddev ${s.stddevExecTimeMs.toFixed(1)} ms vs mean ${s.meanExecTimeMs.toFixed(1)} ms): look for parameter values with skewed data, lock waits or plan changes`,
        coefficientOfVariation: cv,
      });
    }
  }
  const rowsPerCall = s.calls > 0 ? s.rows / s.calls : 0;
  if (rowsPerCall > t.maxRowsPerCall) {
    findings.push({
      kind: 'many_rows_per_call',
      detail: `returns ${Math.round(rowsPerCall)} rows per call: add a LIMIT, paginate or aggregate in SQL`,
      rowsPerCall,
    });
  }
  if (s.tempBlksWritten > 0) {
    findings.push({
      kind: 'temp_spill',
      detail: `wrote ${s.tempBlksWritten} temporary blocks (${((s.tempBlksWritten * 8) / 1024).toFixed(1)} MiB): sorts or hashes spill to disk; raise work_mem for it or add an index that provides the order`,
      tempBlksWritten: s.tempBlksWritten,
    });
  }
  return findings;
};

/** A plan node as EXPLAIN (FORMAT JSON) prints it; only the fields we read. */
export interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  Schema?: string;
  Alias?: string;
  'Plan Rows'?: number;
  'Total Cost'?: number;
  Filter?: string;
  Plans?: PlanNode[];
  [field: string]: unknown;
}

/** A sequential scan in a plan. */
export interface SeqScan {
  /** `schema.table` (schema from EXPLAIN VERBOSE), or the bare name when not shown. */
  relation: string;
  planRows: number;
  filter: string | null;
}

/** Every sequential scan in a plan tree, depth first. Pure. */
export const findSeqScans = (plan: PlanNode): SeqScan[] => {
  const out: SeqScan[] = [];
  const visit = (node: PlanNode): void => {
    if (node['Node Type'] === 'Seq Scan' && node['Relation Name']) {
      out.push({
        relation: node.Schema
          ? `${node.Schema}.${node['Relation Name']}`
          : (node['Relation Name'] as string),
        planRows: node['Plan Rows'] ?? 0,
        filter: typeof node.Filter === 'string' ? node.Filter : null,
      });
    }
    for (const child of node.Plans ?? []) visit(child);
  };
  visit(plan);
  return out;
};

/** Turns EXPLAIN (FORMAT JSON) output into its one plan; anything else is an error. */
export const parseExplainJson = (rows: readonly Record<string, unknown>[]): PlanNode => {
  const raw = rows[0]?.['QUERY PLAN'];
  const doc = typeof raw === 'string' ? (JSON.parse(raw) as unknown) : raw;
  if (!Array.isArray(doc) || doc.length !== 1) {
    throw new Error(`EXPLAIN returned ${Array.isArray(doc) ? doc.length : 'no'} plans; expected 1`);
  }
  const plan = (doc[0] as { Plan?: PlanNode }).Plan;
  if (!plan || typeof plan['Node Type'] !== 'string') {
    throw new Error('EXPLAIN output has no Plan node');
  }
  return plan;
};

const EXPLAINABLE = new Set(['select', 'insert', 'update', 'delete', 'merge']);

/**
 * Whether a statement text is exactly one DML statement (SELECT/INSERT/UPDATE/DELETE/MERGE):
 * what EXPLAIN and index advice apply to. Utility statements (DDL, VACUUM, COPY…) are not.
 */
export const isExplainableStatement = (query: string, sql: SqlAnalyzer): boolean => {
  try {
    const analysis = sql.analyze(query);
    return analysis.statementCount === 1 && EXPLAINABLE.has(analysis.kind);
  } catch {
    // Unparsable (e.g. truncated) text: keep it; its EXPLAIN failure is reported as data.
    return true;
  }
};

/**
 * EXPLAINs the generic plan of a normalised pg_stat_statements text (constants are `$n`),
 * never ANALYZE. Run it inside a read-only transaction with SET LOCAL statement_timeout.
 *
 * - no parameters: `EXPLAIN (FORMAT JSON, VERBOSE) <query>`;
 * - PostgreSQL 16+: `EXPLAIN (GENERIC_PLAN, …)` plans with the `$n` left as parameters;
 * - before 16: `PREPARE` with the parameter types left to inference, then
 *   `EXPLAIN EXECUTE … (NULL, …)` under `SET LOCAL plan_cache_mode = force_generic_plan`. The
 *   generic plan never looks at the NULL values, so they cannot fold the plan away (a custom
 *   plan for `WHERE id = NULL` would be a one-time filter). The prepared statement is not
 *   transactional, so it is deallocated before returning, also after a failed EXPLAIN
 *   (a savepoint keeps the transaction usable).
 *   https://www.postgresql.org/docs/15/runtime-config-query.html#GUC-PLAN-CACHE-MODE
 *
 * @throws Error for text that is not exactly one DML statement, or that the server rejects.
 */
export const explainGenericPlan = async (
  tx: Queryable,
  query: string,
  serverVersionNum: number,
  sql: SqlAnalyzer,
): Promise<PlanNode> => {
  const analysis = sql.analyze(query);
  if (analysis.statementCount !== 1 || !EXPLAINABLE.has(analysis.kind)) {
    throw new Error(
      `not explainable: ${analysis.statementCount} statement(s) of kind ${analysis.kind}`,
    );
  }
  const params = analysis.maxParamIndex;
  if (params === 0) {
    return parseExplainJson(
      (await tx.query(`EXPLAIN /* dbopt */ (FORMAT JSON, VERBOSE) ${query}`)).rows,
    );
  }
  if (serverVersionNum >= 160_000) {
    return parseExplainJson(
      (await tx.query(`EXPLAIN /* dbopt */ (FORMAT JSON, VERBOSE, GENERIC_PLAN) ${query}`)).rows,
    );
  }
  const name = `dbopt_explain_${randomUUID().replaceAll('-', '')}`;
  await tx.query(`PREPARE /* dbopt */ ${name} AS ${query}`);
  try {
    await tx.query(`SET /* dbopt */ LOCAL plan_cache_mode = force_generic_plan`);
    await tx.query('SAVEPOINT /* dbopt */ dbopt_explain');
    try {
      const nulls = Array.from({ length: params }, () => 'NULL').join(', ');
      const { rows } = await tx.query(
        `EXPLAIN /* dbopt */ (FORMAT JSON, VERBOSE) EXECUTE ${name}(${nulls})`,
      );
      return parseExplainJson(rows);
    } catch (err) {
      await tx.query('ROLLBACK /* dbopt */ TO SAVEPOINT dbopt_explain');
      throw err;
    }
  } finally {
    await tx.query(`DEALLOCATE /* dbopt */ ${name}`);
  }
};

/**
 * The `seq_scan` findings of a plan: sequential scans of tables whose estimated size
 * (pg_class.reltuples) reaches `seqScanMinRows`.
 */
export const findBigSeqScans = async (
  tx: Queryable,
  plan: PlanNode,
  t: FindingThresholds = DEFAULT_FINDING_THRESHOLDS,
): Promise<Finding[]> => {
  const scans = findSeqScans(plan);
  if (scans.length === 0) return [];
  const { rows } = await tx.query<{
    schema_name: string;
    table_name: string;
    estimated_rows: number;
    size_bytes: number;
  }>(RELATION_ROWS_SQL, [[...new Set(scans.map((s) => s.relation))]]);
  const sizes = new Map(rows.map((r) => [`${r.schema_name}.${r.table_name}`, r]));
  const findings: Finding[] = [];
  for (const scan of scans) {
    const size = sizes.get(scan.relation);
    const estimatedRows = size ? Number(size.estimated_rows) : scan.planRows;
    if (estimatedRows < t.seqScanMinRows) continue;
    findings.push({
      kind: 'seq_scan',
      detail: `sequential scan of ${scan.relation} (~${Math.round(estimatedRows)} rows)${scan.filter ? ` filtered by ${scan.filter}` : ''}: an index on the filtered columns may help`,
      relation: scan.relation,
      estimatedRows,
      ...(size ? { sizeBytes: Number(size.size_bytes) } : {}),
      filter: scan.filter,
    });
  }
  return findings;
};
