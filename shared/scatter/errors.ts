import { AppError } from '#shared/errors';

/** Why one shard did not contribute to a scatter-gather. */
export interface ShardFailure {
  readonly shard: string;
  readonly code: string;
  readonly message: string;
}

/**
 * Shards did not answer within the deadline (or could not be reached) under the `fail` policy,
 * or no shard answered at all. `details.failedShards` names them; map to HTTP 503.
 */
export class ShardsUnavailableError extends AppError {
  readonly code = 'SHARDS_UNAVAILABLE';
  readonly failedShards: readonly string[];

  constructor(failures: readonly ShardFailure[], options?: ErrorOptions) {
    const names = failures.map((f) => f.shard);
    super(
      `Shards ${names.join(', ')} did not answer (${failures.map((f) => `${f.shard}: ${f.code}`).join('; ')}); retry, or send failurePolicy "partial" to accept a result without them`,
      {
        ...options,
        // Codes only: driver messages name internal hosts and ports (they stay in the logs).
        details: {
          failedShards: names,
          failures: failures.map(({ shard, code }) => ({ shard, code })),
        },
      },
    );
    this.failedShards = Object.freeze([...names]);
  }
}
