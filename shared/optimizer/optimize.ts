import {
  type AdvisorLogger,
  type AdvisorOptions,
  type ApplyLimits,
  type ApplyOutcome,
  adviseIndexes,
  adviseRewrites,
  applyIndex,
  compareMeanTimes,
  dropIndex,
  findIndexHygiene,
  type HygieneFinding,
  type IndexProposal,
  type MeanTimeCheck,
  type RewriteSuggestion,
  toSuggestion,
  type WorkloadStatement,
  workloadFromStatStatements,
} from '#shared/advisor';
import { type Database, withReadOnlyTransaction } from '#shared/db';
import { type MetricsSink, MetricUnit } from '#shared/metrics';
import type { NewSuggestion, Repository } from '#shared/repository';
import { initSqlParser, parseStatements } from '#shared/sql';
import type { SlowQueryMessage } from '#shared/stats';
import { type AnnounceDeps, type AnnounceFailure, announceSuggestion } from './announce.ts';
import { OptimizerError } from './errors.ts';
import { parseSlowQueryMessage } from './message.ts';

/** The logging surface the optimizer uses (Powertools Logger fits). */
export interface OptimizerLogger extends AdvisorLogger {
  info(message: string, ...extra: unknown[]): void;
  error(message: string, ...extra: unknown[]): void;
}

export interface OptimizerSettings {
  readonly advisor: AdvisorOptions;
  /** Top pg_stat_statements entries optimised together with the slow statement. */
  readonly workloadStatements: number;
  readonly hygieneMinIndexAgeDays: number;
  /** Build new index proposals right away (verified, dropped when useless). */
  readonly autoApply: boolean;
  readonly applyLimits: ApplyLimits;
  /** Calls since the build each served statement needs before real mean times are compared. */
  readonly recheckMinCalls: number;
}

export interface OptimizerDeps {
  /** The DB endpoint (not RDS Proxy) of a target, or undefined for an unknown target. */
  readonly databaseFor: (target: string) => Database | undefined;
  readonly repository: Pick<
    Repository,
    'upsertSuggestion' | 'getSuggestion' | 'setSuggestionStatus' | 'listSuggestions'
  >;
  /** Without it new suggestions are only logged. */
  readonly announce?: AnnounceDeps;
  readonly logger: OptimizerLogger;
  /** EMF counters: SuggestionsCreated, SuggestionAnnounceFailures, OptimizeFailures, IndexesVerified, IndexesRejected. */
  readonly metrics?: MetricsSink;
  readonly settings: OptimizerSettings;
}

/** What one slow-query message produced. */
export interface OptimizeResult {
  readonly target: string;
  readonly queryId: string;
  /** Every suggestion stored (created: new this time). */
  readonly suggestions: Array<{
    id: number;
    kind: NewSuggestion['kind'];
    key: string;
    created: boolean;
  }>;
  readonly announced: number;
  readonly announceFailures: AnnounceFailure[];
  /** Auto-apply outcomes (verified or rejected); failed attempts are in `warnings`. */
  readonly applied: ApplyOutcome[];
  /** Verified indexes whose real mean times were compared this run (see recheckAppliedIndexes). */
  readonly rechecked: Array<{
    suggestionId: number;
    verdict: MeanTimeCheck['verdict'];
    dropped: boolean;
  }>;
  /** Parts that failed without failing the message (as data). */
  readonly warnings: string[];
}

/**
 * One slow-query message → suggestions. The workload is the target's top pg_stat_statements
 * entries plus the message's statement; on it run the index advisor (what-if, whole-workload
 * selection), the rewrite advisor (the slow statement) and index hygiene. Every suggestion is
 * upserted (a stable key makes re-proposals update, not duplicate); the NEW ones are announced
 * on SNS. With auto-apply on, new index proposals are built and verified ({@link applyIndex}).
 */
