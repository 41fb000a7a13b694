/**
 * `dbopt shard plan` and `dbopt shard route`: read a shard map (a `--map` JSON file or the
 * `SHARD_MAP` variable, validated exactly as the handlers validate it, by `parseShardMap`),
 * then plan a rebalance (`planRebalance`, pure: no data is touched) or show where keys live.
 *
 * Each command is a function of its options and an {@link ShardIo} (output lines, the
 * environment, a file reader) that returns the exit code, so tests run it without a process.
 * Expected failures (no map, bad map, unknown shard) print one `dbopt: …` line on stderr and
 * return 1; anything else is rethrown.
 */
import { readFileSync } from 'node:fs';
import { CodedError, isAppError } from '#shared/errors';
import {
  createShardRouter,
  formatShardMap,
  parseShardMap,
  planRebalance,
  type RebalancePlan,
  RebalancePlanError,
  type ShardMap,
  ShardMapError,
  type ShardMapIssue,
} from '#shared/sharding';
import { formatCount } from './format.ts';

/** Where a shard command reads its input and writes its output. */
export interface ShardIo {
  /** One line of standard output. */
  out(line: string): void;
  /** One line of standard error. */
  err(line: string): void;
  /** The environment (only `SHARD_MAP` is read; empty counts as unset, as in loadConfig). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Reads a text file (`--map`). */
  readFile(path: string): string;
}

/** The process's own streams, environment and file system. */
export const processShardIo = (): ShardIo => ({
  out: (line) => console.log(line),
  err: (line) => console.error(line),
  env: process.env,
  readFile: (path) => readFileSync(path, 'utf8'),
});

type ShardCommandErrorCode = 'SHARD_MAP_MISSING' | 'SHARD_MAP_UNREADABLE' | 'SHARD_MAP_INVALID';

/** A shard command cannot run; the message is one line that names the problem. */
export class ShardCommandError extends CodedError<ShardCommandErrorCode | 'REBALANCE_INVALID'> {}

/** Error text on one line: JSON.parse messages may quote a multi-line snippet of the input. */
const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, ' ').trim();

const describeIssues = (issues: readonly ShardMapIssue[]): string =>
  issues.map((issue) => `${issue.field}: ${oneLine(issue.message)}`).join('; ');

export interface ShardMapSourceOptions {
  /** A JSON file holding the shard map; wins over SHARD_MAP. */
  map?: string;
}

/** The validated shard map and where it came from (for messages). */
export interface LoadedShardMap {
  readonly map: ShardMap;
  readonly source: string;
}

/**
 * Reads the shard map from `--map FILE` or the `SHARD_MAP` variable. Throws
 * {@link ShardCommandError} naming the source and every bad field.
 */
export const loadShardMap = (options: ShardMapSourceOptions, io: ShardIo): LoadedShardMap => {
  let json: string;
  let source: string;
  if (options.map !== undefined) {
    source = options.map;
    try {
      json = io.readFile(options.map);
    } catch (err) {
      throw new ShardCommandError(
        'SHARD_MAP_UNREADABLE',
        `cannot read the shard map file ${options.map}: ${oneLine((err as Error).message)}`,
        { cause: err },
      );
    }
  } else {
    const fromEnv = io.env.SHARD_MAP;
    if (fromEnv === undefined || fromEnv === '') {
      throw new ShardCommandError(
        'SHARD_MAP_MISSING',
        'no shard map: pass --map FILE (shard map JSON) or set SHARD_MAP',
      );
    }
    source = 'SHARD_MAP';
    json = fromEnv;
  }
  try {
    return { map: parseShardMap(json), source };
  } catch (err) {
    if (!(err instanceof ShardMapError)) throw err;
    throw new ShardCommandError(
      'SHARD_MAP_INVALID',
      `invalid shard map in ${source}: ${describeIssues(err.issues)}`,
      { cause: err, details: { fields: err.details.fields } },
    );
  }
};

/** Runs a command body; expected failures become one `dbopt: …` line on stderr and exit code 1. */
const runCommand = (io: ShardIo, body: () => void): number => {
  try {
    body();
    return 0;
  } catch (err) {
    if (!isAppError(err)) throw err;
    io.err(`dbopt: ${oneLine(err.message)}`);
    return 1;
  }
};

