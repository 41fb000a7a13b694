import { describe, expect, it } from 'vitest';
import { loadConfig } from '#shared/config';
import { ConfigError } from '#shared/errors';
import { statsSettingsFromConfig } from '#shared/stats';

const base = { DATABASE_URL: 'postgres://u@h:5432/app' };

describe('collector configuration', () => {
  it('has defaults for every collector key', () => {
    // Act
    const config = loadConfig(base);
    // Assess
    expect(config).toMatchObject({
      SLOW_QUERY_TOP_N: 20,
      SLOW_QUERY_MIN_MEAN_MS: 10,
      SLOW_QUERY_MIN_CALLS: 1,
      SLOW_QUERY_SEQ_SCAN_MIN_ROWS: 10_000,
      SLOW_QUERY_EXPLAIN_TIMEOUT_MS: 2_000,
      STATS_READ_TIMEOUT_MS: 5_000,
      STATS_SOURCE: 'pg',
      METRICS_HISTORY_DAYS: 14,
      STATS_TREND_WINDOW_MINUTES: 60,
      COLLECT_METRICS_INTERVAL_MS: 60_000,
      COLLECT_SLOW_QUERIES_INTERVAL_MS: 300_000,
    });
    expect(config.SLOW_QUERY_QUEUE_URL).toBeUndefined();
  });

  it('turns the keys into collector settings', () => {
    // Act
    const settings = statsSettingsFromConfig(
      loadConfig({
        ...base,
        SLOW_QUERY_TOP_N: '5',
        SLOW_QUERY_MIN_MEAN_MS: '2.5',
        SLOW_QUERY_SEQ_SCAN_MIN_ROWS: '500',
      }),
    );
    // Assess
    expect(settings.slowQueries).toEqual({ topN: 5, minMeanMs: 2.5, minCalls: 1 });
    expect(settings.findings.seqScanMinRows).toBe(500);
  });

  it('requires the three Data API settings together when STATS_SOURCE=data-api', () => {
    // Act
    let error: unknown;
    try {
      loadConfig({ ...base, STATS_SOURCE: 'data-api', DATA_API_DATABASE: 'app' });
    } catch (err) {
      error = err;
    }
    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).details.variables).toEqual([
      'DATA_API_RESOURCE_ARN',
      'DATA_API_SECRET_ARN',
    ]);
    expect((error as Error).message).toContain('required when STATS_SOURCE=data-api');
  });

  it('accepts a complete Data API configuration', () => {
    // Act
    const config = loadConfig({
      ...base,
      STATS_SOURCE: 'data-api',
      DATA_API_RESOURCE_ARN: 'arn:aws:rds:eu-west-1:000000000000:cluster:app',
      DATA_API_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:000000000000:secret:app',
      DATA_API_DATABASE: 'app',
    });
    // Assess
    expect(config.STATS_SOURCE).toBe('data-api');
  });

  it.each([
    ['STATS_SOURCE', 'mysql'],
    ['SLOW_QUERY_TOP_N', '0'],
    ['SLOW_QUERY_QUEUE_URL', 'not a url'],
    ['DATA_API_RESOURCE_ARN', 'cluster-1'],
  ])('rejects %s=%s', (key, value) => {
    // Act / Assess
    expect(() => loadConfig({ ...base, [key]: value })).toThrow(key);
  });
});
