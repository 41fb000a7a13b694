import { setTimeout as sleep } from 'node:timers/promises';
import type { AlertOutcome } from '#shared/alerts';
import { formatPercent } from '#shared/analysis';
import { type Config, loadConfig } from '#shared/config';
import {
  createOptimizerRuntime,
  type OptimizerRuntime,
  optimizeSlowQuery,
} from '#shared/optimizer';
import { createSqlAnalyzer, initSqlParser } from '#shared/sql';
import {
  type CollectMetricsResult,
  type CollectorRuntime,
  type CollectSlowQueriesResult,
  collectMetrics,
  collectSlowQueries,
  createCollectorRuntime,
  type DimensionedMetrics,
  type SlowQueryLimits,
} from '#shared/stats';
import { formatCount, formatSeconds } from './format.ts';

/** Local mode publishes no EMF: CloudWatch is not there, the terminal gets the verdicts. */
const noDimensionedMetrics: DimensionedMetrics & {
  addMetric: DimensionedMetrics['addMetric'];
} = Object.freeze({
  addDimensions: () => undefined,
  addMetric: () => undefined,
  publishStoredMetrics: () => undefined,
});

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

/** A DATABASE_URL on this machine almost never has TLS: default DB_SSL_MODE to disable there. */
const withLocalSslDefault = (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv => {
  if (env.DB_SSL_MODE || !env.DATABASE_URL) return env;
  try {
    return LOCAL_HOSTS.has(new URL(env.DATABASE_URL).hostname)
      ? { ...env, DB_SSL_MODE: 'disable' }
      : env;
  } catch {
    return env; // loadConfig reports the malformed URL
  }
};

const clock = (at: Date = new Date()): string => at.toISOString().slice(11, 19);

const oneLine = (sql: string, max = 90): string => {
  const flat = sql.split(/\s+/).join(' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};

/** Alert outcomes as terminal lines (suppressed ones are not news). */
export const formatAlertOutcomes = (outcomes: readonly AlertOutcome[]): string[] =>
  outcomes
    .filter((o) => o.event !== 'suppressed')
    .map((o) =>
      o.event === 'resolved'
        ? `${clock(o.at)}  RESOLVED ${o.target}/${o.kind}: ${o.summary}`
        : `${clock(o.at)}  ALERT ${o.event} ${o.severity} ${o.target}/${o.kind}: ${o.summary}${o.error ? ` (delivery failed: ${o.error.message})` : ''}`,
    );

/** One metrics run as terminal lines: health verdict per target, then alert changes. */
export const formatMetricsRun = (run: CollectMetricsResult, at = new Date()): string[] => {
  const lines: string[] = [];
  for (const t of run.targets) {
    if (t.status !== 'collected' || !t.health) {
      lines.push(
        `${clock(at)}  health ${t.target}: ${t.status.toUpperCase()} — ${t.error?.message ?? 'no reading'}`,
      );
    } else if (t.health.status === 'HEALTHY') {
      const hit = t.diff?.cacheHitRatio;
      lines.push(
        `${clock(at)}  health ${t.target}: HEALTHY${t.diff?.baseline ? ' (baseline reading; rates from the next run)' : hit !== null && hit !== undefined ? ` (cache hit ${formatPercent(hit)})` : ''}`,
      );
    } else {
      lines.push(
        `${clock(at)}  health ${t.target}: ${t.health.status}, bottleneck ${t.health.bottleneck}: ${t.health.recommendation}`,
      );
    }
    lines.push(...formatAlertOutcomes(t.alerts));
  }
  return lines;
};

/** One slow-query run as terminal lines: the top statements of each target. */
export const formatSlowQueriesRun = (
  run: CollectSlowQueriesResult,
  options: { at?: Date; top?: number; limits?: SlowQueryLimits } = {},
): string[] => {
  const at = options.at ?? new Date();
  const lines: string[] = [];
  for (const t of run.targets) {
    if (t.status === 'baseline') {
      lines.push(
        `${clock(at)}  slow queries ${t.target}: baseline stored; deltas from the next run`,
      );
      continue;
    }
    if (t.status !== 'collected') {
      lines.push(`${clock(at)}  slow queries ${t.target}: ${t.status} — ${t.error?.message ?? ''}`);
      continue;
    }
    const interval = formatSeconds((t.diff?.intervalSeconds ?? 0) * 1_000);
    const limits = options.limits;
    const below =
      t.slow.length === 0 && limits
        ? ` (none reached mean ≥ ${limits.minMeanMs} ms and ≥ ${limits.minCalls} calls: SLOW_QUERY_MIN_MEAN_MS, SLOW_QUERY_MIN_CALLS)`
        : '';
    lines.push(
      `${clock(at)}  slow queries ${t.target}: ${t.slow.length} in the last ${interval}${below}${t.diff?.reset ? ' (statistics were reset in between)' : ''}${t.sent > 0 ? `, ${t.sent} queued` : ''}`,
    );
    for (const m of t.messages.slice(0, options.top ?? 3)) {
      const kinds = m.findings.map((f) => f.kind);
      lines.push(
        `    ${`${m.meanExecTimeMs.toFixed(1)} ms`.padStart(10)} × ${formatCount(m.calls).padEnd(7)} ${oneLine(m.query)}${kinds.length > 0 ? `  [${kinds.join(', ')}]` : ''}`,
      );
    }
  }
  return lines;
};

export interface LocalCollectorsOptions {
  /** Aborting stops both loops after the run in progress. */
  signal: AbortSignal;
  print: (line: string) => void;
  /** The environment the handlers see; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Run each collector once and finish. */
  once?: boolean;
  /**
   * Hand every slow statement to the optimizer in-process (local mode's stand-in for the SQS
   * queue and the optimize Lambda) and print the new suggestions. Default true.
   */
  optimize?: boolean;
}

export interface LocalCollectors {
  /** Settles when both loops have stopped. */
  readonly done: Promise<void>;
  /** Targets that failed or were unreachable, summed over all runs (exit code of `--once`). */
  readonly failures: () => number;
  /** Closes the collectors' pools (after `done`). */
  shutdown(): Promise<void>;
}

const loop = async (
  intervalMs: number,
  signal: AbortSignal,
  once: boolean,
  run: () => Promise<void>,
): Promise<void> => {
  while (!signal.aborted) {
    const startedMs = performance.now();
    await run();
    if (once) return;
    const waitMs = intervalMs - (performance.now() - startedMs);
    try {
      if (waitMs > 0) await sleep(waitMs, undefined, { signal });
    } catch (err) {
      if (!signal.aborted) throw err;
    }
  }
};

/**
 * Local mode's scheduler: runs the collect-metrics and collect-slow-queries work every
 * COLLECT_METRICS_INTERVAL_MS / COLLECT_SLOW_QUERIES_INTERVAL_MS against the local targets
 * and prints health verdicts, alert changes and slow queries. The same shared/stats code the
 * Lambdas run; alerts go to the terminal unless ALERT_TOPIC_ARN is set.
 */
export const startLocalCollectors = async (
  options: LocalCollectorsOptions,
): Promise<LocalCollectors> => {
  const env = options.env ?? process.env;
  const config: Config = loadConfig(withLocalSslDefault(env));
  const { print, signal } = options;
  // Per-target failures are printed by formatMetricsRun / formatSlowQueriesRun already.
  const printedElsewhere = new Set(['collecting metrics failed', 'collecting slow queries failed']);
  const line = (kind: string, message: string, extra?: { err?: Error }): void => {
    if (printedElsewhere.has(message)) return;
    print(`collector ${kind}: ${message}${extra?.err ? ` (${extra.err.message})` : ''}`);
  };
  const logger = {
    info: () => undefined,
    warn: (message: string, extra?: { err?: Error }) => line('warning', message, extra),
    error: (message: string, extra?: { err?: Error }) => line('error', message, extra),
  };
  const runtime: CollectorRuntime = createCollectorRuntime(config, {
    logger,
    metrics: noDimensionedMetrics,
  });
  await initSqlParser();
  const sql = createSqlAnalyzer({ cacheEntries: config.SQL_PARSE_CACHE_ENTRIES });
  await runtime.ensureRepository();
  const once = Boolean(options.once);
  const slowLimits = runtime.metricsDeps().settings.slowQueries;
  print(
    once
      ? `Collectors: one run over ${runtime.targets.map((t) => t.name).join(', ')}`
      : `Collectors: health every ${formatSeconds(config.COLLECT_METRICS_INTERVAL_MS)}, slow queries every ${formatSeconds(config.COLLECT_SLOW_QUERIES_INTERVAL_MS)} over ${runtime.targets.map((t) => t.name).join(', ')}; alerts ${config.ALERT_TOPIC_ARN ? 'to SNS and here' : 'print here'}`,
  );
  const optimizer =
    options.optimize === false
      ? undefined
      : createOptimizerRuntime(config, {
          logger: { ...logger, debug: () => undefined },
          sleep: (ms) => sleep(ms).then(() => undefined),
        });
  await optimizer?.ensureRepository();
  // One collector run at a time: embedded PostgreSQL (PGlite) is a single backend, and two
  // runs interleaving their statements on it confuse its connection multiplexer.
  let serial: Promise<void> = Promise.resolve();
  let failures = 0;
  const guarded = (name: string, fn: () => Promise<void>) => () => {
    serial = serial.then(async () => {
      try {
        await fn();
      } catch (err) {
        print(`${clock()}  ${name} failed: ${(err as Error).message}`);
      }
    });
    return serial;
  };
  const metricsLoop = loop(
    config.COLLECT_METRICS_INTERVAL_MS,
    signal,
    once,
    guarded('metrics collector', async () => {
      const run = await collectMetrics(runtime.metricsDeps());
      failures += run.targets.filter((t) => t.status !== 'collected').length;
      for (const line of formatMetricsRun(run)) print(line);
    }),
  );
  const slowLoop = loop(
    config.COLLECT_SLOW_QUERIES_INTERVAL_MS,
    signal,
    once,
    guarded('slow-query collector', async () => {
      const run = await collectSlowQueries(runtime.slowQueryDeps(sql));
      failures += run.targets.filter((t) => t.error !== undefined).length;
      for (const line of formatSlowQueriesRun(run, { limits: slowLimits })) {
        print(line);
      }
      if (optimizer) await optimizeLocally(optimizer, run, print, signal);
    }),
  );
  const done = Promise.all([metricsLoop, slowLoop]).then(() => undefined);
  return {
    done,
    failures: () => failures,
    shutdown: async () => {
      await Promise.all([runtime.shutdown(), optimizer?.shutdown()]);
    },
  };
};

/**
 * Local mode's in-process queue: each slow statement of a run goes to the optimizer (the same
 * optimizeSlowQuery the optimize Lambda runs for an SQS record), one at a time, and the new
 * suggestions are printed. A failure is printed and the next statement still runs, as a failed
 * SQS record would not stop the others.
 */
const optimizeLocally = async (
  optimizer: OptimizerRuntime,
  run: CollectSlowQueriesResult,
  print: (line: string) => void,
  signal: AbortSignal,
): Promise<void> => {
  const warned = new Set<string>();
  for (const message of run.targets.flatMap((t) => t.messages)) {
    if (signal.aborted) return;
    print(`${clock()}  optimizer: analysing ${oneLine(message.query, 70)}`);
    try {
      const result = await optimizeSlowQuery(optimizer.deps, message);
      const created = result.suggestions.filter((s) => s.created);
      if (created.length === 0) {
        print(`    no new suggestions (${result.suggestions.length} known)`);
      }
      for (const s of created) print(`    NEW ${s.kind} #${s.id}: ${oneLine(s.key, 100)}`);
      // Workload-wide warnings repeat for every statement of the run: print each once.
      for (const w of result.warnings.filter((w) => !warned.has(w))) {
        warned.add(w);
        print(`    warning: ${w}`);
      }
    } catch (err) {
      print(`    optimizer failed: ${(err as Error).message}`);
    }
  }
};
