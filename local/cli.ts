#!/usr/bin/env -S npx tsx
/**
 * The `dbopt` command line: local mode's terminal UI.
 *
 *   dbopt serve                    query API on :3000 (embedded PostgreSQL + demo unless DATABASE_URL)
 *   dbopt demo load [--scale 0.1]  create and fill the demo shop schema
 *   dbopt demo workload [--rounds 3]  replay the demo workload (feeds pg_stat_statements)
 *   dbopt shard plan --add s3 [--map map.json] [--json]  which slots a shard change moves where
 *   dbopt shard route KEY…         key → slot → shard under the current shard map
 *   dbopt advise --database-url URL [--workload FILE] [--format sql|json|text]  index proposals
 *   dbopt shard move --to next.json --tables tables.json [--map map.json] [--dry-run]  move rows, switch
 *   dbopt migrate [--database-url URL]  create or upgrade the dbopt repository schema
 *   dbopt apply --database-url URL (--suggestion ID | --ddl "CREATE INDEX …") [--yes]  build + verify
 *   dbopt hygiene --database-url URL [--format text|json|sql]  indexes to drop
 *   dbopt rewrites --database-url URL [--sql SQL]…  measured SQL rewrites
 *   dbopt report [--database-url URL] [--json]  one-shot health report (slow queries, indexes, bloat)
 *   dbopt collect [--once]        run the collectors on their timers, health and alerts to the terminal
 *
 * Run with `npm start` / `npm run dbopt -- <command>` or `npx tsx local/cli.ts <command>`.
 */
import { Command, InvalidArgumentError } from 'commander';
import pg from 'pg';
import { loadConfig } from '#shared/config';
import { isAppError } from '#shared/errors';
import {
  type AdviseCommandOptions,
  type AdviseFormat,
  runAdviseCommand,
} from './advise-command.ts';
import {
  type ApplyCommandOptions,
  type HygieneCommandOptions,
  runApplyCommand,
  runHygieneCommand,
  terminalConfirm,
} from './apply-command.ts';
import { startLocalCollectors } from './collect-loop.ts';
import { type DemoClient, findExistingDemo, loadDemo } from './demo/seed.ts';
import { readWorkloadFile, runWorkload, type WorkloadReport } from './demo/workload.ts';
import { type EmbeddedPostgres, startEmbeddedPostgres } from './embedded-postgres.ts';
import { LocalModeError } from './errors.ts';
import { formatCount, formatSeconds, printDemoStep, redactUrl } from './format.ts';
import { type MigrateCommandOptions, runMigrateCommand } from './migrate-command.ts';
import { type ReportCommandOptions, runReportCommand } from './report-command.ts';
import { type RewritesCommandOptions, runRewritesCommand } from './rewrites-command.ts';
import { startLocalServe } from './serve.ts';
import {
  processShardIo,
  runShardPlan,
  runShardRoute,
  type ShardPlanOptions,
  type ShardRouteOptions,
} from './shard-commands.ts';
import { processMoveIo, runShardMoveCommand, type ShardMoveOptions } from './shard-move.ts';

const print = (line = ''): void => console.log(line);

const parseInteger =
  (min: number, max: number) =>
  (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    }
    return n;
  };

/** Repeatable option: `--add s3 --add s4` → ['s3', 's4']. */
const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

const parseScale = (value: string): number => {
  const n = Number(value);
  if (!(n > 0 && n <= 100)) throw new InvalidArgumentError('expected a number in (0, 100]');
  return n;
};

/**
 * Ends the process after `cleanup` on the first SIGINT/SIGTERM. A second signal, sent at
 * least a second later, exits at once; closer repeats are the same Ctrl-C relayed twice
 * (npm → tsx → node), not impatience.
 */
