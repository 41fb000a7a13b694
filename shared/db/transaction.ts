import { mapDbError } from './errors.ts';
import { acquireClient, type Database } from './pool.ts';

/** The narrow query surface most of dbopt needs; a pg.Pool, pg.PoolClient or a fake fits. */
export interface Queryable {
  query<R extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
  ): Promise<{ rows: R[] }>;
}

/**
 * Runs `work` inside `BEGIN READ ONLY` with `SET LOCAL statement_timeout`, then commits. The
 * time limit lives only as long as the transaction, so nothing leaks into the pooled session
 * (a session-level SET would pin an RDS Proxy connection for good). Errors are mapped to typed
 * errors; the transaction is rolled back and a broken connection is destroyed.
 *
 * @example
 * const plans = await withReadOnlyTransaction(db, { timeoutMs: 2_000 }, (tx) =>
 *   tx.query('/* dbopt *\/ EXPLAIN (FORMAT JSON) SELECT …'),
 * );
 */
export const withReadOnlyTransaction = async <T>(
  db: Database,
  options: { timeoutMs: number },
  work: (tx: Queryable) => Promise<T>,
): Promise<T> => {
  const checkout = await acquireClient(db);
  try {
    await checkout.client.query(
      `BEGIN /* dbopt */ READ ONLY; SET /* dbopt */ LOCAL statement_timeout = ${Math.trunc(options.timeoutMs)}`,
    );
    const result = await work(checkout.client as unknown as Queryable);
    await checkout.client.query('COMMIT');
    checkout.release();
    return result;
  } catch (err) {
    await checkout.discard(err, true);
    throw mapDbError(err);
  }
};
