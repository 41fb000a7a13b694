import { describe, expect, it } from 'vitest';
import { DatabaseError, DatabaseUnavailableError, SqlSyntaxError } from '#shared/errors';
import { noMetrics } from '#shared/metrics';
import { createTargetGuard, isTransientDbError } from '#shared/resilience';

const quiet = { metrics: noMetrics, logger: { warn: () => undefined } };
const options = {
  consecutiveFailures: 3,
  halfOpenAfterMs: 60_000,
  retries: 2,
  retryBaseDelayMs: 1,
};
const unavailable = (code?: string) =>
  new DatabaseUnavailableError('down', { cause: Object.assign(new Error('x'), { code }) });

describe('isTransientDbError', () => {
  it.each([
    [new DatabaseError('serialization', { details: { sqlState: '40001' } }), true],
    [new DatabaseError('deadlock', { details: { sqlState: '40P01' } }), true],
    [new DatabaseUnavailableError('shutdown', { details: { sqlState: '57P01' } }), true],
    [new DatabaseUnavailableError('starting', { details: { sqlState: '57P03' } }), true],
    [unavailable('ECONNRESET'), true],
    [unavailable('ECONNREFUSED'), false],
    [new SqlSyntaxError('SQL_SYNTAX_ERROR', 'bad', { details: { sqlState: '42601' } }), false],
    [new Error('plain'), false],
  ])('%s → %s', (err, transient) => {
    expect(isTransientDbError(err)).toBe(transient);
  });
});

describe('createTargetGuard', () => {
  it('retries a transient failure of a read-only statement, with bounded attempts', async () => {
    // Prepare
    const guard = createTargetGuard('primary', options, quiet);
    let calls = 0;
    // Act
    const result = await guard.run(
      async () => {
        calls += 1;
        if (calls < 3) throw new DatabaseError('conflict', { details: { sqlState: '40001' } });
        return 'ok';
      },
      { readOnly: true },
    );
    // Assess
    expect(result).toBe('ok');
    expect(calls).toBe(3);
  });

  it('never retries a write', async () => {
    const guard = createTargetGuard('primary', options, quiet);
    let calls = 0;
    const attempt = guard.run(
      async () => {
        calls += 1;
        throw new DatabaseError('conflict', { details: { sqlState: '40001' } });
      },
      { readOnly: false },
    );
    await expect(attempt).rejects.toMatchObject({ details: { sqlState: '40001' } });
    expect(calls).toBe(1);
  });

  it('opens after consecutive unavailable errors, then fails fast without calling the target', async () => {
    // Prepare
    const guard = createTargetGuard('s1', { ...options, retries: 0 }, quiet);
    let calls = 0;
    const failing = async () => {
      calls += 1;
      throw unavailable('ECONNREFUSED');
    };
    for (let i = 0; i < 3; i++)
      await expect(guard.run(failing, { readOnly: false })).rejects.toThrow();
    // Act
    const started = performance.now();
    const fast = guard.run(failing, { readOnly: false });
    // Assess
    await expect(fast).rejects.toBeInstanceOf(DatabaseUnavailableError);
    await expect(fast).rejects.toMatchObject({ details: { target: 's1', breaker: 'open' } });
    expect(calls).toBe(3);
    expect(guard.state()).toBe('open');
    expect(performance.now() - started).toBeLessThan(20);
  });

  it('does not count a slow or wrong statement against the target', async () => {
    const guard = createTargetGuard('primary', { ...options, retries: 0 }, quiet);
    for (let i = 0; i < 5; i++) {
      await expect(
        guard.run(
          async () => {
            throw new SqlSyntaxError('SQL_SYNTAX_ERROR', 'bad');
          },
          { readOnly: true },
        ),
      ).rejects.toThrow();
    }
    expect(guard.state()).toBe('closed');
  });
});
