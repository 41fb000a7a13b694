/**
 * Reading EXPLAIN (FORMAT JSON) output: the plan's total cost, which indexes it uses, and
 * whether a use can be trusted. An ordered index scan feeding a LIMIT that has to filter on
 * columns outside the index (the `WHERE a = … ORDER BY b LIMIT n` hijack) is costed by the
 * planner as if matching rows were spread evenly; with correlated or skewed data it reads most
 * of the table, so such a use is never counted as a benefit.
 */
import { parseStatements } from '#shared/sql';

type PlanNode = Record<string, unknown> & { Plans?: PlanNode[] };

export interface IndexUse {
  indexName: string;
  /** False for an ordered scan under a LIMIT that filters on columns the index lacks. */
  trusted: boolean;
  /** Columns of the node's Filter (for the rationale). */
  filterColumns: string[];
}

export interface PlanSummary {
  totalCost: number;
  uses: IndexUse[];
  /** Rows the ModifyTable's input produces (writes), else the top node's rows. */
  rows: number;
}

/** Nodes that consume their whole input before returning a row: a LIMIT above them stops nothing early. */
const BLOCKING = new Set(['Sort', 'Hash', 'Materialize', 'SetOp', 'WindowAgg', 'Unique']);

const columnsOf = (node: unknown, out: Set<string>): void => {
  if (Array.isArray(node)) {
    for (const n of node) columnsOf(n, out);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const obj = node as Record<string, unknown>;
  const ref = obj.ColumnRef as { fields?: { String?: { sval?: string } }[] } | undefined;
  if (ref?.fields) {
    const last = ref.fields[ref.fields.length - 1]?.String?.sval;
    if (last) out.add(last);
    return;
  }
  for (const v of Object.values(obj)) columnsOf(v, out);
};

/** Columns referenced by an EXPLAIN filter expression, parsed with the PostgreSQL parser. */
export const filterColumns = (filter: string): string[] | undefined => {
  try {
    const stmts = parseStatements(`SELECT ${filter}`);
    const out = new Set<string>();
    columnsOf(stmts, out);
    return [...out];
  } catch {
    // EXPLAIN prints internal forms (SubPlan, hashed SubPlan) the SQL parser rejects: unknown.
    return undefined;
  }
};

/**
 * Summarises one EXPLAIN (FORMAT JSON) result. `indexColumns(name)` returns the columns of a
 * candidate index by its plan name (undefined for indexes that are not candidates).
 */
export const summarizePlan = (
  explain: unknown,
  indexColumns: (indexName: string) => readonly string[] | undefined,
): PlanSummary => {
  const parsed = typeof explain === 'string' ? (JSON.parse(explain) as unknown) : explain;
  const root = (Array.isArray(parsed) ? parsed[0] : undefined) as { Plan?: PlanNode } | undefined;
  const plan = root?.Plan;
  if (!plan) throw new Error('EXPLAIN returned no plan');
  const uses: IndexUse[] = [];
  const walk = (node: PlanNode, limitAbove: boolean): void => {
    const type = String(node['Node Type']);
    const name = node['Index Name'];
    if (typeof name === 'string') {
      const columns = indexColumns(name);
      const filter = typeof node.Filter === 'string' ? node.Filter : undefined;
      const ordered = type === 'Index Scan' || type === 'Index Only Scan';
      let trusted = true;
      let cols: string[] = [];
      if (filter) {
        const found = filterColumns(filter);
        cols = found ?? [];
        if (ordered && limitAbove && columns) {
          trusted = found?.every((c) => columns.includes(c)) ?? false;
        }
      }
      uses.push({ indexName: name, trusted, filterColumns: cols });
    }
    const blocking = BLOCKING.has(type) || (type === 'Aggregate' && node.Strategy !== 'Sorted');
    const nextLimit = type === 'Limit' ? true : blocking ? false : limitAbove;
    for (const child of node.Plans ?? []) {
      const inner =
        child['Parent Relationship'] === 'Inner' || child['Parent Relationship'] === 'SubPlan';
      walk(child, inner ? false : nextLimit);
    }
  };
  walk(plan, false);
  const modify = plan['Node Type'] === 'ModifyTable' ? plan.Plans?.[0] : undefined;
  return {
    totalCost: Number(plan['Total Cost']),
    uses,
    rows: Number((modify ?? plan)['Plan Rows'] ?? 0),
  };
};
