import { describe, expect, it } from 'vitest';
import { loadConfig } from '#shared/config';
import { ConfigError } from '#shared/errors';

describe('loadConfig', () => {
  it('applies the schema defaults and freezes the result', () => {
    // Act
    const config = loadConfig({ DB_HOST: 'proxy.internal' });
    // Assess
    expect(config).toMatchObject({
      DB_HOST: 'proxy.internal',
      DB_PORT: 5432,
      DB_POOL_MAX: 1,
      DB_SSL_MODE: 'verify-full',
      DB_IAM_AUTH: false,
      QUERY_ALLOW_WRITES: false,
      QUERY_TIMEOUT_MS: 5_000,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('coerces numbers and booleans from strings and treats empty strings as unset', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://u@h:5433/db',
      DB_POOL_MAX: '4',
      QUERY_ALLOW_WRITES: 'true',
      DB_PASSWORD: '',
    });
    expect(config.DB_POOL_MAX).toBe(4);
    expect(config.QUERY_ALLOW_WRITES).toBe(true);
    expect(config.DB_PASSWORD).toBeUndefined();
  });

  it('fails with one error that names every bad variable', () => {
    // Act
    let error: unknown;
    try {
      loadConfig({
        DB_HOST: 'h',
        DB_PORT: 'abc',
        QUERY_ALLOW_WRITES: 'maybe',
        DB_SSL_MODE: 'sometimes',
      });
    } catch (err) {
      error = err;
    }
    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    const { message, details } = error as ConfigError;
    for (const name of ['DB_PORT', 'QUERY_ALLOW_WRITES', 'DB_SSL_MODE'])
      expect(message).toContain(name);
    expect([...(details.variables as string[])].sort()).toEqual([
      'DB_PORT',
      'DB_SSL_MODE',
      'QUERY_ALLOW_WRITES',
    ]);
  });

  it.each([
    [{}, 'DB_HOST'],
    [{ DB_HOST: 'h', DB_IAM_AUTH: 'true' }, 'AWS_REGION'],
    [
      { DB_HOST: 'h', DB_IAM_AUTH: 'true', AWS_REGION: 'eu-west-1', DB_SSL_MODE: 'disable' },
      'DB_SSL_MODE',
    ],
    [{ DB_HOST: 'h', QUERY_TIMEOUT_MS: '60000' }, 'QUERY_TIMEOUT_MS'],
    [{ DB_HOST: 'h', QUERY_DEFAULT_MAX_ROWS: '20000' }, 'QUERY_DEFAULT_MAX_ROWS'],
    [{ DATABASE_URL: 'mysql://x@y/z' }, 'DATABASE_URL'],
    [{ DB_HOST: 'h', SHARD_MAP: '{"version":1,"shards":[{"name":"a"}]}' }, 'SHARD_URLS'],
    [{ DB_HOST: 'h', SHARD_MAP: '{"version":1,"shards":[]}', SHARD_URLS: '{}' }, 'SHARD_MAP'],
    [
      {
        DB_HOST: 'h',
        SHARD_MAP: '{"version":1,"shards":[{"name":"a"},{"name":"b"}]}',
        SHARD_URLS: '{"a":"postgres://h/a"}',
      },
      'no URL for shard(s) b',
    ],
  ])('rejects the cross-field rule in %j naming %s', (env, variable) => {
    expect(() => loadConfig(env)).toThrow(variable);
  });
});
