import { describe, expect, it } from 'vitest';
import { buildPoolConfig, createDatabase, type DatabaseOptions, mapDbError } from '#shared/db';
import { DatabaseUnavailableError, QueryTimeoutError, SqlSyntaxError } from '#shared/errors';

const base: DatabaseOptions = {
  host: 'proxy.example.internal',
  port: 5432,
  database: 'app',
  user: 'dbopt_api',
  sslMode: 'verify-full',
  poolMax: 1,
  connectTimeoutMs: 3_000,
  idleTimeoutMs: 60_000,
  queryTimeoutMs: 31_000,
};

describe('buildPoolConfig', () => {
  it('sets no startup options or statement_timeout (RDS Proxy rejects them / pins on SET)', () => {
    // Act
    const config = buildPoolConfig(base) as Record<string, unknown>;
    // Assess
    expect(config.options).toBeUndefined();
    expect(config.statement_timeout).toBeUndefined();
    expect(config).toMatchObject({ max: 1, query_timeout: 31_000, connectionTimeoutMillis: 3_000 });
    expect(config.ssl).toEqual({ rejectUnauthorized: true });
  });

  it.each([
    ['disable', false],
    ['require', { rejectUnauthorized: false }],
    ['verify-full', { rejectUnauthorized: true }],
  ] as const)('maps DB_SSL_MODE=%s to the driver ssl option', (sslMode, ssl) => {
    expect(buildPoolConfig({ ...base, sslMode }).ssl).toEqual(ssl);
  });

  it('lets sslmode in DATABASE_URL win over DB_SSL_MODE', () => {
    const config = buildPoolConfig({
      ...base,
      connectionString: 'postgres://u@h/db?sslmode=require',
    });
    expect(config.ssl).toBeUndefined();
    expect(config.connectionString).toContain('sslmode=require');
  });

  it('signs a fresh RDS IAM token as the password when IAM auth is on', async () => {
    // Prepare: the signer works offline from static credentials.
    process.env.AWS_ACCESS_KEY_ID = 'AKIDEXAMPLE';
    process.env.AWS_SECRET_ACCESS_KEY = 'secret';
    const config = buildPoolConfig({ ...base, iamAuth: { region: 'eu-west-1' } });
    // Act
    const password = config.password as () => Promise<string>;
    const token = await password();
    // Assess
    expect(typeof config.password).toBe('function');
    expect(token).toMatch(/^proxy\.example\.internal:5432\/\?Action=connect&DBUser=dbopt_api&/);
    expect(token).toContain('X-Amz-Signature=');
    expect(token).not.toContain('secret');
  });
});

describe('buildPoolConfig with a connection string and IAM auth', () => {
  it('signs a token for the host, port and user of a password-less URL (shards, replicas)', async () => {
    // Prepare
    process.env.AWS_ACCESS_KEY_ID = 'AKIDEXAMPLE';
    process.env.AWS_SECRET_ACCESS_KEY = 'secret';
    const config = buildPoolConfig({
      ...base,
      iamAuth: { region: 'eu-west-1' },
      connectionString: 'postgresql://dbopt_shard@shard-1.proxy.internal:6432/orders',
    });

    // Act
    const token = await (config.password as () => Promise<string>)();

    // Assess
    expect(config).toMatchObject({
      host: 'shard-1.proxy.internal',
      port: 6432,
      database: 'orders',
      user: 'dbopt_shard',
      ssl: { rejectUnauthorized: true },
    });
    expect(config.connectionString).toBeUndefined();
    expect(token).toMatch(/^shard-1\.proxy\.internal:6432\/\?Action=connect&DBUser=dbopt_shard&/);
  });

  it('keeps a URL that carries its own password as it is', () => {
    // Act
    const config = buildPoolConfig({
      ...base,
      iamAuth: { region: 'eu-west-1' },
      connectionString: 'postgresql://u:pw@h:5432/db',
    });

    // Assess
    expect(config.connectionString).toBe('postgresql://u:pw@h:5432/db');
    expect(config.password).toBeUndefined();
  });
});

describe('createDatabase', () => {
  it('does not create a pool until first use', async () => {
    const db = createDatabase(base);
    expect(db.started).toBe(false);
    await db.end();
  });
});

describe('mapDbError', () => {
  const pgError = (code: string, message: string, extra: Record<string, unknown> = {}) =>
    Object.assign(new Error(message), { code, ...extra });

  it.each([
    [pgError('57014', 'canceling statement due to statement timeout'), QueryTimeoutError],
    [new Error('Query read timeout'), QueryTimeoutError],
    [pgError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1'), DatabaseUnavailableError],
    [pgError('ECONNRESET', 'read ECONNRESET'), DatabaseUnavailableError],
    [
      pgError('57P01', 'terminating connection due to administrator command'),
      DatabaseUnavailableError,
    ],
    [pgError('08006', 'connection failure'), DatabaseUnavailableError],
    [new Error('timeout exceeded when trying to connect'), DatabaseUnavailableError],
    [pgError('42601', 'syntax error at or near "FORM"', { position: '10' }), SqlSyntaxError],
  ])('maps %s', (err, type) => {
    const mapped = mapDbError(err);
    expect(mapped).toBeInstanceOf(type);
    expect(mapped.cause).toBe(err);
  });

  it('keeps the SQLSTATE and position of a syntax error', () => {
    const mapped = mapDbError(
      pgError('42601', 'syntax error at or near "FORM"', { position: '10' }),
    );
    expect(mapped).toMatchObject({
      code: 'SQL_SYNTAX_ERROR',
      message: 'syntax error at or near "FORM" (position 10)',
      details: { sqlState: '42601', position: 10 },
    });
  });
});
