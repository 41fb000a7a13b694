import { describe, expect, it } from 'vitest';
import { loadConfig } from '#shared/config';
import type { Database } from '#shared/db';
import { createEmfTargetPublisher, type StatsTarget, statsTargetsFromConfig } from '#shared/stats';

const fakeDb = (): Database => ({
  pool: () => {
    throw new Error('not connected in unit tests');
  },
  end: async () => undefined,
  started: false,
});

describe('statsTargetsFromConfig', () => {
  it('watches the primary and every shard of SHARD_URLS, named as the query API names them', () => {
    // Prepare
    const urls: (string | undefined)[] = [];
    const config = loadConfig({
      DATABASE_URL: 'postgres://u@primary.internal:5432/app',
      SHARD_MAP: '{"version":1,"shards":[{"name":"s1"},{"name":"s2"}]}',
      SHARD_URLS: JSON.stringify({
        s1: 'postgres://u@s1.internal:5432/app_s1',
        s2: 'postgres://u@s2.internal:5432/app_s2',
      }),
    });
    // Act
    const targets = statsTargetsFromConfig(config, {
      createDb: (url) => {
        urls.push(url);
        return fakeDb();
      },
    });
    // Assess
    expect(targets.map((t) => [t.name, t.database])).toEqual([
      ['primary', 'app'],
      ['s1', 'app_s1'],
      ['s2', 'app_s2'],
    ]);
    expect(urls).toEqual([
      undefined,
      'postgres://u@s1.internal:5432/app_s1',
      'postgres://u@s2.internal:5432/app_s2',
    ]);
  });

  it('reads the primary through the Data API when STATS_SOURCE=data-api', () => {
    // Prepare
    const config = loadConfig({
      DB_HOST: 'proxy.internal',
      STATS_SOURCE: 'data-api',
      DATA_API_RESOURCE_ARN: 'arn:aws:rds:eu-west-1:000000000000:cluster:app',
      DATA_API_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:000000000000:secret:app',
      DATA_API_DATABASE: 'appdb',
    });
    const viaDataApi: StatsTarget = {
      name: 'x',
      database: 'x',
      readOnly: async () => undefined as never,
    };
    // Act
    const targets = statsTargetsFromConfig(config, {
      createDb: fakeDb,
      dataApiTarget: (name, database) => ({ ...viaDataApi, name, database }),
    });
    // Assess
    expect(targets).toEqual([expect.objectContaining({ name: 'primary', database: 'appdb' })]);
    expect(targets[0]?.readOnly).toBe(viaDataApi.readOnly);
  });
});

describe('createEmfTargetPublisher', () => {
  it('emits one document per target with only {target, database} as dimensions, skipping non-finite values', () => {
    // Prepare
    const calls: string[] = [];
    const publisher = createEmfTargetPublisher(
      {
        addDimensions: (d) => calls.push(`dims ${JSON.stringify(d)}`),
        addMetric: (name, unit, value) => calls.push(`${name} ${unit} ${value}`),
        publishStoredMetrics: () => calls.push('flush'),
      },
      (name) => (name === 'CacheHitRatio' ? 'Percent' : 'Count'),
    );
    // Act
    publisher.publish(
      { target: 's1', database: 'app' },
      { TargetUp: 1, CacheHitRatio: 99, Bad: Number.NaN },
    );
    publisher.publish({ target: 's2', database: 'app' }, {});
    // Assess
    expect(calls).toEqual([
      'dims {"target":"s1","database":"app"}',
      'TargetUp Count 1',
      'CacheHitRatio Percent 99',
      'flush',
    ]);
  });
});
