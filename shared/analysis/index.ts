/**
 * Analysis: pure functions from what the collectors measured to verdicts people act on.
 * `evaluateHealth` compares one sample with configurable thresholds (HEALTHY / WARNING /
 * DEGRADED / CRITICAL, the bottleneck and a recommendation); `analyzeTrend` tells whether a
 * metric's history is DEGRADING, STABLE or IMPROVING, robustly to noise and outliers.
 */
export { formatDuration, formatNumber, formatPercent } from './format.ts';
export {
  evaluateHealth,
  HEALTH_CHECK_PRIORITY,
  type HealthCheckResult,
  type HealthReport,
  type HealthSample,
  type HealthStatus,
} from './health.ts';
export {
  DEFAULT_HEALTH_THRESHOLDS,
  type HealthThresholds,
  HealthThresholdsSchema,
  healthThresholdsEnvSchema,
  healthThresholdsFromConfig,
  parseHealthThresholds,
  type ThresholdLevels,
  type ThresholdsParseResult,
} from './thresholds.ts';
export { analyzeTrend, type TrendOptions, type TrendPoint, type TrendVerdict } from './trend.ts';
