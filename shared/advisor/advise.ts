import type { Database } from '#shared/db';
import { initSqlParser, parseStatements } from '#shared/sql';
import {
  type Candidate,
  candidateBody,
  candidateDdl,
  candidateName,
  generateCandidates,
  summarizeCandidate,
} from './candidates.ts';
import { type Catalog, loadCatalog, requestedName, type TableInfo } from './catalog.ts';
import type { PlanSummary } from './plan.ts';
import {
  extractShape,
  resolveAccess,
  type StatementShape,
  type TableAccess,
} from './predicates.ts';
import {
  type SelectionCandidate,
  type SelectionStatement,
  selectIndexes,
  type WriteStatement,
  writeOverheadOf,
} from './select.ts';
import {
  AdvisorSession,
  type CandidateEvaluation,
  candidateColumns,
  itemKey,
  type PlanItem,
  type PreparedStatementRef,
} from './session.ts';
import type {
  AdvisorLogger,
  AdvisorOptions,
  AdvisorReport,
  CandidateSummary,
  IndexProposal,
  StatementCost,
  WorkloadStatement,
} from './types.ts';

export interface AdvisorDeps {
  /** Direct database endpoint (not RDS Proxy: the session pins a backend). */
  db: Database;
  logger?: AdvisorLogger;
  /** Called with short progress lines (the CLI prints them on stderr). */
  onProgress?: (message: string) => void;
}

interface StatementState {
  st: WorkloadStatement;
  shape?: StatementShape;
  accesses: TableAccess[];
  ref?: PreparedStatementRef;
  /** Index into `refs` (prepared statements) when evaluable. */
  refIndex?: number;
  items: PlanItem[];
  baseline: number[];
  /** Rows per parameter set from the baseline plans (rows written, for writes). */
  rows: number[];
  error?: string;
}

const mean = (values: readonly number[]): number =>
  values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

const formatCost = (cost: number): string =>
  cost >= 100 ? Math.round(cost).toLocaleString('en-US') : cost.toFixed(1);

const formatBytes = (bytes: number): string =>
  bytes >= 1024 * 1024
    ? `${(bytes / 1024 / 1024).toFixed(1)} MB`
    : `${Math.max(1, Math.round(bytes / 1024))} kB`;

/** How many of a table's rows a write statement touches per call, from its baseline plan. */
const writeStatements = (states: readonly StatementState[], catalog: Catalog): WriteStatement[] =>
  states.flatMap((s) => {
    const shape = s.shape;
    if (!shape?.writeTarget || s.error || shape.kind === 'select' || shape.kind === 'other')
      return [];
    const table = catalog.byRequestedName.get(
      requestedName(shape.writeTarget.schema, shape.writeTarget.name),
    );
    if (!table) return [];
    return [
      {
        id: s.st.id,
        table,
        kind: shape.kind,
        setColumns: shape.setColumns,
        rowsPerCall: Math.max(1, mean(s.baseline.length > 0 ? s.rows : [1])),
        weightPerHour: s.st.weightPerHour,
      },
    ];
  });

/**
 * Plain indexes first; then INCLUDE variants of the chosen ones compete like any candidate
 * (they must cut a statement's cost by another minImprovement of its baseline), and a chosen
 * variant replaces its plain twin. A wider index has to earn its size: an index-only scan that
 * saves a few heap pages of an already cheap plan is not worth it.
 */
const selectInTwoPasses = (
  statements: readonly SelectionStatement[],
  candidates: readonly SelectionCandidate[],
  usable: ReadonlyMap<string, { c: Candidate }>,
  options: AdvisorOptions,
): ReturnType<typeof selectIndexes> => {
  const isVariant = (id: string) => (usable.get(id)?.c.include.length ?? 0) > 0;
  const plainIdOf = (id: string): string => {
    const c = (usable.get(id) as { c: Candidate }).c;
    return candidateBody({ ...c, include: [] });
  };
  const first = selectIndexes(
    statements,
    candidates.filter((c) => !isVariant(c.id)),
    options,
  );
  const variants = candidates.filter(
    (c) => isVariant(c.id) && first.chosen.includes(plainIdOf(c.id)),
  );
  const second = selectIndexes(
    statements,
    [...candidates.filter((c) => first.chosen.includes(c.id)), ...variants],
    { ...options, initial: first.chosen },
  );
  const replaced = new Set(second.chosen.filter(isVariant).map(plainIdOf));
  const rejected = new Map(first.rejected);
  for (const [id, reason] of second.rejected) rejected.set(id, reason);
  for (const c of candidates) {
    if (isVariant(c.id) && !second.chosen.includes(c.id) && !rejected.has(c.id)) {
      rejected.set(
        c.id,
        first.chosen.includes(plainIdOf(c.id))
          ? 'the index-only scan does not pay for the wider index'
          : 'its plain twin was not chosen either',
      );
    }
  }
  for (const id of replaced) rejected.set(id, 'replaced by its INCLUDE variant (index-only scan)');
  return { chosen: second.chosen.filter((id) => !replaced.has(id)), rejected };
};

