/**
 * Workload-wide selection (pure math). Each candidate was planned alone; a statement's cost
 * under a set of indexes is taken, per parameter set, as the cheapest trusted plan among the
 * set (the final re-plan with the whole set in place corrects the approximation). Greedy:
 * repeatedly take the candidate with the largest net benefit — Σ weight × cost reduction
 * minus its write overhead — within the count and byte budgets.
 */

export interface SelectionStatement {
  id: string;
  weightPerHour: number;
  /** Plan cost per parameter set without any candidate. */
  baseline: number[];
}

export interface SelectionCandidate {
  id: string;
  sizeBytes: number;
  /** Planner cost units per hour charged for maintaining the index. */
  writeCostPerHour: number;
  /** Per statement index: plan cost per parameter set with this index, only where a plan trusted it. */
  costs: Map<number, number[]>;
}

export interface SelectionOptions {
  maxIndexes: number;
  maxIndexBytes: number;
  /** The best statement improvement must reach this fraction of that statement's baseline cost. */
  minImprovement: number;
  /** Candidates already chosen (a previous pass): they count against the budgets. */
  initial?: readonly string[];
}

export interface SelectionResult {
  /** Candidate ids in the order they were chosen. */
  chosen: string[];
  /** Candidate id → why it was not chosen. */
  rejected: Map<string, string>;
}

const mean = (values: readonly number[]): number =>
  values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;

/** Cost of each statement (per parameter set) when `chosen` are all in place. */
export const costsWith = (
  statements: readonly SelectionStatement[],
  candidates: ReadonlyMap<string, SelectionCandidate>,
  chosen: readonly string[],
): number[][] =>
  statements.map((s, n) => {
    const current = [...s.baseline];
    for (const id of chosen) {
      const costs = candidates.get(id)?.costs.get(n);
      if (!costs) continue;
      costs.forEach((c, p) => {
        if (c < (current[p] as number)) current[p] = c;
      });
    }
    return current;
  });

interface Gain {
  net: number;
  gross: number;
  served: number;
  bestRelative: number;
}

const gainOf = (
  c: SelectionCandidate,
  statements: readonly SelectionStatement[],
  current: readonly number[][],
): Gain => {
  let gross = 0;
  let served = 0;
  let bestRelative = 0;
  for (const [n, costs] of c.costs) {
    const s = statements[n] as SelectionStatement;
    const cur = current[n] as number[];
    const after = cur.map((v, p) => Math.min(v, costs[p] ?? v));
    const reduction = mean(cur) - mean(after);
    if (reduction <= 0) continue;
    served += 1;
    gross += s.weightPerHour * reduction;
    const base = mean(s.baseline);
    if (base > 0) bestRelative = Math.max(bestRelative, reduction / base);
  }
  return { net: gross - c.writeCostPerHour, gross, served, bestRelative };
};

/**
 * Greedy selection under the budgets. Near-ties (within 2% of net benefit) go to the candidate
 * serving more statements, then to the smaller one.
 */
