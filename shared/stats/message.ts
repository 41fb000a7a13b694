import { z } from 'zod';
import type { Finding } from './findings.ts';
import type { SlowStatement } from './rank.ts';

const nonNegative = () => z.number().nonnegative();

/** One finding on a slow statement; fields beyond `kind` and `detail` depend on the kind. */
export const SlowQueryFindingSchema = z.looseObject({
  kind: z.enum([
    'low_cache_hit_ratio',
    'high_variance',
    'many_rows_per_call',
    'temp_spill',
    'seq_scan',
    'plan_unavailable',
  ]),
  detail: z.string().min(1),
});

/**
 * The body of one SQS message per slow fingerprint, sent by collect-slow-queries and consumed
 * by the optimizer. Times in ms; counters are the interval's (`intervalSeconds` long), not the
 * cumulative pg_stat_statements values.
 */
export const SlowQueryMessageSchema = z.object({
  version: z.literal(1),
  /** Database target name (`primary` or a shard name). */
  target: z.string().min(1),
  database: z.string().min(1),
  /** pg_stat_statements queryid as decimal text (a signed 64-bit integer). */
  queryId: z.string().min(1),
  /** libpg-query fingerprint of `query`, or `queryid:<id>` when the text does not parse. */
  fingerprint: z.string().min(1),
  /** Normalised text ($n for constants), capped at {@link MAX_QUERY_CHARS}. */
  query: z.string().min(1),
  calls: nonNegative(),
  totalExecTimeMs: nonNegative(),
  meanExecTimeMs: nonNegative(),
  stddevExecTimeMs: nonNegative(),
  rows: nonNegative(),
  sharedBlksHit: nonNegative(),
  sharedBlksRead: nonNegative(),
  tempBlksWritten: nonNegative(),
  intervalSeconds: nonNegative(),
  observedAt: z.iso.datetime(),
  findings: z.array(SlowQueryFindingSchema),
});

export type SlowQueryMessage = z.infer<typeof SlowQueryMessageSchema>;

/** SQS bodies are at most 256 KiB and ten share one batch request: keep texts well below. */
export const MAX_QUERY_CHARS = 16_000;

/** Builds (and validates) the message for one slow statement. */
export const toSlowQueryMessage = (
  s: SlowStatement,
  context: {
    target: string;
    database: string;
    intervalSeconds: number;
    observedAt: Date;
    findings: Finding[];
  },
): SlowQueryMessage =>
  SlowQueryMessageSchema.parse({
    version: 1,
    target: context.target,
    database: context.database,
    queryId: s.queryId,
    fingerprint: s.fingerprint,
    query: s.query.length > MAX_QUERY_CHARS ? s.query.slice(0, MAX_QUERY_CHARS) : s.query,
    calls: s.calls,
    totalExecTimeMs: s.totalExecTimeMs,
    meanExecTimeMs: s.meanExecTimeMs,
    stddevExecTimeMs: s.stddevExecTimeMs,
    rows: s.rows,
    sharedBlksHit: s.sharedBlksHit,
    sharedBlksRead: s.sharedBlksRead,
    tempBlksWritten: s.tempBlksWritten,
    intervalSeconds: context.intervalSeconds,
    observedAt: context.observedAt.toISOString(),
    findings: context.findings,
  });
