import { z } from 'zod';
import { ConfigError } from '#shared/errors';

/**
 * One check's three levels. For "higher is worse" metrics a value at or above a level reaches
 * it (warning ≤ degraded ≤ critical); for the cache hit ratio a value at or below does
 * (warning ≥ degraded ≥ critical).
 */
export interface ThresholdLevels {
  warning: number;
  degraded: number;
  critical: number;
}

/** Which direction is bad for each threshold (only the cache hit ratio is "lower is worse"). */
export const LOWER_IS_WORSE: ReadonlySet<string> = new Set(['cacheHitRatio']);

const level = z.number().finite().nonnegative();
const ratioLevel = level.max(1);

const levels = (
  value: z.ZodNumber,
  lowerIsWorse: boolean,
): z.ZodType<ThresholdLevels, ThresholdLevels> =>
  z.strictObject({ warning: value, degraded: value, critical: value }).superRefine((l, ctx) => {
    const ordered = lowerIsWorse
      ? l.warning >= l.degraded && l.degraded >= l.critical
      : l.warning <= l.degraded && l.degraded <= l.critical;
    if (!ordered) {
      ctx.addIssue({
        code: 'custom',
        path: ['degraded'],
        message: lowerIsWorse
          ? 'levels must satisfy warning >= degraded >= critical (lower is worse)'
          : 'levels must satisfy warning <= degraded <= critical',
      });
    }
  });

/**
 * Health thresholds, one entry per check (units in the names: ratios are 0..1). Validated with
 * zod; every level is finite and non-negative and the three levels are ordered.
 */
export const HealthThresholdsSchema = z.strictObject({
  /** Fraction of max_connections in use. */
  connectionUtilisation: levels(ratioLevel, false),
  /** Shared-buffer hit ratio of the database; lower is worse. */
  cacheHitRatio: levels(ratioLevel, true),
  longestTransactionSeconds: levels(level, false),
  longestQuerySeconds: levels(level, false),
  /** Sessions waiting for a lock. */
  waitingLocks: levels(level, false),
  /** Sessions idle in transaction (hold snapshots and locks while doing nothing). */
  idleInTransaction: levels(level, false),
  /** Dead tuples / (live + dead) of the worst table. */
  deadTupleRatio: levels(ratioLevel, false),
  replicationLagSeconds: levels(level, false),
  /** Mean execution time of statements in the last interval. */
  meanQueryTimeMs: levels(level, false),
  deadlocksPerMinute: levels(level, false),
});

export type HealthThresholds = z.output<typeof HealthThresholdsSchema>;

/**
 * Defaults. Connection and hit-ratio levels follow common RDS guidance (pghero warns below a
 * 99% hit ratio); transaction and query ages follow pghero's "long running" 1 min / 5 min;
 * the dead-tuple levels bracket autovacuum's default scale factor of 0.2.
 */
export const DEFAULT_HEALTH_THRESHOLDS: HealthThresholds = Object.freeze({
  connectionUtilisation: Object.freeze({ warning: 0.75, degraded: 0.85, critical: 0.95 }),
  cacheHitRatio: Object.freeze({ warning: 0.99, degraded: 0.95, critical: 0.9 }),
  longestTransactionSeconds: Object.freeze({ warning: 300, degraded: 1_800, critical: 3_600 }),
  longestQuerySeconds: Object.freeze({ warning: 60, degraded: 300, critical: 1_800 }),
  waitingLocks: Object.freeze({ warning: 5, degraded: 20, critical: 50 }),
  idleInTransaction: Object.freeze({ warning: 5, degraded: 20, critical: 50 }),
  deadTupleRatio: Object.freeze({ warning: 0.1, degraded: 0.2, critical: 0.4 }),
  replicationLagSeconds: Object.freeze({ warning: 30, degraded: 300, critical: 900 }),
  meanQueryTimeMs: Object.freeze({ warning: 100, degraded: 500, critical: 2_000 }),
  deadlocksPerMinute: Object.freeze({ warning: 0.1, degraded: 1, critical: 5 }),
});

