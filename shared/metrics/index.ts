import type { MetricUnit as PowertoolsMetricUnit } from '@aws-lambda-powertools/metrics';

export { MetricUnit } from '@aws-lambda-powertools/metrics';

/**
 * The narrow metrics surface shared/ code records into. The Powertools `Metrics` instance a
 * handler owns satisfies it; `logMetrics` middleware flushes it once per invocation as EMF.
 * Dimensions stay bounded: shared/ code never adds per-request dimensions.
 */
export interface MetricsSink {
  addMetric(
    name: string,
    unit: (typeof PowertoolsMetricUnit)[keyof typeof PowertoolsMetricUnit],
    value: number,
  ): void;
}

/** A sink that records nothing, for callers that do not publish metrics (CLI, tests). */
export const noMetrics: MetricsSink = Object.freeze({ addMetric: () => undefined });
