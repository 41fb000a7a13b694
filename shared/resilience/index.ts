import {
  BrokenCircuitError,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  ExponentialBackoff,
  handleWhen,
  IsolatedCircuitError,
  retry,
} from 'cockatiel';
import { DatabaseUnavailableError, isAppError } from '#shared/errors';
import { type MetricsSink, MetricUnit } from '#shared/metrics';

/** How one database target (the primary, a shard) is protected. */
export interface TargetGuardOptions {
  /** Consecutive "unavailable" failures that open the breaker. */
  consecutiveFailures: number;
  /** How long the breaker stays open before one trial call goes through. */
  halfOpenAfterMs: number;
  /** Extra attempts for transient failures of read-only statements (0 = none). */
  retries: number;
  /** First back-off delay; later ones grow exponentially with decorrelated jitter. */
  retryBaseDelayMs: number;
}

export type BreakerState = 'closed' | 'open' | 'half-open' | 'isolated';

/**
 * Runs calls to one target through a circuit breaker (cockatiel) and bounded retries.
 * An open breaker fails fast with DatabaseUnavailableError (→ 503) and costs no latency.
 */
export interface TargetGuard {
  readonly name: string;
  run<T>(work: () => Promise<T>, options: { readOnly: boolean }): Promise<T>;
  state(): BreakerState;
}

/**
 * SQLSTATEs worth another attempt, and only for read-only statements (a retried write could
 * apply twice): admin shutdown / cannot connect now (failover), serialization failure and
 * deadlock. https://www.postgresql.org/docs/15/errcodes-appendix.html
 */
const TRANSIENT_STATES: ReadonlySet<string> = new Set(['57P01', '57P03', '40001', '40P01']);

const causeCode = (err: Error): string | undefined => {
  const cause = (err as { cause?: { code?: unknown } }).cause;
  return typeof cause?.code === 'string' ? cause.code : undefined;
};

/** Transient: a reset connection, a failover in progress, a serialization conflict. */
export const isTransientDbError = (err: Error): boolean => {
  if (!isAppError(err)) return false;
  const sqlState = err.details.sqlState;
  if (typeof sqlState === 'string' && TRANSIENT_STATES.has(sqlState)) return true;
  return err instanceof DatabaseUnavailableError && causeCode(err) === 'ECONNRESET';
};

/** What the breaker counts: the target being unreachable, not a slow or wrong statement. */
const isUnavailable = (err: Error): boolean => err instanceof DatabaseUnavailableError;

const STATE_NAMES: Readonly<Record<CircuitState, BreakerState>> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half-open',
  [CircuitState.Isolated]: 'isolated',
};

export const createTargetGuard = (
  name: string,
  options: TargetGuardOptions,
  deps: { metrics: MetricsSink; logger: { warn(message: string, ...extra: unknown[]): void } },
): TargetGuard => {
  const breaker = circuitBreaker(handleWhen(isUnavailable), {
    halfOpenAfter: options.halfOpenAfterMs,
    breaker: new ConsecutiveBreaker(options.consecutiveFailures),
  });
  breaker.onStateChange((state) => {
    const stateName = STATE_NAMES[state];
    deps.logger.warn('database circuit breaker changed state', { target: name, state: stateName });
    deps.metrics.addMetric(
      stateName === 'open'
        ? 'BreakerOpened'
        : stateName === 'closed'
          ? 'BreakerClosed'
          : 'BreakerHalfOpen',
      MetricUnit.Count,
      1,
    );
  });
  const retrying = retry(handleWhen(isTransientDbError), {
    maxAttempts: options.retries,
    backoff: new ExponentialBackoff({
      initialDelay: options.retryBaseDelayMs,
      maxDelay: options.retryBaseDelayMs * 8,
    }),
  });
  retrying.onRetry(() => deps.metrics.addMetric('DbRetries', MetricUnit.Count, 1));

  const viaBreaker = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await breaker.execute(work);
    } catch (err) {
      if (err instanceof BrokenCircuitError || err instanceof IsolatedCircuitError) {
        throw new DatabaseUnavailableError(
          `Database target ${name} is failing; its circuit breaker is open, retry in a few seconds`,
          { cause: err, details: { target: name, breaker: STATE_NAMES[breaker.state] } },
        );
      }
      throw err;
    }
  };

  return Object.freeze({
    name,
    run: <T>(work: () => Promise<T>, { readOnly }: { readOnly: boolean }): Promise<T> =>
      readOnly && options.retries > 0 ? retrying.execute(() => viaBreaker(work)) : viaBreaker(work),
    state: () => STATE_NAMES[breaker.state],
  });
};
