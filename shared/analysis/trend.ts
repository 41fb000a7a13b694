import { formatNumber } from './format.ts';

/** One observation of a metric. */
export interface TrendPoint {
  at: Date;
  value: number;
}

export interface TrendOptions {
  /** true for metrics where up is good (cache hit ratio); default false (latency, lag, locks). */
  higherIsBetter?: boolean;
  /** Fewer usable points than this → STABLE with confidence 0 (default 8). */
  minPoints?: number;
  /**
   * Significance level of the Mann–Kendall test (default 0.001: trends are re-evaluated every
   * run over overlapping windows, so a stricter level keeps noisy flat series from flickering).
   */
  alpha?: number;
  /**
   * Practical-significance floor: the fitted change over the window, relative to the series'
   * level, must reach this fraction (default 0.1 = 10%), so a significant but small drift
   * stays STABLE.
   */
  minRelativeChange?: number;
  /**
   * Absolute floor in value units (default 0): the fitted change over the window must also
   * reach it. Use it for metrics that idle near zero (replication lag, lock waits), where a
   * rise from 0.01 s to 0.05 s is +400% yet harmless, e.g. `{ minAbsoluteChange: 5 }` seconds.
   */
  minAbsoluteChange?: number;
  /** Longer series are first reduced to this many equal-count bucket medians (default 500). */
  maxPoints?: number;
}

export interface TrendVerdict {
  direction: 'DEGRADING' | 'STABLE' | 'IMPROVING';
  /**
   * 1 − p of the two-sided Mann–Kendall test: how sure we are that the series moves
   * monotonically at all (0 with too few points or a constant series).
   */
  confidence: number;
  /** Theil–Sen slope in value units per hour. */
  slopePerHour: number;
  /**
   * Fitted change over the window / level of the series (signed; 0.25 = +25%). The level is
   * the larger of the fitted start value and the median, so near-zero starts do not explode it.
   */
  relativeChange: number;
  /** Usable points (finite values with valid timestamps). */
  points: number;
  method: string;
  /** Why the direction was chosen, in words. */
  reason: string;
}

const DEFAULTS = Object.freeze({
  higherIsBetter: false,
  minPoints: 8,
  alpha: 0.001,
  minRelativeChange: 0.1,
  minAbsoluteChange: 0,
  maxPoints: 500,
});

const MS_PER_HOUR = 3_600_000;

