import { describe, expect, it } from 'vitest';
import { loadConfig } from '#shared/config';
import { ConfigError } from '#shared/errors';

const base = { DATABASE_URL: 'postgres://u@db.example:5432/app' };

describe('read replica configuration', () => {
  it('has documented defaults and no replicas when REPLICA_URLS is unset', () => {
    // Act
    const config = loadConfig(base);
    // Assess
    expect(config).toMatchObject({
      REPLICA_MAX_LAG_MS: 5_000,
      REPLICA_LAG_CHECK_INTERVAL_MS: 1_000,
      REPLICA_LAG_PROBE_TIMEOUT_MS: 250,
      REPLICA_CONNECT_TIMEOUT_MS: 1_000,
      REPLICA_SELECTION: 'round-robin',
      REPLICA_NON_STANDBY: 'skip',
    });
    expect(config.REPLICA_URLS).toBeUndefined();
  });

  it('accepts a target → URL list object', () => {
    // Prepare
    const urls = { primary: ['postgres://u@r1.example/app', 'postgresql://u@r2.example/app'] };
    // Act
    const config = loadConfig({ ...base, REPLICA_URLS: JSON.stringify(urls) });
    // Assess
    expect(JSON.parse(config.REPLICA_URLS ?? '')).toEqual(urls);
  });

  it.each([
    ['not JSON', '{primary:'],
    ['a bare URL list', '["postgres://u@r1/app"]'],
    ['an empty list', '{"primary":[]}'],
    ['a non-postgres URL', '{"primary":["mysql://u@r1/app"]}'],
    ['a string instead of a list', '{"primary":"postgres://u@r1/app"}'],
  ])('rejects %s, naming REPLICA_URLS', (_label, value) => {
    // Act
    const act = () => loadConfig({ ...base, REPLICA_URLS: value });
    // Assess
    expect(act).toThrow(ConfigError);
    expect(act).toThrow(/REPLICA_URLS/);
  });

  it.each([
    ['REPLICA_SELECTION', 'random'],
    ['REPLICA_NON_STANDBY', 'trust'],
    ['REPLICA_MAX_LAG_MS', '0'],
  ])('rejects %s=%s', (key, value) => {
    // Act
    const act = () => loadConfig({ ...base, [key]: value });
    // Assess
    expect(act).toThrow(new RegExp(key));
  });
});