// ─── shard plan ────────────────────────────────────────────────────────────────────────────

export interface ShardPlanOptions extends ShardMapSourceOptions {
  add?: readonly string[];
  remove?: readonly string[];
  json?: boolean;
}

/** Slots that move between one pair of shards, as compact inclusive ranges. */
export interface MoveGroup {
  readonly from: string;
  readonly to: string;
  readonly slots: number;
  /** slots / slotCount: the fraction of all keys this group moves. */
  readonly fraction: number;
  /** Inclusive `[first, last]` slot ranges, ascending. */
  readonly ranges: readonly (readonly [number, number])[];
}

/** What `dbopt shard plan --json` prints. */
export interface ShardPlanReport {
  readonly source: string;
  readonly currentVersion: number;
  readonly nextVersion: number;
  readonly slotCount: number;
  readonly change: { readonly add: readonly string[]; readonly remove: readonly string[] };
  readonly shards: readonly {
    readonly name: string;
    readonly before: number;
    readonly after: number;
    readonly status: 'kept' | 'added' | 'removed';
  }[];
  readonly movedSlots: number;
  /** Fraction of keys that change shard (moved slots / slotCount). */
  readonly movedFraction: number;
  /**
   * The least any plan could move to reach the target shares (weight / total weight):
   * half the L1 distance between the current and target shares, e.g. 1/(n+1) for adding one
   * shard to n equal ones and 1/n for removing one of them.
   */
  readonly idealFraction: number;
  readonly movedVsIdeal: number;
  readonly moves: readonly MoveGroup[];
  /** The map to store as the new SHARD_MAP once the moving slots' rows are copied. */
  readonly next: ShardMap;
}

/** Sorted slot numbers → inclusive `[first, last]` runs. */
export const compactSlots = (slots: readonly number[]): [number, number][] => {
  const ranges: [number, number][] = [];
  for (const slot of slots) {
    const last = ranges.at(-1);
    if (last !== undefined && slot === last[1] + 1) last[1] = slot;
    else ranges.push([slot, slot]);
  }
  return ranges;
};

const slotCounts = (map: ShardMap): Map<string, number> => {
  const router = createShardRouter(map);
  return new Map(router.shards.map((name) => [name, router.slotsOf(name).length]));
};

const groupMoves = (plan: RebalancePlan, slotCount: number): MoveGroup[] => {
  const groups = new Map<string, { from: string; to: string; slots: number[] }>();
  for (const move of plan.moves) {
    const key = `${move.from}\u0000${move.to}`;
    let group = groups.get(key);
    if (group === undefined) {
      group = { from: move.from, to: move.to, slots: [] };
      groups.set(key, group);
    }
    group.slots.push(move.slot);
  }
  return [...groups.values()].map((group) => ({
    from: group.from,
    to: group.to,
    slots: group.slots.length,
    fraction: group.slots.length / slotCount,
    ranges: compactSlots(group.slots),
  }));
};

/** The minimum fraction of keys any plan must move to reach the weighted target shares. */
const idealMovedFraction = (current: ShardMap, next: ShardMap, before: Map<string, number>) => {
  const totalWeight = next.shards.reduce((sum, shard) => sum + shard.weight, 0);
  const target = new Map(next.shards.map((shard) => [shard.name, shard.weight / totalWeight]));
  const names = new Set([...before.keys(), ...target.keys()]);
  let distance = 0;
  for (const name of names) {
    distance += Math.abs((before.get(name) ?? 0) / current.slotCount - (target.get(name) ?? 0));
  }
  return distance / 2;
};

const CHANGE_FLAG = /^change\.(add|remove)(?:\[(\d+)\])?$/;

/** `change.add[1]` → `--add NAME`, so the message names what the user typed. */
const describeChangeIssues = (issues: readonly ShardMapIssue[], change: ShardPlanOptions) =>
  issues
    .map((issue) => {
      if (issue.field === 'change') return 'name a shard with --add NAME or --remove NAME';
      const match = CHANGE_FLAG.exec(issue.field);
      if (match === null) return `${issue.field}: ${oneLine(issue.message)}`;
      const flag = match[1] as 'add' | 'remove';
      const name = match[2] === undefined ? '' : ` ${change[flag]?.[Number(match[2])] ?? ''}`;
      return `--${flag}${name}: ${oneLine(issue.message)}`;
    })
    .join('; ');

