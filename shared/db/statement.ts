import pg from 'pg';
// pg's value serializer (Date → ISO, arrays → '{…}', objects → JSON), as pg.Query uses it;
// typed in pg-internals.d.ts because @types/pg does not describe it.
import pgUtils from 'pg/lib/utils.js';
import { ResultTooLargeError } from '#shared/errors';
import { mapDbError } from './errors.ts';
import { acquireClient, type Database } from './pool.ts';
import { apiTypeParsers } from './types.ts';

const { prepareValue } = pgUtils;

/** The parts of pg's Result class used to decode rows with the client's type parsers. */
interface PgResult {
  command: string | null;
  rowCount: number | null;
  rows: Record<string, unknown>[];
  fields: WireField[];
  addFields(fields: WireField[]): void;
  parseRow(values: unknown[]): Record<string, unknown>;
  addCommandComplete(msg: { text: string }): void;
}
const PgResultClass = pg.Result as unknown as new (
  rowMode: string | undefined,
  types: unknown,
) => PgResult;

/** One column of a result, as the protocol's RowDescription describes it. */
export interface ResultField {
  name: string;
  dataTypeId: number;
}

export interface StatementRequest {
  sql: string;
  params: readonly unknown[];
  /** Run inside `BEGIN READ ONLY`; PostgreSQL itself then rejects writes (SQLSTATE 25006). */
  readOnly: boolean;
  /** Server-side limit, applied with `SET LOCAL statement_timeout` for this transaction only. */
  timeoutMs: number;
  /** Largest number of rows to return; the server stops producing rows after maxRows + 1. */
  maxRows: number;
  /**
   * Writes only: called with the result before COMMIT; throwing rolls the write back (e.g. a
   * response-size cap), so a refusal never leaves a committed write behind.
   */
  beforeCommit?: (result: StatementResult) => void;
}

export interface StatementResult {
  /** Command tag verb: SELECT, INSERT, UPDATE, DELETE, MERGE… */
  command: string;
  rows: Record<string, unknown>[];
  /** Rows returned, or rows affected for a write without RETURNING. */
  rowCount: number;
  fields: ResultField[];
}

interface WireField {
  name: string;
  dataTypeID: number;
}

/**
 * A pg "submittable" that sends a statement together with its transaction prologue as one
 * batch of extended-protocol messages closed by a single Sync, so it costs one round trip.
 *
 * - Reads: `set_config('transaction_read_only', 'on', true)` and a transaction-local
 *   `statement_timeout`, then the statement. Everything before a Sync runs in one implicit
 *   transaction, so PostgreSQL itself rejects writes (SQLSTATE 25006) and nothing outlives
 *   the transaction: no session state, so no RDS Proxy pinning.
 * - Writes: `BEGIN READ WRITE`, the same local timeout, then the statement; the caller
 *   commits or rolls back in a second round trip once the row cap has been checked.
 *
 * The statement's Execute asks for at most `maxRows + 1` rows: the server never produces
 * more, and a PortalSuspended reply proves the cap was hit.
 *
 * https://www.postgresql.org/docs/15/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 */
class StatementBatch {
  callback?: (err: Error | null, result?: StatementBatch) => void;
  /** Read by pg: its client-side timer for this submittable. */
  readonly query_timeout: number;
  readonly result = new PgResultClass(undefined, apiTypeParsers);
  rowLimitHit = false;
  command = '';
  rowCount = 0;
  /** Prologue statements whose CommandComplete has not arrived yet. */
  private pendingPrologue: number;
  private readonly prologue: readonly string[];

  constructor(
    private readonly request: StatementRequest,
    clientTimeoutMs: number,
  ) {
    this.query_timeout = clientTimeoutMs;
    // timeoutMs is a validated integer; inlined because set_config's value must be text anyway.
    const timeout = `set_config('statement_timeout', '${Math.trunc(request.timeoutMs)}', true)`;
    this.prologue = request.readOnly
      ? [`SELECT set_config('transaction_read_only', 'on', true), ${timeout}`]
      : ['BEGIN READ WRITE', `SELECT ${timeout}`];
    this.pendingPrologue = this.prologue.length;
  }