export const optimizeSlowQuery = async (
  deps: OptimizerDeps,
  message: SlowQueryMessage,
  options: { deadlineAtMs?: number } = {},
): Promise<OptimizeResult> => {
  const db = deps.databaseFor(message.target);
  if (!db) {
    throw new OptimizerError(
      'UNKNOWN_TARGET',
      `No database is configured for target "${message.target}" (primary: DATABASE_URL/DB_*, shards: SHARD_URLS)`,
    );
  }
  await initSqlParser();
  const warnings: string[] = [];
  const { settings } = deps;
  const retried = await retryPendingAnnouncements(deps, message.target);
  const rechecked = await recheckAppliedIndexes(deps, db, message.target, warnings);
  const workload = await buildWorkload(db, message, settings.workloadStatements, warnings);
  const report = await adviseIndexes({ db, logger: deps.logger }, workload, settings.advisor);
  warnings.push(...report.warnings);
  const rewrites = await adviseRewrites(db, [{ sql: message.query }], {
    timeoutMs: settings.advisor.statementTimeoutMs,
    // The message's text is normalised (OFFSET 5000 arrives as OFFSET $2) and it is slow.
    unknownOffsetIsCandidate: true,
  });
  for (const e of rewrites.errors) warnings.push(`rewrite ${e.rule ?? ''}: ${e.error.message}`);
  const hygiene = await withReadOnlyTransaction(
    db,
    { timeoutMs: settings.advisor.statementTimeoutMs },
    (tx) => findIndexHygiene(tx, { minIndexAgeDays: settings.hygieneMinIndexAgeDays }),
  );

  const byId = new Map(workload.map((w) => [w.id, w]));
  const rewriteIndexes = await indexesReliedOnByRewrites(
    deps,
    message.target,
    rewrites.suggestions,
  );
  const proposed: NewSuggestion[] = [
    ...report.proposals.map((p) => indexSuggestion(message.target, p, byId)),
    ...rewrites.suggestions.map((r) => rewriteSuggestion(message, r)),
    // An index a suggested rewrite relies on is not "unused": it is about to be.
    ...hygiene.findings
      .filter((f) => f.kind !== 'unused' || !rewriteIndexes.has(f.index))
      .map((f) => dropSuggestion(message.target, f)),
  ];
  await withdrawDropsOfReliedIndexes(deps, message.target, rewriteIndexes);
  const suggestions: OptimizeResult['suggestions'] = [];
  const announceFailures: AnnounceFailure[] = [...retried.failures];
  let announced = retried.announced;
  const applied: ApplyOutcome[] = [];
  for (const suggestion of proposed) {
    const { id, created } = await deps.repository.upsertSuggestion(suggestion);
    suggestions.push({ id, kind: suggestion.kind, key: suggestion.key, created });
    if (!created) continue;
    let failure: AnnounceFailure | undefined;
    if (deps.announce) {
      failure = await announceSuggestion(deps.announce, id, suggestion);
      if (failure) {
        announceFailures.push(failure);
        deps.logger.error('announcing a suggestion failed', {
          suggestionId: id,
          err: failure.error,
        });
      } else {
        announced++;
      }
    } else {
      deps.logger.info('new suggestion (no SUGGESTION_TOPIC_ARN/ALERT_TOPIC_ARN to announce it)', {
        suggestionId: id,
        kind: suggestion.kind,
        ddl: suggestion.ddl,
      });
    }
    if (settings.autoApply && suggestion.kind === 'create_index' && suggestion.ddl) {
      const outcome = await autoApply(deps, db, id, suggestion, warnings, options.deadlineAtMs);
      if (outcome) applied.push(outcome);
    }
    // After auto-apply, which rewrites the outcome: the mark must survive it.
    if (failure) await rememberPendingAnnouncement(deps, failure);
  }
  const metrics = deps.metrics;
  metrics?.addMetric(
    'SuggestionsCreated',
    MetricUnit.Count,
    suggestions.filter((x) => x.created).length,
  );
  metrics?.addMetric('SuggestionAnnounceFailures', MetricUnit.Count, announceFailures.length);
  if (settings.autoApply) {
    const verified = applied.filter((a) => a.status === 'verified').length;
    metrics?.addMetric('IndexesVerified', MetricUnit.Count, verified);
    metrics?.addMetric('IndexesRejected', MetricUnit.Count, applied.length - verified);
  }
  return {
    target: message.target,
    queryId: message.queryId,
    suggestions,
    announced,
    announceFailures,
    applied,
    rechecked,
    warnings,
  };
};

