import { describe, expect, it } from 'vitest';
import { analyzeTrend, type TrendPoint } from '#shared/analysis';

/** Deterministic PRNG (mulberry32) so every "random" series is the same on every run. */
const prng = (seed: number): (() => number) => {
  let state = seed | 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
};

/** Standard normal draw (Box–Muller). */
const gaussian = (random: () => number): number =>
  Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());

const START_MS = Date.UTC(2026, 0, 1);

/** `n` points one minute apart. */
const series = (n: number, valueAt: (i: number) => number): TrendPoint[] =>
  Array.from({ length: n }, (_, i) => ({ at: new Date(START_MS + i * 60_000), value: valueAt(i) }));

const SEEDS = Array.from({ length: 300 }, (_, i) => i + 1);

describe('analyzeTrend', () => {
  it('calls a clean rising latency DEGRADING with its slope per hour', () => {
    // Prepare: 100 ms rising 1 ms per minute for an hour
    const points = series(61, (i) => 100 + i);
    // Act
    const verdict = analyzeTrend(points);
    // Assess
    expect(verdict.direction).toBe('DEGRADING');
    expect(verdict.slopePerHour).toBeCloseTo(60, 6);
    // +60 over the hour, relative to the series level (its median 130, larger than the start)
    expect(verdict.relativeChange).toBeCloseTo(60 / 130, 6);
    expect(verdict.confidence).toBeGreaterThan(0.999);
    expect(verdict.points).toBe(61);
    expect(verdict.method).toMatch(/Theil-Sen.*Mann-Kendall/);
  });

  it.each<[string, number, boolean, string]>([
    ['falling latency', -1, false, 'IMPROVING'],
    ['falling cache hit ratio', -1, true, 'DEGRADING'],
    ['rising cache hit ratio', 1, true, 'IMPROVING'],
    ['rising latency', 1, false, 'DEGRADING'],
  ])(
    'reads a %s (step %i per minute, higherIsBetter=%s) as %s',
    (_name, step, higherIsBetter, expected) => {
      // Prepare
      const points = series(40, (i) => 100 + step * i);
      // Act
      const verdict = analyzeTrend(points, { higherIsBetter });
      // Assess
      expect(verdict.direction).toBe(expected);
      expect(Math.sign(verdict.slopePerHour)).toBe(step);
    },
  );

  /** Seeds whose flat series came out non-STABLE. */
  const unstableSeeds = (n: number, sdPercent: number, seeds: number): number[] => {
    const unstable: number[] = [];
    for (let seed = 1; seed <= seeds; seed++) {
      const random = prng(seed);
      const points = series(n, () => 100 + sdPercent * gaussian(random));
      if (analyzeTrend(points).direction !== 'STABLE') unstable.push(seed);
    }
    return unstable;
  };

  it.each([
    [30, 2, 1_000],
    [30, 3, 1_000],
    [60, 2, 1_000],
    [60, 5, 1_000],
    [240, 5, 100],
  ])(
    'keeps a noisy flat series of %i points (sd %i percent of the level) STABLE for every one of %i seeds',
    (n, sdPercent, seeds) => {
      // Act
      const unstable = unstableSeeds(n, sdPercent, seeds);
      // Assess: the 10% practical floor is several noise sd away, so no seed may cross it
      expect(unstable).toEqual([]);
    },
  );

  it.each([
    [30, 10],
    [60, 10],
    [60, 30],
  ])(
    'keeps heavy noise (%i points, sd %i percent) STABLE for at least 997 of 1000 seeds',
    (n, sdPercent) => {
      // Act
      const unstable = unstableSeeds(n, sdPercent, 1_000);
      // Assess: here only the significance test (alpha 0.001) guards, so at most a few
      // realisations that genuinely look like a trend may pass (≈ alpha × 1000 expected)
      expect(unstable.length).toBeLessThanOrEqual(3);
    },
  );

  it('still finds a moderate trend under the same noise (30% rise, sd 10%)', () => {
    // Prepare
    let found = 0;
    for (const seed of SEEDS) {
      const random = prng(seed);
      const points = series(60, (i) => 100 * (1 + (0.3 * i) / 59) + 10 * gaussian(random));
      // Act
      if (analyzeTrend(points).direction === 'DEGRADING') found++;
    }
    // Assess
    expect(found / SEEDS.length).toBeGreaterThan(0.95);
  });

  it('keeps a flat series with a few large spikes STABLE (outliers do not move the slope)', () => {
    // Prepare: 5 spikes of 10× the level, the last ones near the end
    const random = prng(42);
    const spikes = new Set([7, 19, 44, 52, 57]);
    const points = series(60, (i) => (spikes.has(i) ? 1_000 : 100 + gaussian(random)));
    // Act
    const verdict = analyzeTrend(points);
    // Assess
    expect(verdict.direction).toBe('STABLE');
    expect(Math.abs(verdict.relativeChange)).toBeLessThan(0.05);
  });

  it('calls a step change from 100 to 150 halfway DEGRADING', () => {
    // Prepare
    const random = prng(7);
    const points = series(60, (i) => (i < 30 ? 100 : 150) + 2 * gaussian(random));
    // Act
    const verdict = analyzeTrend(points);
    // Assess
    expect(verdict.direction).toBe('DEGRADING');
    expect(verdict.relativeChange).toBeGreaterThan(0.3);
  });

  it('keeps a significant but tiny drift STABLE (practical-significance floor)', () => {
    // Prepare: +2% over the hour, almost no noise → highly significant
    const random = prng(3);
    const points = series(60, (i) => 100 + (2 * i) / 59 + 0.05 * gaussian(random));
    // Act
    const verdict = analyzeTrend(points);
    const withoutFloor = analyzeTrend(points, { minRelativeChange: 0 });
    // Assess
    expect(verdict.confidence).toBeGreaterThan(0.999);
    expect(verdict.direction).toBe('STABLE');
    expect(verdict.reason).toMatch(/below the 10\.0% floor/);
    expect(withoutFloor.direction).toBe('DEGRADING');
  });

  it('applies an absolute floor to a metric idling near zero', () => {
    // Prepare: replication lag 0.01 s → 0.05 s over an hour: +400%, harmless
    const points = series(60, (i) => 0.01 + (0.04 * i) / 59);
    // Act
    const relativeOnly = analyzeTrend(points);
    const withFloor = analyzeTrend(points, { minAbsoluteChange: 5 });
    // Assess
    expect(relativeOnly.direction).toBe('DEGRADING');
    expect(withFloor.direction).toBe('STABLE');
    expect(withFloor.reason).toBe(
      'significant but small: 0.04 over the window, below the absolute floor of 5',
    );
  });

  it.each([0, 1, 7])('answers STABLE with confidence 0 and a reason for %i points', (n) => {
    // Act
    const verdict = analyzeTrend(series(n, (i) => i * 1_000));
    // Assess
    expect(verdict).toMatchObject({
      direction: 'STABLE',
      confidence: 0,
      slopePerHour: 0,
      relativeChange: 0,
      points: n,
    });
    expect(verdict.reason).toBe(`too few points: ${n} usable, at least 8 needed`);
  });

  it('honours minPoints', () => {
    // Prepare
    const points = series(10, (i) => i * 10);
    // Act
    const byDefault = analyzeTrend(points);
    const stricter = analyzeTrend(points, { minPoints: 12 });
    // Assess
    expect(byDefault.direction).toBe('DEGRADING');
    expect(stricter).toMatchObject({ direction: 'STABLE', confidence: 0 });
    expect(stricter.reason).toBe('too few points: 10 usable, at least 12 needed');
  });

  it.each([
    ['a constant series', 5],
    ['an all-zero series', 0],
  ])('treats %s as STABLE without dividing by zero', (_name, value) => {
    // Act
    const verdict = analyzeTrend(series(60, () => value));
    // Assess
    expect(verdict).toMatchObject({
      direction: 'STABLE',
      confidence: 0,
      slopePerHour: 0,
      relativeChange: 0,
    });
    expect(Number.isFinite(verdict.relativeChange)).toBe(true);
  });

  it('measures a rise from zero against the series level, not the zero start', () => {
    // Prepare: waiting locks climbing 0 → 20
    const points = series(21, (i) => i);
    // Act
    const verdict = analyzeTrend(points);
    // Assess
    expect(verdict.direction).toBe('DEGRADING');
    expect(Number.isFinite(verdict.relativeChange)).toBe(true);
    expect(verdict.relativeChange).toBeCloseTo(2, 6);
  });

  it('ignores non-finite values and sorts points by time', () => {
    // Prepare
    const points = series(30, (i) => 100 + 2 * i).reverse();
    points.push({ at: new Date(START_MS), value: Number.NaN });
    points.push({ at: new Date(Number.NaN), value: 5 });
    // Act
    const verdict = analyzeTrend(points);
    // Assess
    expect(verdict.points).toBe(30);
    expect(verdict.direction).toBe('DEGRADING');
    expect(verdict.slopePerHour).toBeCloseTo(120, 6);
  });

  it('treats points that share one timestamp as STABLE', () => {
    // Prepare
    const points = Array.from({ length: 10 }, (_, i) => ({ at: new Date(START_MS), value: i }));
    // Act
    const verdict = analyzeTrend(points);
    // Assess
    expect(verdict).toMatchObject({ direction: 'STABLE', confidence: 0 });
    expect(verdict.reason).toBe('all points share one timestamp');
  });

  it('reduces a week of minute points to bucket medians and keeps the slope', () => {
    // Prepare: 10 080 points rising 1 per minute with noise
    const random = prng(11);
    const points = series(10_080, (i) => 1_000 + i + 50 * gaussian(random));
    // Act
    const verdict = analyzeTrend(points);
    // Assess
    expect(verdict.direction).toBe('DEGRADING');
    expect(verdict.points).toBe(10_080);
    expect(verdict.slopePerHour).toBeGreaterThan(58);
    expect(verdict.slopePerHour).toBeLessThan(62);
    expect(verdict.method).toContain('10080 points reduced to 500 bucket medians');
  });
});
