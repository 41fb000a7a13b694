import { randomUUID } from 'node:crypto';
import type { Queryable } from '#shared/db';

/** One node of an EXPLAIN (FORMAT JSON) plan (the fields dbopt reads). */
export interface PlanNode {
  readonly 'Node Type': string;
  readonly 'Total Cost': number;
  readonly 'Startup Cost'?: number;
  readonly 'Plan Rows'?: number;
  readonly 'Index Name'?: string;
  readonly 'Relation Name'?: string;
  readonly Plans?: readonly PlanNode[];
}

/** An explained statement: its plan, and whether it was planned with real parameter values. */
export interface ExplainedPlan {
  readonly plan: PlanNode;
  readonly totalCost: number;
  /** custom: no parameters, or their values were given; generic: planned for any value. */
  readonly mode: 'custom' | 'generic';
}

/**
 * EXPLAIN (FORMAT JSON) — never ANALYZE — of one statement on `tx` (the caller owns the
 * read-only transaction and its statement_timeout). With the values of all `$n`, the plan is
 * the one those values get; without, the statement is PREPAREd and explained as PostgreSQL's
 * generic plan (`plan_cache_mode = force_generic_plan`, PG 15 has no EXPLAIN (GENERIC_PLAN)),
 * rather than a custom plan for NULLs, which would cost a different query.
 *
 * Prepared statements are not transactional: the generic path deallocates its statement
 * itself, inside a savepoint so that a failing EXPLAIN leaves the caller's transaction usable.
 */
export const explainStatement = async (
  tx: Queryable,
  sql: string,
  paramCount: number,
  values?: readonly unknown[],
): Promise<ExplainedPlan> => {
  if (paramCount === 0 || (values && values.length >= paramCount)) {
    const { rows } = await tx.query(
      `EXPLAIN /* dbopt */ (FORMAT JSON) ${sql}`,
      paramCount === 0 ? [] : [...(values ?? []).slice(0, paramCount)],
    );
    return { ...planOf(rows), mode: 'custom' };
  }
  const name = `dbopt_explain_${randomUUID().replaceAll('-', '')}`;
  await tx.query('SAVEPOINT dbopt_explain');
  try {
    await tx.query('SET /* dbopt */ LOCAL plan_cache_mode = force_generic_plan');
    await tx.query(`PREPARE /* dbopt */ ${name} AS ${sql}`);
    const nulls = Array.from({ length: paramCount }, () => 'NULL').join(', ');
    const { rows } = await tx.query(`EXPLAIN /* dbopt */ (FORMAT JSON) EXECUTE ${name}(${nulls})`);
    await tx.query(`DEALLOCATE /* dbopt */ ${name}`);
    await tx.query('RELEASE SAVEPOINT dbopt_explain');
    await tx.query('SET /* dbopt */ LOCAL plan_cache_mode = auto');
    return { ...planOf(rows), mode: 'generic' };
  } catch (err) {
    await tx.query('ROLLBACK TO SAVEPOINT dbopt_explain');
    // PREPARE is not transactional: drop the statement if it was created before the failure.
    const { rows } = await tx.query(SQL_PREPARED_EXISTS, [name]);
    if (rows.length > 0) await tx.query(`DEALLOCATE /* dbopt */ ${name}`);
    await tx.query('SET /* dbopt */ LOCAL plan_cache_mode = auto');
    throw err;
  }
};

const SQL_PREPARED_EXISTS = `
SELECT /* dbopt */ 1
FROM pg_prepared_statements
WHERE name = $1`;

const planOf = (rows: Record<string, unknown>[]): { plan: PlanNode; totalCost: number } => {
  const document = rows[0]?.['QUERY PLAN'];
  const plans = Array.isArray(document) ? document : [];
  const plan = (plans[0] as { Plan?: PlanNode } | undefined)?.Plan;
  if (plans.length !== 1 || !plan) throw new Error('EXPLAIN returned no single plan');
  return { plan, totalCost: plan['Total Cost'] };
};

/** Names of every index a plan reads. */
export const planIndexNames = (plan: PlanNode): Set<string> => {
  const names = new Set<string>();
  const visit = (node: PlanNode) => {
    if (node['Index Name']) names.add(node['Index Name']);
    for (const child of node.Plans ?? []) visit(child);
  };
  visit(plan);
  return names;
};