/** Runs that try to announce one suggestion before giving up (the first included). */
const MAX_ANNOUNCE_RUNS = 5;

/**
 * Marks a suggestion whose announcement failed after its retries (`outcome.announcePending`,
 * status kept): it is stored now, so a later run sees it as not new and would never announce
 * it; {@link retryPendingAnnouncements} does.
 */
const rememberPendingAnnouncement = async (
  deps: OptimizerDeps,
  failure: AnnounceFailure,
): Promise<void> => {
  const stored = await deps.repository.getSuggestion(failure.suggestionId);
  if (!stored) return;
  await deps.repository.setSuggestionStatus(stored.id, stored.status, {
    ...(stored.outcome ?? {}),
    announcePending: {
      attempts: failure.attempts,
      error: failure.error.message,
      at: new Date().toISOString(),
      runs: 1,
    },
  });
};

/**
 * Announces again the target's suggestions whose announcement failed in an earlier run
 * (marked by {@link rememberPendingAnnouncement}); a success clears the mark.
 */
export const retryPendingAnnouncements = async (
  deps: Pick<OptimizerDeps, 'announce' | 'repository' | 'logger'>,
  target: string,
): Promise<{ announced: number; failures: AnnounceFailure[] }> => {
  const failures: AnnounceFailure[] = [];
  let announced = 0;
  if (!deps.announce) return { announced, failures };
  // A suggestion rejected meanwhile (auto-apply found it useless) is not worth announcing;
  // one refused MAX_ANNOUNCE_RUNS times (a permanent error) is given up, not retried forever.
  const runsOf = (s: { outcome: Record<string, unknown> | null }): number =>
    Number((s.outcome?.announcePending as { runs?: number } | undefined)?.runs ?? 1);
  const pending = (await deps.repository.listSuggestions({ target })).filter(
    (s) =>
      s.outcome?.announcePending !== undefined &&
      s.status !== 'rejected' &&
      runsOf(s) < MAX_ANNOUNCE_RUNS,
  );
  for (const s of pending) {
    const failure = await announceSuggestion(deps.announce, s.id, s);
    if (failure) {
      failures.push(failure);
      deps.logger.error('announcing a suggestion failed again', {
        suggestionId: s.id,
        err: failure.error,
      });
      await deps.repository.setSuggestionStatus(s.id, s.status, {
        ...(s.outcome ?? {}),
        announcePending: {
          attempts: failure.attempts,
          error: failure.error.message,
          at: new Date().toISOString(),
          runs: runsOf(s) + 1,
        },
      });
      continue;
    }
    const { announcePending: _, ...outcome } = s.outcome ?? {};
    await deps.repository.setSuggestionStatus(s.id, s.status, outcome);
    announced++;
  }
  return { announced, failures };
};

/** How far down pg_stat_statements to look for a slow statement outside the top N. */
const DEEP_WORKLOAD_LIMIT = 1_000;

/**
 * Index names the plans of suggested rewrites read (this run's and the target's stored,
 * proposed ones): such an index shows no scans only because the statement is not yet
 * rewritten, so hygiene must not propose dropping it.
 */
const indexesReliedOnByRewrites = async (
  deps: OptimizerDeps,
  target: string,
  current: readonly RewriteSuggestion[],
): Promise<Set<string>> => {
  const stored = await deps.repository.listSuggestions({
    target,
    kind: 'rewrite',
    status: 'proposed',
  });
  const names = [
    ...current.flatMap((r) => r.indexesUsed),
    ...stored.flatMap((s) =>
      Array.isArray(s.payload.indexesUsed) ? s.payload.indexesUsed.map(String) : [],
    ),
  ];
  return new Set(names);
};