const NEXT_SHARD_NAME = /^shards\[(\d+)\]\.name$/;

/**
 * planRebalance validates the next map like any other; with a valid current map, a bad
 * `shards[i].name` there is an added name (added shards follow the kept ones).
 */
const describeNextMapIssues = (
  issues: readonly ShardMapIssue[],
  map: ShardMap,
  change: { add: readonly string[]; remove: readonly string[] },
) => {
  const kept = map.shards.filter((shard) => !change.remove.includes(shard.name)).length;
  return issues
    .map((issue) => {
      const index = Number(NEXT_SHARD_NAME.exec(issue.field)?.[1] ?? Number.NaN) - kept;
      const name = change.add[index];
      return name === undefined
        ? `next map ${issue.field}: ${oneLine(issue.message)}`
        : `--add ${JSON.stringify(name)}: not a valid shard name; it ${oneLine(issue.message)}`;
    })
    .join('; ');
};

/** Builds the plan report (pure): what `shard plan` prints, as data. */
export const buildPlanReport = (loaded: LoadedShardMap, options: ShardPlanOptions) => {
  const { map, source } = loaded;
  const change = { add: [...(options.add ?? [])], remove: [...(options.remove ?? [])] };
  let plan: RebalancePlan;
  try {
    plan = planRebalance(map, change);
  } catch (err) {
    if (!(err instanceof RebalancePlanError || err instanceof ShardMapError)) throw err;
    const problem =
      err instanceof RebalancePlanError
        ? describeChangeIssues(err.issues, options)
        : describeNextMapIssues(err.issues, map, change);
    throw new ShardCommandError(
      'REBALANCE_INVALID',
      `cannot plan the change to ${source} (version ${map.version}): ${problem}`,
      { cause: err, details: { fields: err.details.fields } },
    );
  }
  const before = slotCounts(map);
  const after = slotCounts(plan.next);
  const removed = new Set(change.remove);
  const shards = [
    ...map.shards.map((shard) => ({
      name: shard.name,
      before: before.get(shard.name) ?? 0,
      after: after.get(shard.name) ?? 0,
      status: removed.has(shard.name) ? ('removed' as const) : ('kept' as const),
    })),
    ...change.add.map((name) => ({
      name,
      before: 0,
      after: after.get(name) ?? 0,
      status: 'added' as const,
    })),
  ];
  const idealFraction = idealMovedFraction(map, plan.next, before);
  return {
    source,
    currentVersion: map.version,
    nextVersion: plan.nextVersion,
    slotCount: map.slotCount,
    change,
    shards,
    movedSlots: plan.moves.length,
    movedFraction: plan.movedFraction,
    idealFraction,
    movedVsIdeal: idealFraction === 0 ? 1 : plan.movedFraction / idealFraction,
    moves: groupMoves(plan, map.slotCount),
    next: plan.next,
  } satisfies ShardPlanReport;
};

const percent = (fraction: number): string => `${(fraction * 100).toFixed(1)} %`;

/** At most `limit` ranges, then how many more: "0-1365, 5461-6826 (+3 more ranges)". */
export const formatRanges = (ranges: readonly (readonly [number, number])[], limit = 6) => {
  const shown = ranges
    .slice(0, limit)
    .map(([first, last]) => (first === last ? String(first) : `${first}-${last}`))
    .join(', ');
  const more = ranges.length - limit;
  return more > 0 ? `${shown} (+${more} more range${more === 1 ? '' : 's'})` : shown;
};

/** "1/4" for an ideal that is (within one slot of) the reciprocal of a whole number. */
const asUnitFraction = (fraction: number, slotCount: number): string | undefined => {
  if (!(fraction > 0)) return undefined;
  const denominator = Math.round(1 / fraction);
  const error = Math.abs(fraction - 1 / denominator);
  if (error < 1e-12) return `1/${denominator} = `;
  return error <= 1 / slotCount ? `≈ 1/${denominator}, ` : undefined;
};

/** Above this, a printed SHARD_MAP leaves little of the 4 KB Lambda environment for the rest. */
const LAMBDA_ENV_WARN_BYTES = 3_000;