const median = (sorted: ArrayLike<number>): number => {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const mid = n >> 1;
  return n % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

const medianOf = (values: readonly number[]): number => median(Float64Array.from(values).sort());

/**
 * Complementary error function, Chebyshev fit with fractional error < 1.2e-7
 * (Numerical Recipes, `erfcc`).
 */
const erfc = (x: number): number => {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 +
                            t *
                              (-1.13520398 +
                                t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
};

/** Reduces a long series to `buckets` points: per equal-count bucket, the median time and value. */
const bucketMedians = (xs: readonly number[], ys: readonly number[], buckets: number) => {
  const bx: number[] = [];
  const by: number[] = [];
  const n = xs.length;
  for (let b = 0; b < buckets; b++) {
    const from = Math.floor((b * n) / buckets);
    const to = Math.floor(((b + 1) * n) / buckets);
    bx.push(medianOf(xs.slice(from, to)));
    by.push(medianOf(ys.slice(from, to)));
  }
  return { xs: bx, ys: by };
};

/** All pairwise slopes, sorted (Theil–Sen); pairs with the same time are skipped. */
const pairwiseSlopes = (xs: readonly number[], ys: readonly number[]): Float64Array => {
  const n = xs.length;
  const slopes = new Float64Array((n * (n - 1)) / 2);
  let count = 0;
  for (let i = 0; i < n; i++) {
    const xi = xs[i] as number;
    const yi = ys[i] as number;
    for (let j = i + 1; j < n; j++) {
      const dx = (xs[j] as number) - xi;
      if (dx !== 0) slopes[count++] = ((ys[j] as number) - yi) / dx;
    }
  }
  return slopes.subarray(0, count).sort();
};

/**
 * Mann–Kendall trend test: S statistic, variance corrected for tied values, continuity-
 * corrected Z, two-sided p-value.
 * https://www.statisticshowto.com/mann-kendall-trend-test/
 */
const mannKendall = (ys: readonly number[]): { s: number; p: number } => {
  const n = ys.length;
  let s = 0;
  for (let i = 0; i < n; i++) {
    const yi = ys[i] as number;
    for (let j = i + 1; j < n; j++) s += Math.sign((ys[j] as number) - yi);
  }
  const sorted = Float64Array.from(ys).sort();
  let tieTerm = 0;
  for (let i = 0; i < n; ) {
    let j = i + 1;
    while (j < n && sorted[j] === sorted[i]) j++;
    const t = j - i;
    tieTerm += t * (t - 1) * (2 * t + 5);
    i = j;
  }
  const variance = (n * (n - 1) * (2 * n + 5) - tieTerm) / 18;
  if (variance <= 0 || s === 0) return { s, p: 1 };
  const z = (s - Math.sign(s)) / Math.sqrt(variance);
  return { s, p: Math.min(1, erfc(Math.abs(z) / Math.SQRT2)) };
};

const percentText = (ratio: number): string => `${(ratio * 100).toFixed(1)}%`;

/**
 * Trend of a metric over its stored history, robust to noise and outliers: the Theil–Sen slope
 * (median of pairwise slopes, unmoved by a few spikes) for size, the Mann–Kendall rank test for
 * significance, and a practical floor so a significant but tiny drift stays STABLE. A trend is
 * DEGRADING or IMPROVING only when p ≤ alpha AND |relativeChange| ≥ minRelativeChange (AND the
 * absolute change ≥ minAbsoluteChange, when given).
 *
 * Caveat: both methods assume independent noise; strongly autocorrelated series look more
 * significant than they are, which the practical floor partly absorbs.
 *
 * @example
 * const series = await repository.metricSeries('primary', 'mean_query_time_ms', since);
 * const { direction, confidence } = analyzeTrend(series); // DEGRADING when latency rises
 */
export const analyzeTrend = (
  points: readonly TrendPoint[],
  options: TrendOptions = {},
): TrendVerdict => {
  const o = { ...DEFAULTS, ...stripUndefined(options) };
  const usable = points
    .filter(
      (p) => Number.isFinite(p.value) && p.at instanceof Date && Number.isFinite(p.at.getTime()),
    )
    .map((p) => ({ t: p.at.getTime(), v: p.value }))
    .sort((a, b) => a.t - b.t);
  const n = usable.length;
  const minPoints = Math.max(3, o.minPoints);
  let method = `Theil-Sen slope + Mann-Kendall test (alpha ${o.alpha}, min change ${percentText(o.minRelativeChange)})`;
  const stable = (reason: string, extra: Partial<TrendVerdict> = {}): TrendVerdict => ({
    direction: 'STABLE',
    confidence: 0,
    slopePerHour: 0,
    relativeChange: 0,
    points: n,
    method,
    reason,
    ...extra,
  });
  if (n < minPoints) return stable(`too few points: ${n} usable, at least ${minPoints} needed`);
  const t0 = (usable[0] as { t: number }).t;
  let xs = usable.map((p) => (p.t - t0) / MS_PER_HOUR);
  let ys = usable.map((p) => p.v);
  const spanHours = (xs[n - 1] as number) - (xs[0] as number);
  if (spanHours === 0) return stable('all points share one timestamp');
  if (n > o.maxPoints) {
    ({ xs, ys } = bucketMedians(xs, ys, Math.max(minPoints, o.maxPoints)));
    method += `, ${n} points reduced to ${xs.length} bucket medians`;
  }

  const slopes = pairwiseSlopes(xs, ys);
  const slopePerHour = slopes.length === 0 ? 0 : median(slopes);
  const intercept = medianOf(xs.map((x, i) => (ys[i] as number) - slopePerHour * x));
  const level = Math.max(Math.abs(intercept), Math.abs(medianOf(ys)));
  const meanAbs = ys.reduce((sum, y) => sum + Math.abs(y), 0) / ys.length;
  const reference = level > 0 ? level : meanAbs;
  const relative = (slope: number): number =>
    slope === 0 || reference === 0 ? 0 : (slope * spanHours) / reference;
  const relativeChange = relative(slopePerHour);
  const { p } = mannKendall(ys);
  const confidence = Math.max(0, Math.min(1, 1 - p));
  const measured = { confidence, slopePerHour, relativeChange };

  if (p > o.alpha) {
    return stable(`no significant monotonic trend (p=${p.toPrecision(2)} > ${o.alpha})`, measured);
  }
  if (slopePerHour === 0) return stable('the median pairwise slope is zero', measured);
  if (Math.abs(relativeChange) < o.minRelativeChange) {
    return stable(
      `significant but small: ${percentText(relativeChange)} over the window, below the ${percentText(o.minRelativeChange)} floor`,
      measured,
    );
  }
  if (Math.abs(slopePerHour * spanHours) < o.minAbsoluteChange) {
    return stable(
      `significant but small: ${formatNumber(slopePerHour * spanHours)} over the window, below the absolute floor of ${o.minAbsoluteChange}`,
      measured,
    );
  }
  const rising = slopePerHour > 0;
  const direction = rising === o.higherIsBetter ? 'IMPROVING' : 'DEGRADING';
  return {
    direction,
    ...measured,
    points: n,
    method,
    reason: `${rising ? 'rising' : 'falling'} ${percentText(Math.abs(relativeChange))} over ${spanHours.toPrecision(3)} h (p=${p.toPrecision(2)})`,
  };
};

const stripUndefined = <T extends object>(value: T): Partial<T> =>
  Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
