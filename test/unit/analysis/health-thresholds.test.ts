import { describe, expect, it } from 'vitest';
import {
  DEFAULT_HEALTH_THRESHOLDS,
  HealthThresholdsSchema,
  healthThresholdsFromConfig,
  parseHealthThresholds,
} from '#shared/analysis';
import { loadConfig } from '#shared/config';
import { ConfigError } from '#shared/errors';

const BASE_ENV = { DB_HOST: 'proxy.internal' };

describe('health thresholds', () => {
  it('ships defaults that satisfy their own schema', () => {
    // Act
    const parsed = HealthThresholdsSchema.safeParse(DEFAULT_HEALTH_THRESHOLDS);
    // Assess
    expect(parsed.success).toBe(true);
  });

  it('merges a partial override over the defaults', () => {
    // Act
    const result = parseHealthThresholds(
      '{"connectionUtilisation":{"critical":0.9},"waitingLocks":{"warning":10,"degraded":30}}',
    );
    // Assess
    expect(result).toEqual({
      ok: true,
      thresholds: {
        ...DEFAULT_HEALTH_THRESHOLDS,
        connectionUtilisation: { warning: 0.75, degraded: 0.85, critical: 0.9 },
        waitingLocks: { warning: 10, degraded: 30, critical: 50 },
      },
    });
  });

  it.each<[string, string, string]>([
    ['not JSON', '{connections', 'not valid JSON'],
    ['an unknown check', '{"conections":{"warning":0.5}}', 'conections: Unrecognized key'],
    ['an unknown level', '{"waitingLocks":{"warn":3}}', 'waitingLocks.warn: Unrecognized key'],
    ['a string level', '{"waitingLocks":{"warning":"3"}}', 'waitingLocks.warning: Invalid input'],
    [
      'a ratio above 1',
      '{"connectionUtilisation":{"critical":1.5}}',
      'connectionUtilisation.critical:',
    ],
    ['a negative level', '{"meanQueryTimeMs":{"warning":-1}}', 'meanQueryTimeMs.warning:'],
    [
      'levels out of order',
      '{"replicationLagSeconds":{"warning":1000}}',
      'replicationLagSeconds.degraded: levels must satisfy warning <= degraded <= critical',
    ],
    [
      'hit-ratio levels the wrong way round',
      '{"cacheHitRatio":{"warning":0.8,"critical":0.95}}',
      'cacheHitRatio.degraded: levels must satisfy warning >= degraded >= critical (lower is worse)',
    ],
  ])('rejects %s and names the field', (_name, json, expected) => {
    // Act
    const result = parseHealthThresholds(json);
    // Assess
    expect(result.ok).toBe(false);
    expect(result.ok ? [] : result.problems.join('\n')).toContain(expected);
  });

  it('reads the alert keys and their defaults from the environment', () => {
    // Act
    const config = loadConfig(BASE_ENV);
    // Assess
    expect(config.ALERT_TOPIC_ARN).toBeUndefined();
    expect(config.ALERT_COOLDOWN_MS).toBe(1_800_000);
    expect(config.ALERT_PUBLISH_RETRIES).toBe(3);
    expect(config.HEALTH_THRESHOLDS).toBeUndefined();
    expect(healthThresholdsFromConfig(config)).toBe(DEFAULT_HEALTH_THRESHOLDS);
  });

  it('parses HEALTH_THRESHOLDS once in loadConfig into merged, frozen thresholds', () => {
    // Act
    const config = loadConfig({
      ...BASE_ENV,
      ALERT_TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:dbopt-alerts',
      ALERT_COOLDOWN_MS: '600000',
      ALERT_PUBLISH_RETRIES: '0',
      HEALTH_THRESHOLDS: '{"deadTupleRatio":{"warning":0.05}}',
    });
    const thresholds = healthThresholdsFromConfig(config);
    // Assess
    expect(config.ALERT_COOLDOWN_MS).toBe(600_000);
    expect(config.ALERT_PUBLISH_RETRIES).toBe(0);
    expect(thresholds.deadTupleRatio).toEqual({ warning: 0.05, degraded: 0.2, critical: 0.4 });
    expect(thresholds.meanQueryTimeMs).toEqual(DEFAULT_HEALTH_THRESHOLDS.meanQueryTimeMs);
    expect(Object.isFrozen(thresholds.deadTupleRatio)).toBe(true);
  });

  it('fails loadConfig with an error naming HEALTH_THRESHOLDS and the bad field', () => {
    // Act
    let error: unknown;
    try {
      loadConfig({
        ...BASE_ENV,
        HEALTH_THRESHOLDS: '{"connectionUtilisation":{"critical":2}}',
        ALERT_TOPIC_ARN: 'not-an-arn',
      });
    } catch (err) {
      error = err;
    }
    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    const { message, details } = error as ConfigError;
    expect(message).toContain('connectionUtilisation.critical');
    expect([...(details.variables as string[])].sort()).toEqual([
      'ALERT_TOPIC_ARN',
      'HEALTH_THRESHOLDS',
    ]);
  });

  it('parses raw JSON text too, throwing ConfigError on a bad one', () => {
    // Act
    const parsed = healthThresholdsFromConfig({
      HEALTH_THRESHOLDS: '{"waitingLocks":{"critical":99}}',
    });
    const bad = () => healthThresholdsFromConfig({ HEALTH_THRESHOLDS: '{"nope":{}}' });
    // Assess
    expect(parsed.waitingLocks.critical).toBe(99);
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow(/nope: Unrecognized key/);
  });
});