  submit(connection: PgConnection): Error | null {
    let values: unknown[];
    try {
      values = this.request.params.map((p) => prepareValue(p));
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
    connection.stream.cork?.();
    try {
      for (const text of this.prologue) {
        connection.parse({ text, name: '', types: [] });
        connection.bind({ portal: '', statement: '', values: [] });
        connection.execute({ portal: '', rows: 0 });
      }
      connection.parse({ text: this.request.sql, name: '', types: [] });
      connection.bind({ portal: '', statement: '', values });
      connection.describe({ type: 'P', name: '' });
      connection.execute({ portal: '', rows: this.request.maxRows + 1 });
      connection.sync();
    } finally {
      connection.stream.uncork?.();
    }
    return null;
  }

  handleRowDescription(msg: { fields: WireField[] }): void {
    this.result.addFields(msg.fields);
  }

  handleDataRow(msg: { fields: unknown[] }): void {
    // The prologue's set_config rows are not described and not kept.
    if (this.pendingPrologue === 0) this.result.rows.push(this.result.parseRow(msg.fields));
  }

  handleCommandComplete(msg: { text: string }): void {
    if (this.pendingPrologue > 0) {
      this.pendingPrologue -= 1;
      return;
    }
    this.result.addCommandComplete(msg);
    this.command = this.result.command ?? '';
    this.rowCount = this.result.rowCount ?? this.result.rows.length;
  }

  handlePortalSuspended(): void {
    this.rowLimitHit = true;
  }

  handleEmptyQuery(): void {}

  handleError(err: Error): void {
    this.callback?.(err);
    this.callback = undefined;
  }

  handleReadyForQuery(): void {
    this.callback?.(null, this);
    this.callback = undefined;
  }

  // pg calls these for COPY; statements that start COPY are refused by policy before this.
  handleCopyInResponse(): void {}
  handleCopyData(): void {}
}

interface PgConnection {
  stream: { cork?: () => void; uncork?: () => void };
  parse(q: { text: string; name: string; types: unknown[] }): void;
  bind(q: { portal: string; statement: string; values: unknown[] }): void;
  describe(q: { type: 'P' | 'S'; name: string }): void;
  execute(q: { portal: string; rows: number }): void;
  sync(): void;
}

const runBatch = (client: pg.PoolClient, batch: StatementBatch): Promise<StatementBatch> =>
  new Promise((resolve, reject) => {
    batch.callback = (err, res) => (err ? reject(err) : resolve(res as StatementBatch));
    client.query(batch as never);
  });

const toResult = (batch: StatementBatch): StatementResult => ({
  command: batch.command,
  rows: batch.result.rows,
  rowCount: batch.rowCount,
  fields: batch.result.fields.map((f) => ({
    name: f.name,
    dataTypeId: f.dataTypeID,
  })),
});

const rowLimitError = (maxRows: number) =>
  new ResultTooLargeError(
    'ROW_LIMIT_EXCEEDED',
    `The statement returns more than maxRows (${maxRows}) rows; add a LIMIT or raise maxRows`,
    { details: { maxRows } },
  );

/**
 * Runs one statement in its own transaction with a server-side time limit and a row cap.
 * Reads cost one round trip (see {@link StatementBatch}). Writes commit only after the row
 * cap is checked, so a refused result never leaves a committed write behind.
 * A connection that timed out or failed is destroyed, never handed back to the pool.
 *
 * @throws the typed errors of {@link mapDbError}, or ResultTooLargeError('ROW_LIMIT_EXCEEDED').
 */
export const executeStatement = async (
  db: Database,
  request: StatementRequest,
  clientGraceMs = 1_000,
): Promise<StatementResult> => {
  const checkout = await acquireClient(db);
  const batch = new StatementBatch(request, request.timeoutMs + clientGraceMs);
  try {
    await runBatch(checkout.client, batch);
    if (!request.readOnly) {
      // discard() rolls the write back: a refused result leaves nothing committed.
      if (batch.rowLimitHit) throw rowLimitError(request.maxRows);
      request.beforeCommit?.(toResult(batch));
      await checkout.client.query('COMMIT');
    }
    checkout.release();
  } catch (err) {
    // A read's implicit transaction already ended at its Sync; a write's is still open.
    await checkout.discard(err, !request.readOnly);
    throw mapDbError(err);
  }
  if (batch.rowLimitHit) throw rowLimitError(request.maxRows);
  return toResult(batch);
};