/** Rejects proposed "unused index" drops of indexes a suggested rewrite relies on. */
const withdrawDropsOfReliedIndexes = async (
  deps: OptimizerDeps,
  target: string,
  relied: ReadonlySet<string>,
): Promise<void> => {
  if (relied.size === 0) return;
  const drops = await deps.repository.listSuggestions({
    target,
    kind: 'drop_index',
    status: 'proposed',
  });
  for (const drop of drops) {
    if (drop.payload.kind !== 'unused' || !relied.has(String(drop.payload.index))) continue;
    await deps.repository.setSuggestionStatus(drop.id, 'rejected', {
      reason: 'a suggested rewrite of a slow statement uses this index',
    });
  }
};

const buildWorkload = async (
  db: Database,
  message: SlowQueryMessage,
  limit: number,
  warnings: string[],
): Promise<WorkloadStatement[]> => {
  let top: WorkloadStatement[] = [];
  try {
    top = await workloadFromStatStatements(db, { limit, minCalls: 1 });
  } catch (err) {
    // Without pg_stat_statements the slow statement alone is still worth advising on.
    warnings.push(`workload from pg_stat_statements unavailable: ${(err as Error).message}`);
  }
  if (top.some((w) => w.id === message.queryId)) return top;
  if (top.length > 0) {
    // Below the top N: look further down pg_stat_statements for it, for its sampled
    // parameter values (without values the index advisor cannot cost it).
    try {
      const deeper = await workloadFromStatStatements(db, {
        limit: DEEP_WORKLOAD_LIMIT,
        minCalls: 1,
      });
      const own = deeper.find((w) => w.id === message.queryId);
      if (own) return [...top, own];
    } catch (err) {
      warnings.push(
        `statement ${message.queryId} not found in pg_stat_statements: ${(err as Error).message}`,
      );
    }
  }
  const perHour =
    message.intervalSeconds > 0 ? (message.calls * 3600) / message.intervalSeconds : message.calls;
  const kind = isSelect(message.query) ? 'read' : 'write';
  return [
    ...top,
    {
      id: message.queryId,
      sql: message.query,
      params: [],
      weightPerHour: perHour,
      kind,
      meanExecMs: message.meanExecTimeMs,
    },
  ];
};

const isSelect = (sql: string): boolean => {
  try {
    const stmt = parseStatements(sql)[0]?.stmt;
    return stmt !== undefined && 'SelectStmt' in stmt;
  } catch {
    return false; // text that does not parse is left to the advisor to report
  }
};

/** C's repository row for a proposal (same stable key as `dbopt advise`), plus what apply needs. */
const indexSuggestion = (
  target: string,
  p: IndexProposal,
  workload: ReadonlyMap<string, WorkloadStatement>,
): NewSuggestion => {
  const base = toSuggestion(target, p);
  return {
    ...base,
    payload: {
      ...base.payload,
      // The served statements with one sampled parameter set: apply re-plans them.
      statements: p.serves.map((id) => ({
        id,
        sql: workload.get(id)?.sql,
        params: workload.get(id)?.params[0],
      })),
    },
  };
};

const rewriteSuggestion = (message: SlowQueryMessage, r: RewriteSuggestion): NewSuggestion => ({
  target: message.target,
  kind: 'rewrite',
  key: `rewrite:${message.fingerprint}:${r.rule}`,
  ddl: null,
  payload: {
    queryId: message.queryId,
    rule: r.rule,
    title: r.title,
    originalSql: r.originalSql,
    rewrittenSql: r.rewrittenSql,
    costBefore: r.costBefore,
    costAfter: r.costAfter,
    costRatio: r.costRatio,
    planMode: r.planMode,
    indexesUsed: r.indexesUsed,
    correctnessFix: r.correctnessFix,
    rationale: r.rationale,
  },
});

const dropSuggestion = (target: string, f: HygieneFinding): NewSuggestion => ({
  target,
  kind: 'drop_index',
  key: `drop_index:${f.schema}.${f.index}:${f.kind}`,
  ddl: f.dropStatement,
  payload: { ...f },
});

const QUERY_ID = /^-?\d+$/;

/** Time kept back after a build for verification, the DROP of a useless index and the reply. */
const APPLY_END_MARGIN_MS = 20_000;
const MIN_BUILD_MS = 5_000;

