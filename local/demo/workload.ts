import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { LocalModeError } from '../errors.ts';
import type { DemoClient } from './seed.ts';

/**
 * Replays a templated workload (workload.json) against a database so that
 * `pg_stat_statements` has realistic numbers for the collectors and the advisor.
 */

const WorkloadQuerySchema = z.object({
  id: z.string().regex(/^[a-z][a-z0-9_]*$/, 'use lower_snake_case'),
  sql: z.string().min(1),
  /** Example parameter sets; each execution takes the next one. */
  params: z.array(z.array(z.unknown())).min(1),
  weight_per_hour: z.number().positive(),
  kind: z.enum(['read', 'write']),
});

export const WorkloadSchema = z
  .object({ queries: z.array(WorkloadQuerySchema).min(1) })
  .superRefine((w, ctx) => {
    const seen = new Set<string>();
    w.queries.forEach((q, index) => {
      if (seen.has(q.id)) {
        ctx.addIssue({
          code: 'custom',
          path: ['queries', index, 'id'],
          message: `duplicate id ${q.id}`,
        });
      }
      seen.add(q.id);
    });
  });

export type Workload = z.output<typeof WorkloadSchema>;
export type WorkloadQuery = Workload['queries'][number];

/** The demo workload shipped with local mode. */
export const DEMO_WORKLOAD_URL = new URL('./workload.json', import.meta.url);

/** Validates a parsed workload document; throws one error naming every problem. */
export const parseWorkload = (document: unknown): Workload => {
  const parsed = WorkloadSchema.safeParse(document);
  if (!parsed.success) {
    throw new LocalModeError(
      'WORKLOAD_INVALID',
      `The workload file is invalid:\n${z.prettifyError(parsed.error)}`,
    );
  }
  return parsed.data;
};

/** Reads and validates a workload file (the demo workload by default). */
export const readWorkloadFile = async (
  path: string | URL = DEMO_WORKLOAD_URL,
): Promise<Workload> => {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new LocalModeError('WORKLOAD_INVALID', `Cannot read workload file ${String(path)}`, {
      cause: err,
    });
  }
  try {
    return parseWorkload(JSON.parse(text));
  } catch (err) {
    if (err instanceof LocalModeError) throw err;
    throw new LocalModeError(
      'WORKLOAD_INVALID',
      `Workload file ${String(path)} is not valid JSON: ${(err as Error).message}`,
      { cause: err },
    );
  }
};

/** One planned execution. */
export interface WorkloadStep {
  query: WorkloadQuery;
  params: unknown[];
}

/**
 * The executions of one round: each query runs in proportion to its `weight_per_hour`
 * (at least once), the queries interleaved evenly as real traffic would be, and each
 * query cycling through its parameter sets across rounds. Pure and deterministic.
 */
export const planWorkloadRound = (
  workload: Workload,
  options: { round: number; executionsPerRound: number; includeWrites: boolean },
): WorkloadStep[] => {
  const queries = workload.queries.filter((q) => options.includeWrites || q.kind === 'read');
  const totalWeight = queries.reduce((sum, q) => sum + q.weight_per_hour, 0);
  const slots: { position: number; order: number; step: WorkloadStep }[] = [];
  queries.forEach((query, order) => {
    const repeats = Math.max(
      1,
      Math.round((query.weight_per_hour / totalWeight) * options.executionsPerRound),
    );
    for (let j = 0; j < repeats; j++) {
      const params = query.params[(options.round * repeats + j) % query.params.length] ?? [];
      slots.push({ position: (j + 0.5) / repeats, order, step: { query, params } });
    }
  });
  slots.sort((a, b) => a.position - b.position || a.order - b.order);
  return slots.map((s) => s.step);
};

export interface WorkloadQueryReport {
  id: string;
  kind: 'read' | 'write';
  calls: number;
  errors: number;
  totalMs: number;
  meanMs: number;
  maxMs: number;
  /** The last error this query raised, e.g. `{ sqlState: '23503', message }`. */
  lastError?: { sqlState: string | undefined; message: string };
}

export interface WorkloadReport {
  /** Rounds completed (fewer than asked when stopped by the signal). */
  rounds: number;
  executions: number;
  errors: number;
  durationMs: number;
  queries: WorkloadQueryReport[];
}

export interface WorkloadProgress {
  round: number;
  rounds: number;
  executions: number;
  errors: number;
  elapsedMs: number;
}

export interface RunWorkloadOptions {
  /** Default 1. */
  rounds?: number;
  /** Executions per round, split by weight; default 200. */
  executionsPerRound?: number;
  /** Also run the `write` queries; default true. */
  includeWrites?: boolean;
  /** Call `pg_stat_statements_reset()` first, so the statistics show only this run. */
  resetStats?: boolean;
  /** Called after each round. */
  onProgress?: (progress: WorkloadProgress) => void;
  /** Stops between executions (e.g. on Ctrl-C); the report covers what ran. */
  signal?: AbortSignal;
}

const RESET_STATS_SQL = '/* dbopt */ SELECT pg_stat_statements_reset()';

const sqlStateOf = (err: unknown): string | undefined => {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
};

/**
 * Replays `workload` on one connection, sequentially. A statement that fails with a
 * SQLSTATE is counted on its query and the run goes on; a broken connection ends the run.
 *
 * @example
 * const report = await runWorkload(client, await readWorkloadFile(), { rounds: 3 });
 */
export const runWorkload = async (
  client: DemoClient,
  workload: Workload,
  options: RunWorkloadOptions = {},
): Promise<WorkloadReport> => {
  const rounds = options.rounds ?? 1;
  const executionsPerRound = options.executionsPerRound ?? 200;
  const includeWrites = options.includeWrites ?? true;
  const startedAt = performance.now();
  const reports = new Map<string, WorkloadQueryReport>(
    workload.queries.map((q) => [
      q.id,
      { id: q.id, kind: q.kind, calls: 0, errors: 0, totalMs: 0, meanMs: 0, maxMs: 0 },
    ]),
  );
  let executions = 0;
  let errors = 0;
  let completedRounds = 0;

  if (options.resetStats) await client.query(RESET_STATS_SQL);

  run: for (let round = 0; round < rounds; round++) {
    for (const { query, params } of planWorkloadRound(workload, {
      round,
      executionsPerRound,
      includeWrites,
    })) {
      if (options.signal?.aborted) break run;
      const report = reports.get(query.id);
      if (!report) continue;
      const queryStartedAt = performance.now();
      try {
        await client.query(query.sql, params);
      } catch (err) {
        const sqlState = sqlStateOf(err);
        if (!sqlState) {
          throw new LocalModeError(
            'WORKLOAD_FAILED',
            `Workload stopped at ${query.id}: ${(err as Error).message}`,
            { cause: err },
          );
        }
        report.errors++;
        errors++;
        report.lastError = { sqlState, message: (err as Error).message };
      }
      const elapsedMs = performance.now() - queryStartedAt;
      report.calls++;
      report.totalMs += elapsedMs;
      report.maxMs = Math.max(report.maxMs, elapsedMs);
      executions++;
    }
    completedRounds = round + 1;
    options.onProgress?.({
      round: round + 1,
      rounds,
      executions,
      errors,
      elapsedMs: performance.now() - startedAt,
    });
  }

  const queries = [...reports.values()]
    .filter((r) => r.calls > 0)
    .map((r) => ({ ...r, meanMs: r.totalMs / r.calls }));
  return {
    rounds: completedRounds,
    executions,
    errors,
    durationMs: performance.now() - startedAt,
    queries,
  };
};