/** HEALTH_THRESHOLDS overrides: any subset of checks and levels, e.g. `{"waitingLocks":{"critical":100}}`. */
const OverridesSchema = z.strictObject(
  Object.fromEntries(
    Object.keys(DEFAULT_HEALTH_THRESHOLDS).map((name) => [
      name,
      z
        .strictObject({
          warning: z.number().optional(),
          degraded: z.number().optional(),
          critical: z.number().optional(),
        })
        .optional(),
    ]),
  ),
);

const describeIssues = (issues: readonly z.core.$ZodIssue[]): string[] =>
  issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    const keys = 'keys' in issue && Array.isArray(issue.keys) ? issue.keys.join(', ') : '';
    const where = [path, keys].filter(Boolean).join('.');
    return `${where || '(root)'}: ${issue.message}`;
  });

/** Result of {@link parseHealthThresholds}: the merged thresholds or the problems found. */
export type ThresholdsParseResult =
  | { ok: true; thresholds: HealthThresholds }
  | { ok: false; problems: string[] };

/**
 * Parses a HEALTH_THRESHOLDS JSON text: overrides merged over the defaults, then the whole
 * validated with {@link HealthThresholdsSchema}. Problems name the field
 * (`connectionUtilisation.critical: …`).
 */
export const parseHealthThresholds = (json: string): ThresholdsParseResult => {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    return { ok: false, problems: [`not valid JSON (${(err as Error).message})`] };
  }
  const overrides = OverridesSchema.safeParse(raw);
  if (!overrides.success) return { ok: false, problems: describeIssues(overrides.error.issues) };
  const merged = Object.fromEntries(
    Object.entries(DEFAULT_HEALTH_THRESHOLDS).map(([name, defaults]) => [
      name,
      { ...defaults, ...(overrides.data[name] ?? {}) },
    ]),
  );
  const full = HealthThresholdsSchema.safeParse(merged);
  if (!full.success) return { ok: false, problems: describeIssues(full.error.issues) };
  return { ok: true, thresholds: deepFreeze(full.data) };
};

const deepFreeze = (t: HealthThresholds): HealthThresholds =>
  Object.freeze(
    Object.fromEntries(Object.entries(t).map(([k, v]) => [k, Object.freeze({ ...v })])),
  ) as HealthThresholds;

/**
 * The zod field for the HEALTH_THRESHOLDS variable: JSON text in, merged and frozen thresholds
 * out, each problem reported under HEALTH_THRESHOLDS with the field it concerns.
 */
export const healthThresholdsEnvSchema = () =>
  z
    .string()
    .min(1)
    .transform((text, ctx) => {
      const result = parseHealthThresholds(text);
      if (result.ok) return result.thresholds;
      for (const problem of result.problems) {
        ctx.addIssue({ code: 'custom', message: problem, input: text });
      }
      return z.NEVER;
    });

/**
 * The thresholds a config asks for: HEALTH_THRESHOLDS (already parsed by `loadConfig`) or
 * the defaults. Also accepts the raw JSON text, which it parses and validates.
 */
export const healthThresholdsFromConfig = (config: {
  readonly HEALTH_THRESHOLDS?: HealthThresholds | string | undefined;
}): HealthThresholds => {
  const value = config.HEALTH_THRESHOLDS;
  if (value === undefined) return DEFAULT_HEALTH_THRESHOLDS;
  if (typeof value !== 'string') return value;
  const result = parseHealthThresholds(value);
  if (result.ok) return result.thresholds;
  throw new ConfigError(`Invalid HEALTH_THRESHOLDS: ${result.problems.join('; ')}`, {
    details: { variables: ['HEALTH_THRESHOLDS'], problems: result.problems },
  });
};