/** Real-time tolerance: a statement counts as slower when its mean grew by more than 10 %. */
const MEAN_TIME_TOLERANCE = 0.1;

/**
 * The "later" half of verified apply: for each verified index of the target with build-time
 * pg_stat_statements baselines and no comparison yet, compares each served statement's mean
 * time since the build (counter deltas) with its mean before, once every statement has
 * `recheckMinCalls` new calls. Slower → the index is dropped (when auto-apply owns it) and
 * the suggestion 'rejected'; otherwise the comparison is recorded on the outcome.
 */
const recheckAppliedIndexes = async (
  deps: OptimizerDeps,
  db: Database,
  target: string,
  warnings: string[],
): Promise<OptimizeResult['rechecked']> => {
  const done: OptimizeResult['rechecked'] = [];
  const verified = await deps.repository.listSuggestions({
    target,
    status: 'verified',
    kind: 'create_index',
  });
  for (const suggestion of verified) {
    const outcome = (suggestion.outcome ?? {}) as Partial<ApplyOutcome> & {
      meanTimeCheck?: unknown;
    };
    if (!outcome.meanTimeBaselines?.length || outcome.meanTimeCheck || !outcome.qualifiedName)
      continue;
    const baselines = outcome.meanTimeBaselines;
    const check = await withReadOnlyTransaction(
      db,
      { timeoutMs: deps.settings.advisor.statementTimeoutMs },
      (tx) =>
        compareMeanTimes(tx, baselines, {
          minCalls: deps.settings.recheckMinCalls,
          slowerTolerance: MEAN_TIME_TOLERANCE,
        }),
    );
    if (check.verdict === 'insufficient_data') continue;
    let dropped = false;
    if (check.verdict === 'slower' && deps.settings.autoApply) {
      const session = await db.pool().connect();
      try {
        await dropIndex(session, outcome.qualifiedName, deps.settings.applyLimits);
        await session.query('RESET lock_timeout; RESET statement_timeout');
        session.release();
      } catch (err) {
        session.release(err instanceof Error ? err : true);
        warnings.push(
          `dropping ${outcome.qualifiedName} after a slower mean time failed: ${(err as Error).message}`,
        );
        continue;
      }
      dropped = true;
    }
    await deps.repository.setSuggestionStatus(suggestion.id, dropped ? 'rejected' : 'verified', {
      ...outcome,
      meanTimeCheck: check,
      ...(dropped
        ? {
            reason:
              'a served statement got slower in production (pg_stat_statements mean time); the index was dropped',
          }
        : {}),
    });
    if (check.verdict === 'slower' && !dropped) {
      warnings.push(
        `${outcome.qualifiedName}: a served statement got slower since the build (not dropped: auto-apply is off)`,
      );
    }
    done.push({ suggestionId: suggestion.id, verdict: check.verdict, dropped });
  }
  return done;
};

const autoApply = async (
  deps: OptimizerDeps,
  db: Database,
  id: number,
  suggestion: NewSuggestion,
  warnings: string[],
  deadlineAtMs: number | undefined,
): Promise<ApplyOutcome | undefined> => {
  // A build cut off by the end of the invocation would leave an invalid index: keep the build
  // limit inside the time left, and leave the proposal for a later run when too little is.
  const leftMs = deadlineAtMs === undefined ? Number.POSITIVE_INFINITY : deadlineAtMs - Date.now();
  const maxBuildMs = Math.min(deps.settings.applyLimits.maxBuildMs, leftMs - APPLY_END_MARGIN_MS);
  if (maxBuildMs < MIN_BUILD_MS) {
    warnings.push(`auto-apply of suggestion ${id} postponed: too little invocation time left`);
    return undefined;
  }
  type Served = { id?: string; sql: string; params?: unknown[] };
  const statements = (suggestion.payload.statements as Array<Partial<Served>>)
    .filter((s): s is Served => typeof s.sql === 'string')
    .map((s) => ({
      sql: s.sql,
      ...(s.params && s.params.length > 0 ? { params: s.params } : {}),
      // pg_stat_statements ids: the apply records their mean time before the build.
      ...(s.id && QUERY_ID.test(s.id) ? { queryId: s.id } : {}),
    }));
  try {
    return await applyIndex(
      { connect: () => db.pool().connect(), suggestions: deps.repository, logger: deps.logger },
      {
        ddl: String(suggestion.ddl),
        statements,
        limits: { ...deps.settings.applyLimits, maxBuildMs },
        suggestionId: id,
        sizeBytes: Number(suggestion.payload.sizeBytes) || undefined,
      },
    );
  } catch (err) {
    // A lock timeout or build limit is not the message's failure: the suggestion stays
    // 'proposed' with the attempt noted (applyIndex records it) and can be applied later.
    warnings.push(`auto-apply of suggestion ${id} failed: ${(err as Error).message}`);
    deps.logger.warn('auto-apply failed', { suggestionId: id, err });
    return undefined;
  }
};