const onShutdownSignal = (cleanup: () => Promise<void>): void => {
  let firstSignalAtMs: number | undefined;
  const handle = (signal: NodeJS.Signals) => {
    if (firstSignalAtMs !== undefined) {
      if (Date.now() - firstSignalAtMs < 1_000) return;
      print(`\n${signal} again: exiting without cleanup`);
      process.exit(1);
    }
    firstSignalAtMs = Date.now();
    print(`\n${signal}: shutting down…`);
    cleanup().then(
      () => {
        print('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        console.error(`error during shutdown: ${(err as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handle);
  process.on('SIGTERM', handle);
};

/**
 * A database for the demo commands: DATABASE_URL when set, otherwise a temporary embedded
 * PostgreSQL (kept in DBOPT_DATA_DIR / --data-dir when given).
 */
const openDemoDatabase = async (
  dataDirFlag: string | undefined,
): Promise<{ url: string; embedded: EmbeddedPostgres | undefined }> => {
  const external = process.env.DATABASE_URL;
  if (external) {
    // Validates DATABASE_URL like the handlers would.
    const config = loadConfig();
    print(`Database: ${redactUrl(config.DATABASE_URL ?? external)}`);
    return { url: external, embedded: undefined };
  }
  const dataDir =
    dataDirFlag ??
    loadConfig({ ...process.env, DATABASE_URL: 'postgres://x@localhost/x' }).DBOPT_DATA_DIR;
  print(
    dataDir
      ? `No DATABASE_URL: using embedded PostgreSQL with its data in ${dataDir}`
      : 'No DATABASE_URL: using a temporary in-memory embedded PostgreSQL (set DBOPT_DATA_DIR or --data-dir to keep it)',
  );
  const embedded = await startEmbeddedPostgres(dataDir ? { dataDir } : {});
  print(
    `  PostgreSQL ${embedded.serverVersion} (PGlite) ready in ${formatSeconds(embedded.startMs)}`,
  );
  return { url: embedded.url, embedded };
};

const withClient = async <T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> => {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
};

const printWorkloadReport = (report: WorkloadReport): void => {
  print();
  print(
    `${formatCount(report.executions)} statements in ${report.rounds} round(s), ${report.errors} errors, ${formatSeconds(report.durationMs)}`,
  );
  print(
    `  ${'query'.padEnd(28)} ${'calls'.padStart(6)} ${'errors'.padStart(6)} ${'mean'.padStart(9)}`,
  );
  for (const q of [...report.queries].sort((a, b) => b.totalMs - a.totalMs)) {
    print(
      `  ${q.id.padEnd(28)} ${String(q.calls).padStart(6)} ${String(q.errors).padStart(6)} ${`${q.meanMs.toFixed(1)} ms`.padStart(9)}${q.lastError ? `  last error ${q.lastError.sqlState}: ${q.lastError.message}` : ''}`,
    );
  }
};

// The marker sits after SELECT: PostgreSQL 18 (PGlite) drops leading comments from
// pg_stat_statements.query, so a /* dbopt */ prefix would not survive there.
const TOP_STATEMENTS_SQL = `
SELECT /* dbopt */ calls, round(mean_exec_time::numeric, 2) AS mean_ms, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query
FROM pg_stat_statements
WHERE query NOT LIKE '%/* dbopt */%'
ORDER BY total_exec_time DESC
LIMIT 8`;

/** Prints the top statements, or why pg_stat_statements cannot be read. */
const printTopStatements = async (client: DemoClient): Promise<void> => {
  try {
    const { rows } = await client.query<{ calls: string; mean_ms: string; query: string }>(
      TOP_STATEMENTS_SQL,
    );
    print();
    print('pg_stat_statements, top statements by total time:');
    for (const r of rows)
      print(`  ${r.calls.padStart(6)} calls ${`${r.mean_ms} ms`.padStart(11)}  ${r.query}`);
  } catch (err) {
    print();
    print(
      `pg_stat_statements is not readable here (${(err as Error).message}); add it to shared_preload_libraries and run CREATE EXTENSION pg_stat_statements`,
    );
  }
};

const program = new Command()
  .name('dbopt')
  .description('dbopt local mode: the query API, embedded PostgreSQL and the demo shop')
  .showHelpAfterError();

program
  .command('serve')
  .description(
    'serve the query API like API Gateway does; without DATABASE_URL, on embedded PostgreSQL with the demo loaded',
  )
  .option('-p, --port <port>', 'HTTP port (default: PORT or 3000)', parseInteger(0, 65_535))
  .option('--host <host>', 'interface to bind', '127.0.0.1')
  .option(
    '--pg-port <port>',
    'embedded PostgreSQL port (0: a free one)',
    parseInteger(0, 65_535),
    0,
  )
  .option(
    '--data-dir <dir>',
    'keep embedded PostgreSQL data here (default: DBOPT_DATA_DIR, else memory)',
  )
  .option('--scale <factor>', 'demo size factor', parseScale, 1)
  .option('--demo', 'also load the demo into DATABASE_URL (embedded: always)')
  .option('--no-demo', 'do not load the demo')
  .option(
    '--workload <rounds>',
    'replay the demo workload N rounds after start',
    parseInteger(0, 1_000),
    0,
  )
  .option('-q, --quiet', 'no access log, handler logs from WARN up, no EMF metric lines')
  .action(
    async (opts: {
      port?: number;
      host: string;
      pgPort: number;
      dataDir?: string;
      scale: number;
      demo?: boolean;
      workload: number;
      quiet?: boolean;
    }) => {
      const serve = await startLocalServe({
        ...(opts.port !== undefined ? { port: opts.port } : {}),
        host: opts.host,
        pgPort: opts.pgPort,
        ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
        scale: opts.scale,
        demo: opts.demo === false ? false : opts.demo === true ? true : 'auto',
        workloadRounds: opts.workload,
        accessLog: !opts.quiet,
        quiet: Boolean(opts.quiet),
        print,
      });
      onShutdownSignal(serve.stop);
    },
  );

const demo = program.command('demo').description('the demo shop schema and workload');

demo
  .command('load')
  .description(
    'create the demo schema and rows in DATABASE_URL (or a temporary embedded PostgreSQL)',
  )
  .option('--scale <factor>', 'size factor (1 = 20k customers, 100k orders)', parseScale, 1)
  .option('--force', 'drop the demo tables first and load again')
  .option('--data-dir <dir>', 'embedded PostgreSQL data directory')
  .action(async (opts: { scale: number; force?: boolean; dataDir?: string }) => {
    const { url, embedded } = await openDemoDatabase(opts.dataDir);
    onShutdownSignal(async () => embedded?.stop());
    try {
      print('Loading demo data…');
      const result = await loadDemo(url, {
        scale: opts.scale,
        resetStatementStats: embedded !== undefined,
        force: Boolean(opts.force),
        onProgress: (step) => printDemoStep(print, step),
      });
      const counts = Object.entries(result.counts)
        .map(([table, n]) => `${formatCount(n)} ${table}`)
        .join(', ');
      print(
        result.status === 'loaded'
          ? `  done in ${formatSeconds(result.durationMs)}: ${counts}`
          : `  already loaded (version ${result.version}, scale ${result.scale}): ${counts}; use --force to reload`,
      );
    } finally {
      await embedded?.stop();
    }
  });

demo
  .command('workload')
  .description(
    'replay local/demo/workload.json (into embedded PostgreSQL the demo is loaded first)',
  )
  .option('-r, --rounds <n>', 'rounds to run', parseInteger(1, 10_000), 3)
  .option(
    '--per-round <n>',
    'statements per round, split by weight',
    parseInteger(1, 1_000_000),
    200,
  )
  .option('--file <path>', 'workload file (default: the demo workload)')
  .option('--read-only', 'skip the write queries')
  .option('--reset-stats', 'pg_stat_statements_reset() before the run')
  .option('--scale <factor>', 'demo size factor (embedded PostgreSQL only)', parseScale, 1)
  .option('--data-dir <dir>', 'embedded PostgreSQL data directory')
  .action(
    async (opts: {
      rounds: number;
      perRound: number;
      file?: string;
      readOnly?: boolean;
      resetStats?: boolean;
      scale: number;
      dataDir?: string;
    }) => {
      const workload = await readWorkloadFile(opts.file);
      const { url, embedded } = await openDemoDatabase(opts.dataDir);
      const abort = new AbortController();
      onShutdownSignal(async () => {
        abort.abort();
        await embedded?.stop();
      });
      try {
        await withClient(url, async (client) => {
          if (!opts.file && !embedded && !(await findExistingDemo(client))) {
            throw new LocalModeError(
              'DEMO_MISSING',
              'The demo schema is not in this database; run `dbopt demo load` first (or pass --file with your own workload)',
            );
          }
          if (!opts.file && embedded) {
            const loaded = await loadDemo(client, {
              scale: opts.scale,
              resetStatementStats: true,
              onProgress: (step) => printDemoStep(print, step),
            });
            if (loaded.status === 'loaded')
              print(`  demo loaded in ${formatSeconds(loaded.durationMs)}`);
          }
          print(
            `Replaying ${workload.queries.length} queries, ${opts.rounds} round(s) of ${opts.perRound}…`,
          );
          const report = await runWorkload(client, workload, {
            rounds: opts.rounds,
            executionsPerRound: opts.perRound,
            includeWrites: !opts.readOnly,
            resetStats: Boolean(opts.resetStats),
            signal: abort.signal,
            onProgress: (p) =>
              print(
                `  round ${p.round}/${p.rounds}: ${formatCount(p.executions)} statements, ${p.errors} errors, ${formatSeconds(p.elapsedMs)}`,
              ),
          });
          printWorkloadReport(report);
          await printTopStatements(client);
        });
      } finally {
        await embedded?.stop();
      }
    },
  );

const shard = program
  .command('shard')
  .description('shard map tools (map from --map FILE or SHARD_MAP)');

shard
  .command('plan')
  .description(
    'plan adding or removing shards: which slots move where, the fraction of keys moved, the next map (no data is touched)',
  )
  .option('--add <name>', 'add a shard (repeatable)', collect)
  .option('--remove <name>', 'remove a shard (repeatable)', collect)
  .option('--map <file>', 'shard map JSON file (default: the SHARD_MAP variable)')
  .option('--json', 'print the plan as JSON, with `next` ready to store as SHARD_MAP')
  .action((opts: ShardPlanOptions) => {
    process.exitCode = runShardPlan(opts, processShardIo());
  });

shard
  .command('move')
  .description(
    'copy the rows of every slot that changes owner (batched, resumable), verify counts and checksums per slot, switch the map (version + 1), delete moved rows from the old shards',
  )
  .requiredOption(
    '--to <file>',
    'the new shard map (version = current + 1), e.g. from `shard plan --json`',
  )
  .requiredOption(
    '--tables <file>',
    'JSON: [{"schema"?, "name", "shardKey", "primaryKey": ["id"]}] for every sharded table',
  )
  .option(
    '--map <file>',
    'current shard map JSON file, rewritten at the switch (default: SHARD_MAP)',
  )
  .option('--urls <file>', 'JSON object shard name → postgres:// URL (default: SHARD_URLS)')
  .option('--batch-size <n>', 'rows per batch', parseInteger(1, 100_000), 1_000)
  .option('--state <file>', 'resumable progress (default: <to>.state.json)')
  .option(
    '--stop-after <phase>',
    'stop after copy or verify (a run always stops after the switch: deploy SHARD_MAP, then run again to clean up)',
  )
  .option('--dry-run', 'count the rows that would move; write nothing')
  .option('--json', 'print the final report as JSON')
  .action(async (opts: ShardMoveOptions & { json?: boolean }) => {
    process.exitCode = await runShardMoveCommand(opts, processMoveIo(processShardIo()));
  });

shard
  .command('route')
  .description('show the slot and shard of each key')
  .argument('<keys...>', 'shard keys (numbers route like their decimal text)')
  .option('--map <file>', 'shard map JSON file (default: the SHARD_MAP variable)')
  .option('--json', 'print the routes as JSON')
  .action((keys: string[], opts: ShardRouteOptions) => {
    process.exitCode = runShardRoute(keys, opts, processShardIo());
  });

program
  .command('migrate')
  .description('create or upgrade the dbopt schema (snapshots, history, alerts, suggestions)')
  .option(
    '--database-url <url>',
    'repository database (default: REPOSITORY_DATABASE_URL, then DATABASE_URL)',
  )
  .action(async (opts: MigrateCommandOptions) => {
    await runMigrateCommand(opts, process.env, print);
  });

program
  .command('advise')
  .description(
    'propose indexes proven by what-if planning (HypoPG, else rolled-back builds) for a workload file or pg_stat_statements',
  )
  .option(
    '--database-url <url>',
    'database to advise on, the DB endpoint, not a proxy (default: ADVISOR_DATABASE_URL, then DATABASE_URL)',
  )
  .option(
    '--workload <file>',
    'workload JSON ({ templates: [{ id, sql, params, weight_per_hour, kind }] }); default: pg_stat_statements',
  )
  .option(
    '--format <format>',
    'sql (one CREATE INDEX per line, nothing else), json or text',
    (value: string): AdviseFormat => {
      if (value !== 'sql' && value !== 'json' && value !== 'text') {
        throw new InvalidArgumentError('expected sql, json or text');
      }
      return value;
    },
    'text',
  )
  .option(
    '--max-indexes <n>',
    'most indexes to propose (default: ADVISOR_MAX_INDEXES)',
    parseInteger(1, 1_000),
  )
  .action(async (opts: AdviseCommandOptions) => {
    process.exitCode = await runAdviseCommand(opts, process.env, {
      out: print,
      err: (line) => console.error(line),
    });
  });

program
  .command('report')
  .description(
    'one-shot health report: verdict, slow queries (pg_stat_statements), unused indexes, cache hit ratios, dead tuples',
  )
  .option('--database-url <url>', 'database to report on (default: DATABASE_URL)')
  .option('--json', 'print the report as JSON')
  .option('--top <n>', 'slow statements to list', parseInteger(1, 100), 10)
  .option('--no-explain', 'do not EXPLAIN the listed statements')
  .action(async (opts: ReportCommandOptions & { explain?: boolean }) => {
    process.exitCode = await runReportCommand(
      { ...opts, noExplain: opts.explain === false },
      process.env,
      {
        out: print,
        err: (line) => console.error(line),
      },
    );
  });

program
  .command('collect')
  .description(
    'run the metrics and slow-query collectors against DATABASE_URL (and SHARD_URLS) on their timers, printing health and alerts',
  )
  .option('--once', 'run each collector once and exit')
  .action(async (opts: { once?: boolean }) => {
    const abort = new AbortController();
    const collectors = await startLocalCollectors({
      signal: abort.signal,
      print,
      once: Boolean(opts.once),
    });
    onShutdownSignal(async () => {
      abort.abort();
      await collectors.done;
      await collectors.shutdown();
    });
    await collectors.done;
    await collectors.shutdown();
    if (opts.once && collectors.failures() > 0) process.exitCode = 1;
  });

program
  .command('apply')
  .description(
    'build one index CONCURRENTLY (lock_timeout, size and time limits), keep it only if the statements it serves use it and none gets slower; exit 3 when rejected',
  )
  .option(
    '--database-url <url>',
    'the DB endpoint (default: ADVISOR_DATABASE_URL, then DATABASE_URL)',
  )
  .option(
    '--suggestion <id>',
    'a stored create_index suggestion (outcome recorded)',
    parseInteger(1, 2 ** 31 - 1),
  )
  .option('--ddl <sql>', 'a CREATE INDEX statement (verified against pg_stat_statements)')
  .option('--yes', 'build without asking')
  .action(async (opts: ApplyCommandOptions) => {
    process.exitCode = await runApplyCommand(opts, process.env, {
      out: print,
      err: (line) => console.error(line),
      confirm: terminalConfirm(),
    });
  });

program
  .command('rewrites')
  .description(
    'plan-changing SQL rewrites (NOT IN, OR across tables, deep OFFSET, casts, literal types, count > 0, OR lists), measured with EXPLAIN',
  )
  .option(
    '--database-url <url>',
    'database to plan on (default: ADVISOR_DATABASE_URL, then DATABASE_URL)',
  )
  .option(
    '--sql <statement>',
    'a statement to examine (repeatable; default: pg_stat_statements)',
    collect,
  )
  .option('--format <format>', 'text or json', 'text')
  .action(async (opts: RewritesCommandOptions) => {
    process.exitCode = await runRewritesCommand(opts, process.env, {
      out: print,
      err: (line) => console.error(line),
    });
  });

program
  .command('hygiene')
  .description(
    'invalid, duplicate, prefix-redundant and unused indexes, each with DROP INDEX CONCURRENTLY',
  )
  .option(
    '--database-url <url>',
    'database to inspect (default: ADVISOR_DATABASE_URL, then DATABASE_URL)',
  )
  .option(
    '--format <format>',
    'text, json, or sql (one DROP INDEX CONCURRENTLY per line, nothing else)',
    (value: string) => {
      if (value !== 'sql' && value !== 'json' && value !== 'text') {
        throw new InvalidArgumentError('expected text, json or sql');
      }
      return value;
    },
    'text',
  )
  .action(async (opts: HygieneCommandOptions) => {
    process.exitCode = await runHygieneCommand(opts, process.env, {
      out: print,
      err: (line) => console.error(line),
    });
  });

try {
  await program.parseAsync();
} catch (err) {
  // Expected failures (port taken, bad config, demo conflict) get one clear line, no stack.
  if (isAppError(err)) {
    console.error(`dbopt: ${err.message}`);
  } else {
    console.error('dbopt: unexpected failure');
    console.error(err);
  }
  process.exit(1);
}