/** The human summary of a plan, one line per entry. */
export const formatPlanReport = (report: ShardPlanReport): string[] => {
  const lines: string[] = [];
  const changes = [
    ...report.change.add.map((name) => `add ${name}`),
    ...report.change.remove.map((name) => `remove ${name}`),
  ].join(', ');
  lines.push(
    `Shard map ${report.source}: version ${report.currentVersion} → ${report.nextVersion} (${changes}), ${formatCount(report.slotCount)} slots`,
  );
  lines.push('');
  const width = Math.max(5, ...report.shards.map((shard) => shard.name.length));
  lines.push(`  ${'shard'.padEnd(width)}  ${'slots before'.padStart(12)} → after`);
  for (const shard of report.shards) {
    const delta = shard.after - shard.before;
    const note =
      shard.status === 'added'
        ? '  new'
        : shard.status === 'removed'
          ? '  removed'
          : delta === 0
            ? ''
            : `  ${delta > 0 ? '+' : '−'}${formatCount(Math.abs(delta))}`;
    lines.push(
      `  ${shard.name.padEnd(width)}  ${formatCount(shard.before).padStart(12)} → ${note === '' ? formatCount(shard.after) : `${formatCount(shard.after).padEnd(7)}${note}`}`,
    );
  }
  lines.push('');
  lines.push(`Moves (${formatCount(report.movedSlots)} slots):`);
  const pairWidth = Math.max(...report.moves.map((m) => `${m.from} → ${m.to}`.length));
  for (const move of report.moves) {
    lines.push(
      `  ${`${move.from} → ${move.to}`.padEnd(pairWidth)}: ${formatCount(move.slots)} slots (${percent(move.fraction)})  slots ${formatRanges(move.ranges)}`,
    );
  }
  lines.push('');
  const unit = asUnitFraction(report.idealFraction, report.slotCount);
  lines.push(
    `Keys moved: ${percent(report.movedFraction)} (ideal ${unit ?? ''}${percent(report.idealFraction)}; ${report.movedVsIdeal.toFixed(3)}× ideal)`,
  );
  lines.push('');
  lines.push(
    `Next SHARD_MAP (version ${report.nextVersion}; switch to it only after the moving slots' rows are copied; --json for the full plan):`,
  );
  // Compact (`rle1:`) once the readable form passes 1 KB: it must fit a Lambda environment.
  const nextText = formatShardMap(report.next);
  lines.push(nextText);
  if (nextText.length > LAMBDA_ENV_WARN_BYTES) {
    lines.push(
      `Note: this map takes ${formatCount(nextText.length)} bytes; a Lambda's environment holds 4 KB in total (SHARD_MAP, SHARD_URLS and the rest)`,
    );
  }
  return lines;
};

/** `dbopt shard plan`: prints the plan (or its JSON); returns the exit code. */
export const runShardPlan = (options: ShardPlanOptions, io: ShardIo): number =>
  runCommand(io, () => {
    const report = buildPlanReport(loadShardMap(options, io), options);
    if (options.json) io.out(JSON.stringify(report));
    else for (const line of formatPlanReport(report)) io.out(line);
  });

// ─── shard route ───────────────────────────────────────────────────────────────────────────

export interface ShardRouteOptions extends ShardMapSourceOptions {
  json?: boolean;
}

/** `dbopt shard route KEY…`: key → slot → shard for each key; returns the exit code. */
export const runShardRoute = (
  keys: readonly string[],
  options: ShardRouteOptions,
  io: ShardIo,
): number =>
  runCommand(io, () => {
    const { map, source } = loadShardMap(options, io);
    const router = createShardRouter(map);
    const routes = keys.map((key) => ({ key, ...router.route(key) }));
    if (options.json) {
      io.out(JSON.stringify({ version: router.version, slotCount: router.slotCount, routes }));
      return;
    }
    io.out(
      `Shard map ${source}: version ${router.version}, ${router.shards.length} shards, ${formatCount(router.slotCount)} slots`,
    );
    const width = Math.max(...keys.map((key) => JSON.stringify(key).length));
    const slotWidth = String(router.slotCount - 1).length;
    for (const route of routes) {
      io.out(
        `  ${JSON.stringify(route.key).padEnd(width)} → slot ${String(route.slot).padStart(slotWidth)} → ${route.shard}`,
      );
    }
  });