/** One SQS record: its id and raw body. */
export interface QueueRecord {
  readonly messageId: string;
  readonly body: string;
}

export interface BatchResult {
  /** SQS partial batch response: the records to retry (and, after maxReceiveCount, dead-letter). */
  readonly batchItemFailures: Array<{ itemIdentifier: string }>;
  readonly results: Array<{ messageId: string; result?: OptimizeResult; error?: Error }>;
}

/** Least time left (ms) to start another record (or 1.2 × the slowest of this batch, if more). */
const MIN_RECORD_BUDGET_MS = 15_000;

/**
 * Handles an SQS batch one record at a time (each run plans many statements: no point in
 * running them side by side on one database). A record whose body is invalid, whose target is
 * unknown or whose run fails is reported in `batchItemFailures` and logged with the reason;
 * the others are deleted from the queue. With `deadlineAtMs`, a record is not started when
 * too little time is left (reported as a failure, so SQS delivers it again): a run cut off by
 * the Lambda timeout would fail the whole batch, the finished records included, and repeated
 * timeouts would send all of them to the DLQ.
 */
export const processSlowQueryBatch = async (
  deps: OptimizerDeps,
  records: readonly QueueRecord[],
  options: { deadlineAtMs?: number } = {},
): Promise<BatchResult> => {
  const results: BatchResult['results'] = [];
  const batchItemFailures: BatchResult['batchItemFailures'] = [];
  let slowestMs = 0;
  for (const record of records) {
    const leftMs =
      options.deadlineAtMs === undefined
        ? Number.POSITIVE_INFINITY
        : options.deadlineAtMs - Date.now();
    if (leftMs < Math.max(MIN_RECORD_BUDGET_MS, slowestMs * 1.2)) {
      const error = new OptimizerError(
        'NO_TIME_LEFT',
        `Not started: ${Math.max(0, Math.round(leftMs))} ms left in the invocation; SQS delivers the message again (raise the optimizer timeout if this repeats)`,
      );
      deps.logger.warn(`slow-query message ${record.messageId} postponed: ${error.message}`, {
        messageId: record.messageId,
      });
      results.push({ messageId: record.messageId, error });
      batchItemFailures.push({ itemIdentifier: record.messageId });
      continue;
    }
    const startedMs = Date.now();
    try {
      const message = parseSlowQueryMessage(record.body);
      const result = await optimizeSlowQuery(deps, message, options);
      deps.logger.info('slow query optimised', {
        messageId: record.messageId,
        target: result.target,
        queryId: result.queryId,
        suggestions: result.suggestions.length,
        created: result.suggestions.filter((s) => s.created).length,
        announced: result.announced,
      });
      results.push({ messageId: record.messageId, result });
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      deps.logger.error(`slow-query message ${record.messageId} failed: ${error.message}`, {
        messageId: record.messageId,
        err: error,
      });
      results.push({ messageId: record.messageId, error });
      batchItemFailures.push({ itemIdentifier: record.messageId });
      deps.metrics?.addMetric('OptimizeFailures', MetricUnit.Count, 1);
    }
    slowestMs = Math.max(slowestMs, Date.now() - startedMs);
  }
  return { batchItemFailures, results };
};