/**
 * Proposes indexes for a workload: parses every statement with PostgreSQL's parser, generates
 * candidates per table (equality → range / ORDER BY, expressions, partial, GIN, trigram,
 * pattern opclasses, join columns), plans every statement with its real example parameter
 * values and each candidate in place (HypoPG, or a build inside a rolled-back transaction),
 * selects a workload-wide set greedily under the budget, then re-plans every statement with
 * the whole set and drops any index that makes a plan worse or that a plan uses only as an
 * ordered walk under LIMIT while filtering on other columns. Nothing persists on the database.
 *
 * @example
 * const report = await adviseIndexes({ db }, workloadFromFile('queries.json'), advisorOptionsFromConfig(config));
 * for (const p of report.proposals) console.log(p.ddl);
 */
export const adviseIndexes = async (
  deps: AdvisorDeps,
  workload: readonly WorkloadStatement[],
  options: AdvisorOptions,
): Promise<AdvisorReport> => {
  const startedAt = Date.now();
  const progress = (message: string): void => {
    deps.onProgress?.(message);
    deps.logger?.debug(message);
  };
  const warnings: string[] = [];
  await initSqlParser();

  const states: StatementState[] = workload.map((st) => {
    const state: StatementState = { st, accesses: [], items: [], baseline: [], rows: [] };
    try {
      const stmts = parseStatements(st.sql);
      if (stmts.length !== 1) {
        state.error = `expected exactly one statement, found ${stmts.length}`;
        return state;
      }
      state.shape = extractShape(stmts[0]?.stmt);
      if (state.shape.kind === 'other') state.error = 'not a SELECT, INSERT, UPDATE or DELETE';
    } catch (err) {
      state.error = errorText(err);
    }
    return state;
  });
  progress(`parsed ${states.length} statements`);

  const names = new Set<string>();
  for (const s of states) {
    for (const block of s.shape?.blocks ?? []) {
      for (const t of block.tables) names.add(requestedName(t.schema, t.name));
    }
    const target = s.shape?.writeTarget;
    if (target) names.add(requestedName(target.schema, target.name));
  }

  const session = await AdvisorSession.open(deps.db, options, warnings);
  try {
    const catalog = await session.readOnly((q) => loadCatalog(q, [...names]));
    progress(
      `catalog: ${catalog.tables.size} tables${session.hypopg ? ', HypoPG available' : ', no HypoPG'}`,
    );
    const lookup = (t: { schema: string | null; name: string }) => {
      const key = catalog.byRequestedName.get(requestedName(t.schema, t.name));
      const info = key ? catalog.tables.get(key) : undefined;
      return info ? { key: info.key, columns: new Set(info.columns.keys()) } : undefined;
    };
    for (const t of catalog.tables.values()) {
      if (!t.analysed) {
        warnings.push(
          `${t.key} has never been analysed: run ANALYZE ${t.key} so estimates are real`,
        );
      }
    }

    // Prepare every statement and plan it without new indexes (the baseline).
    const refs: PreparedStatementRef[] = [];
    for (const s of states) {
      if (s.error || !s.shape) continue;
      s.accesses = resolveAccess(s.shape, lookup);
      try {
        s.ref = await session.prepare(s.st.sql, s.st.params);
        s.refIndex = refs.length;
        refs.push(s.ref);
        s.items = s.ref.executeArgs.map((_, p) => ({
          statement: s.refIndex as number,
          paramSet: p,
        }));
      } catch (err) {
        s.error = errorText(err);
      }
    }
    const baseline = await session.baseline(
      refs,
      states.flatMap((s) => s.items),
    );
    for (const s of states) {
      const kept: PlanItem[] = [];
      for (const item of s.items) {
        const plan = baseline.get(itemKey(item));
        if (plan instanceof Error || !plan) {
          warnings.push(
            `${s.st.id}: parameter set ${item.paramSet + 1} could not be planned (${errorText(plan)}); skipped`,
          );
          continue;
        }
        kept.push(item);
        s.baseline.push(plan.totalCost);
        s.rows.push(plan.rows);
      }
      s.items = kept;
      if (!s.error && s.ref && kept.length === 0) s.error = 'no parameter set could be planned';
    }
    for (const s of states) if (s.error) warnings.push(`${s.st.id}: skipped (${s.error})`);
    const evaluable = states.filter((s) => !s.error && s.items.length > 0);
    progress(
      `baseline: ${evaluable.reduce((n, s) => n + s.items.length, 0)} plans of ${evaluable.length} statements`,
    );

    const generated = generateCandidates(
      evaluable.map((s) => ({ id: s.st.id, accesses: s.accesses, params: s.ref?.paramSets ?? [] })),
      catalog.tables,
      catalog.extensions,
      options,
    );
    warnings.push(...generated.warnings);
    const rejected: { candidate: CandidateSummary; reason: string }[] = generated.rejected.map(
      (r) => ({
        candidate: summarizeCandidate(r.candidate),
        reason: r.reason,
      }),
    );
    const candidates = generated.candidates;
    progress(`${candidates.length} candidates (${generated.rejected.length} rejected up front)`);

    // Statements are evaluated for a candidate when they read its table.
    const itemsOf = (c: Candidate): PlanItem[] =>
      evaluable.filter((s) => s.accesses.some((a) => a.table === c.table)).flatMap((s) => s.items);
    const evaluations = await session.evaluateEach(refs, candidates, itemsOf, (done) => {
      if (done % 10 === 0 || done === candidates.length)
        progress(`evaluated ${done}/${candidates.length} candidates`);
    });

    const writes = writeStatements(states, catalog);
    const selectionStatements: SelectionStatement[] = evaluable.map((s) => ({
      id: s.st.id,
      weightPerHour: s.st.weightPerHour,
      baseline: s.baseline,
    }));
    const distrusted = new Map<string, string[]>();
    const selectionCandidates: SelectionCandidate[] = [];
    const usable = new Map<string, { c: Candidate; evaluation: CandidateEvaluation }>();
    for (const c of candidates) {
      const evaluation = evaluations.get(c.id);
      if (!evaluation || evaluation.error) {
        rejected.push({
          candidate: summarizeCandidate(c),
          reason: `could not be evaluated: ${evaluation?.error ?? 'not planned'}`,
        });
        continue;
      }
      usable.set(c.id, { c, evaluation });
      const costs = new Map<number, number[]>();
      evaluable.forEach((s, n) => {
        let anyTrusted = false;
        const perParam = s.items.map((item, p) => {
          const plan = evaluation.plans.get(itemKey(item));
          const use = plan?.uses.filter((u) => u.indexName === evaluation.indexName) ?? [];
          if (!plan || use.length === 0) return s.baseline[p] as number;
          if (use.some((u) => !u.trusted)) {
            distrusted.set(c.id, [...(distrusted.get(c.id) ?? []), s.st.id]);
            return s.baseline[p] as number;
          }
          anyTrusted = true;
          return plan.totalCost;
        });
        if (anyTrusted) costs.set(n, perParam);
      });
      const table = catalog.tables.get(c.table) as TableInfo;
      const overhead = writeOverheadOf(c.table, candidateColumns(c), writes, table.indexes.length);
      selectionCandidates.push({
        id: c.id,
        sizeBytes: evaluation.sizeBytes,
        writeCostPerHour: overhead.costPerHour,
        costs,
      });
    }

    // Select, re-plan every statement with the whole set, ban any index that makes a plan worse
    // or is walked untrusted, and select again without it (a few rounds at most).
    const allItems = evaluable.flatMap((s) => s.items);
    const banned = new Map<string, string>();
    const benefitAlone = (id: string): number => {
      const c = selectionCandidates.find((x) => x.id === id);
      if (!c) return 0;
      let total = 0;
      for (const [n, costs] of c.costs) {
        const s = evaluable[n] as StatementState;
        total += s.st.weightPerHour * (mean(s.baseline) - mean(costs));
      }
      return total - c.writeCostPerHour;
    };
    let selection = selectInTwoPasses(selectionStatements, selectionCandidates, usable, options);
    let set: Candidate[] = [];
    let final: { plans: Map<string, PlanSummary>; names: Map<string, string> } = {
      plans: new Map(),
      names: new Map(),
    };
    for (let round = 0; round < 6; round += 1) {
      if (round > 0) {
        selection = selectInTwoPasses(
          selectionStatements,
          selectionCandidates.filter((c) => !banned.has(c.id)),
          usable,
          options,
        );
      }
      set = selection.chosen.map((id) => (usable.get(id) as { c: Candidate }).c);
      progress(
        `round ${round + 1}: ${set.length} indexes selected; re-planning every statement with the whole set`,
      );
      if (set.length === 0) {
        final = { plans: new Map(), names: new Map() };
        break;
      }
      try {
        final = await session.evaluateSet(refs, set, allItems);
      } catch (err) {
        // A real build in the final re-plan can fail (lock_timeout on a busy table, a read-only
        // replica): never propose what was not re-planned with the whole set.
        const built = set.filter((c) => !session.canSimulate(c));
        if (built.length === 0) throw err;
        const reason = `could not be re-planned together with the other proposals: ${errorText(err)}`;
        warnings.push(
          `final re-plan with built candidates failed (${errorText(err)}); those candidates were dropped`,
        );
        for (const c of built) banned.set(c.id, reason);
        continue;
      }
      const byName = new Map([...final.names].map(([id, name]) => [name, id]));
      const drop = new Map<string, string>();
      for (const s of evaluable) {
        const plans = s.items.map((item) => final.plans.get(itemKey(item)) as PlanSummary);
        const after = mean(plans.map((p) => p.totalCost));
        const before = mean(s.baseline);
        const used = plans.flatMap((p) => p.uses).filter((u) => byName.has(u.indexName));
        const untrusted = used.filter((u) => !u.trusted);
        if (untrusted.length > 0) {
          for (const u of untrusted) {
            drop.set(
              byName.get(u.indexName) as string,
              `with the whole set in place, ${s.st.id} walks it in order under LIMIT while filtering on columns it lacks`,
            );
          }
        } else if (after > before * 1.001 + 0.01 && used.length > 0) {
          const worst = [...new Set(used.map((u) => byName.get(u.indexName) as string))].sort(
            (a, b) => benefitAlone(a) - benefitAlone(b),
          )[0] as string;
          drop.set(
            worst,
            `with the whole set in place, ${s.st.id}'s plan cost rises from ${formatCost(before)} to ${formatCost(after)}`,
          );
        }
      }
      if (drop.size === 0) break;
      for (const [id, reason] of drop) banned.set(id, reason);
      if (round === 5) {
        set = set.filter((c) => !drop.has(c.id));
        warnings.push(
          'the final re-plan still found regressions after 6 rounds; the offending indexes were removed',
        );
      }
    }
    for (const [id, reason] of banned) {
      const u = usable.get(id) as { c: Candidate };
      rejected.push({ candidate: summarizeCandidate(u.c), reason });
    }
    for (const [id, reason] of selection.rejected) {
      const u = usable.get(id);
      if (!u || banned.has(id)) continue;
      const hijacked = distrusted.get(id);
      const why =
        hijacked && !selectionCandidates.find((c) => c.id === id)?.costs.size
          ? `the only plans found for ${[...new Set(hijacked)].join(', ')} walk it in order under LIMIT while filtering on columns it lacks; the planner's estimate assumes evenly spread matches, so the gain is not trusted`
          : reason;
      rejected.push({ candidate: summarizeCandidate(u.c), reason: why });
    }

    // Attribute the final plans to the proposals.
    const nameToId = new Map([...final.names].map(([id, name]) => [name, id]));
    const statementCosts: StatementCost[] = [];
    const served = new Map<string, { n: number; share: number }[]>();
    evaluable.forEach((s, n) => {
      const plans = s.items.map((item) => final.plans.get(itemKey(item)));
      const after = plans.every((p) => p)
        ? mean(plans.map((p) => (p as PlanSummary).totalCost))
        : mean(s.baseline);
      const usedIds = [
        ...new Set(
          plans.flatMap((p) => p?.uses ?? []).flatMap((u) => nameToId.get(u.indexName) ?? []),
        ),
      ];
      for (const id of usedIds)
        served.set(id, [...(served.get(id) ?? []), { n, share: 1 / usedIds.length }]);
      statementCosts.push({
        id: s.st.id,
        weightPerHour: s.st.weightPerHour,
        costBefore: mean(s.baseline),
        costAfter: Math.min(after, mean(s.baseline)),
        indexesUsed: usedIds.map((id) => candidateName((usable.get(id) as { c: Candidate }).c)),
      });
    });
    for (const s of states) {
      if (s.error) {
        statementCosts.push({
          id: s.st.id,
          weightPerHour: s.st.weightPerHour,
          costBefore: 0,
          costAfter: 0,
          indexesUsed: [],
          error: s.error,
        });
      }
    }

    const proposals: IndexProposal[] = [];
    for (const c of set) {
      const uses = served.get(c.id) ?? [];
      const { evaluation } = usable.get(c.id) as { evaluation: CandidateEvaluation };
      if (uses.length === 0) {
        rejected.push({
          candidate: summarizeCandidate(c),
          reason: 'no plan uses it once the other proposals are in place',
        });
        continue;
      }
      let costBefore = 0;
      let costAfter = 0;
      let weighted = 0;
      let timeSaved = 0;
      let timeKnown = false;
      const serveText: string[] = [];
      for (const { n, share } of uses) {
        const cost = statementCosts[n] as StatementCost;
        const st = (evaluable[n] as StatementState).st;
        costBefore += cost.costBefore;
        costAfter += cost.costAfter;
        weighted += st.weightPerHour * (cost.costBefore - cost.costAfter) * share;
        if (st.meanExecMs !== undefined && cost.costBefore > 0) {
          timeKnown = true;
          timeSaved +=
            st.weightPerHour * st.meanExecMs * (1 - cost.costAfter / cost.costBefore) * share;
        }
        serveText.push(
          `${st.id} (cost ${formatCost(cost.costBefore)} → ${formatCost(cost.costAfter)})`,
        );
      }
      const table = catalog.tables.get(c.table) as TableInfo;
      const overhead = writeOverheadOf(c.table, candidateColumns(c), writes, table.indexes.length);
      const writeText =
        overhead.statements.length === 0
          ? 'No write in the workload touches the table.'
          : overhead.hotUpdatesLost
            ? `Updates of ${overhead.updatedColumns.join(', ')} (${overhead.statements.join(', ')}) can no longer be HOT: ~${Math.round(overhead.entriesPerHour)} index entries/hour charged.`
            : overhead.entriesPerHour < 1
              ? `Writes (${overhead.statements.join(', ')}) do not touch its columns and stay HOT.`
              : `Writes (${overhead.statements.join(', ')}) add ~${Math.round(overhead.entriesPerHour)} index entries/hour.`;
      proposals.push({
        table: c.table,
        method: c.method,
        keys: c.keys.map((k) => k.sql),
        include: c.include,
        where: c.where,
        ddl: candidateDdl(c),
        name: candidateName(c),
        serves: uses.map(({ n }) => (evaluable[n] as StatementState).st.id),
        benefit: {
          costBefore,
          costAfter,
          weightedCostReduction: weighted,
          ...(timeKnown ? { estimatedTimeSavedMsPerHour: timeSaved } : {}),
        },
        sizeBytes: evaluation.sizeBytes,
        writeOverhead: overhead,
        evaluatedWith: evaluation.evaluatedWith,
        rationale: `${[...c.reasons].join('; ')}. Serves ${serveText.join(', ')}. Estimated size ${formatBytes(evaluation.sizeBytes)}. ${writeText} Proven by ${evaluation.evaluatedWith === 'hypopg' ? 'a HypoPG hypothetical index' : 'building it in a rolled-back transaction'}: the plans use it.`,
      });
    }
    proposals.sort((a, b) => b.benefit.weightedCostReduction - a.benefit.weightedCostReduction);

    const methods = new Set([...usable.values()].map((u) => u.evaluation.evaluatedWith));
    const method =
      methods.size > 1
        ? 'mixed'
        : methods.has('rollback-build')
          ? 'rollback-build'
          : session.hypopg
            ? 'hypopg'
            : 'rollback-build';
    progress(`${proposals.length} proposals`);
    return {
      proposals,
      rejected,
      statements: statementCosts,
      method,
      runtimeMs: Date.now() - startedAt,
      warnings,
    };
  } finally {
    session.close();
  }
};