export const selectIndexes = (
  statements: readonly SelectionStatement[],
  candidates: readonly SelectionCandidate[],
  options: SelectionOptions,
): SelectionResult => {
  const byId = new Map(candidates.map((c) => [c.id, c]));
  const chosen: string[] = [...(options.initial ?? [])];
  const rejected = new Map<string, string>();
  let bytes = chosen.reduce((n, id) => n + (byId.get(id)?.sizeBytes ?? 0), 0);
  const open = new Set(candidates.map((c) => c.id).filter((id) => !chosen.includes(id)));
  for (;;) {
    const current = costsWith(statements, byId, chosen);
    let best: { c: SelectionCandidate; gain: Gain } | undefined;
    for (const id of open) {
      const c = byId.get(id) as SelectionCandidate;
      const gain = gainOf(c, statements, current);
      if (gain.served === 0 || gain.bestRelative < options.minImprovement || gain.net <= 0)
        continue;
      if (!best) {
        best = { c, gain };
        continue;
      }
      const margin = Math.max(best.gain.net, gain.net) * 0.02;
      const better =
        gain.net > best.gain.net + margin ||
        (Math.abs(gain.net - best.gain.net) <= margin &&
          (gain.served > best.gain.served ||
            (gain.served === best.gain.served && c.sizeBytes < best.c.sizeBytes)));
      if (better) best = { c, gain };
    }
    if (!best) break;
    if (chosen.length >= options.maxIndexes) {
      for (const id of open)
        rejected.set(id, `over the budget of ${options.maxIndexes} indexes (ADVISOR_MAX_INDEXES)`);
      break;
    }
    open.delete(best.c.id);
    if (bytes + best.c.sizeBytes > options.maxIndexBytes) {
      rejected.set(
        best.c.id,
        `its ${best.c.sizeBytes} bytes exceed the remaining size budget (ADVISOR_MAX_INDEX_BYTES)`,
      );
      continue;
    }
    chosen.push(best.c.id);
    bytes += best.c.sizeBytes;
  }
  const final = costsWith(statements, byId, chosen);
  for (const id of open) {
    if (rejected.has(id)) continue;
    const c = byId.get(id) as SelectionCandidate;
    const alone = gainOf(
      c,
      statements,
      statements.map((s) => s.baseline),
    );
    const marginal = gainOf(c, statements, final);
    if (alone.served === 0)
      rejected.set(
        id,
        'no statement plan uses it profitably (the planner prefers the existing plan, or every use was an untrusted ordered scan under LIMIT)',
      );
    else if (alone.bestRelative < options.minImprovement)
      rejected.set(
        id,
        `improves no statement by ${Math.round(options.minImprovement * 100)}% or more of its cost (ADVISOR_MIN_IMPROVEMENT)`,
      );
    else if (alone.net <= 0) rejected.set(id, 'its write overhead outweighs its read benefit');
    else if (marginal.served === 0 || marginal.bestRelative < options.minImprovement)
      rejected.set(id, 'the chosen indexes already serve its statements as well or better');
    else rejected.set(id, 'its write overhead outweighs its remaining benefit');
  }
  return { chosen, rejected };
};

export interface WriteStatement {
  id: string;
  table: string;
  kind: 'insert' | 'update' | 'delete';
  setColumns: string[];
  rowsPerCall: number;
  weightPerHour: number;
}

/** Planner cost units charged per index entry written (≈ one random page touch, WAL, CPU). */
export const INDEX_ENTRY_COST = 5;
/** Extra cost of an UPDATE that can no longer be HOT (new heap tuple version, every index updated). */
export const HOT_LOSS_COST = 10;

/**
 * Write overhead of a new index on `table` whose stored columns are `columns`: every insert
 * adds an entry; an update that sets one of `columns` loses HOT and then writes an entry into
 * every index of the table (`existingIndexes` + this one).
 */
export const writeOverheadOf = (
  table: string,
  columns: readonly string[],
  writes: readonly WriteStatement[],
  existingIndexes: number,
): {
  statements: string[];
  entriesPerHour: number;
  updatedColumns: string[];
  hotUpdatesLost: boolean;
  costPerHour: number;
} => {
  const statements: string[] = [];
  const updated = new Set<string>();
  let entries = 0;
  let cost = 0;
  for (const w of writes) {
    if (w.table !== table) continue;
    statements.push(w.id);
    const rowsPerHour = w.weightPerHour * Math.max(w.rowsPerCall, 1);
    if (w.kind === 'insert') {
      entries += rowsPerHour;
      cost += rowsPerHour * INDEX_ENTRY_COST;
    } else if (w.kind === 'update') {
      const hit = w.setColumns.filter((c) => columns.includes(c));
      if (hit.length > 0) {
        for (const c of hit) updated.add(c);
        const written = rowsPerHour * (existingIndexes + 1);
        entries += written;
        cost += written * INDEX_ENTRY_COST + rowsPerHour * HOT_LOSS_COST;
      }
    }
  }
  return {
    statements,
    entriesPerHour: entries,
    updatedColumns: [...updated],
    hotUpdatesLost: updated.size > 0,
    costPerHour: cost,
  };
};
