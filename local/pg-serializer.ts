/**
 * A PostgreSQL wire-protocol front that lets several clients share ONE backend safely.
 *
 * pglite-socket multiplexes its client connections onto PGlite one protocol MESSAGE at a time,
 * so two clients using the extended query protocol (Parse/Bind/Describe/Execute/Sync — what
 * `pg` sends for every parameterised query) overwrite each other's unnamed statement and
 * portal: "bind message supplies 6 parameters, but prepared statement "" requires 1", or rows
 * delivered to the wrong client. This front sits between the clients and pglite-socket, one
 * upstream connection per client, and serializes whole UNITS OF WORK with one mutex:
 *
 * - a client takes the mutex when it sends the first message of a unit (the startup packet, a
 *   Query, a Parse…), and keeps it until the upstream answers ReadyForQuery ('Z') with
 *   transaction status 'I' (idle) for the last Sync/Query/FunctionCall it sent, with no
 *   extended-protocol message pending a Sync. So one Sync-terminated extended exchange, one
 *   simple Query and one whole transaction each run without anything else in between;
 *   pipelined units from the same client run back to back.
 * - other clients' messages wait here, in order (FIFO between clients). A client idle inside a
 *   transaction keeps the mutex: the others wait, as they would for its row locks on a real
 *   server. That is not a deadlock unless the holder itself waits for another connection
 *   (then use one connection, as on a real server with a lock conflict); there is no timer
 *   here — clients bound their waits with their own `query_timeout`.
 * - when a client goes away (Terminate, EOF or error), the messages it had already sent still
 *   run (as on a real server), then the front finishes its unit: a Sync if an extended
 *   exchange was left open, a ROLLBACK if a transaction was left open; only then does the
 *   next client get the backend.
 * - SSLRequest and GSSENCRequest are answered 'N' (no TLS here); a CancelRequest connection is
 *   closed (PGlite cannot interrupt a statement). More than `maxConnections` clients get
 *   FATAL 53300 "sorry, too many clients already", like a real server.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface PgSerializerOptions {
  /** Where the single backend (pglite-socket) listens. */
  upstream: { host: string; port: number };
  host: string;
  /** 0 lets the OS pick a free port. */
  port: number;
  /** Clients served at once (each holds one upstream connection until it is finished). */
  maxConnections: number;
}

export interface PgSerializer {
  readonly host: string;
  readonly port: number;
  /** Stops accepting, closes every client and upstream connection. Safe to call twice. */
  close(): Promise<void>;
}

const SSL_REQUEST_CODE = 80_877_103;
const GSSENC_REQUEST_CODE = 80_877_104;
const CANCEL_REQUEST_CODE = 80_877_102;

/** Past this much queued input from a client waiting for the backend, stop reading it. */
const MAX_QUEUED_BYTES = 1024 * 1024;

const SYNC = Buffer.from([0x53, 0, 0, 0, 4]); // 'S'
const ROLLBACK = queryMessage('ROLLBACK');

function queryMessage(sql: string): Buffer {
  const body = Buffer.from(`${sql}\0`, 'utf8');
  const header = Buffer.alloc(5);
  header.write('Q', 0, 'latin1');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

/** FATAL ErrorResponse, as a real server sends before closing the connection. */
const fatalMessage = (sqlState: string, message: string): Buffer => {
  const fields = Buffer.from(`SFATAL\0VFATAL\0C${sqlState}\0M${message}\0\0`, 'utf8');
  const header = Buffer.alloc(5);
  header.write('E', 0, 'latin1');
  header.writeInt32BE(fields.length + 4, 1);
  return Buffer.concat([header, fields]);
};

/**
 * Splits a client's byte stream into whole messages: first untyped startup-phase packets
 * (int32 length + int32 code), then typed ones (type byte + int32 length).
 */
class FrontendFrames {
  private chunks: Buffer[] = [];
  private size = 0;
  typed = false;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  /** The next complete message, or undefined when more bytes are needed. */
  next(): Buffer | undefined {
    const headerLength = this.typed ? 5 : 4;
    if (this.size < headerLength) return undefined;
    const head = this.peek(headerLength);
    const length = this.typed ? 1 + head.readInt32BE(1) : head.readInt32BE(0);
    if (length < headerLength) throw new Error(`invalid message length ${length}`);
    if (this.size < length) return undefined;
    const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    const message = all.subarray(0, length);
    const rest = all.subarray(length);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.size = rest.length;
    return message;
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length >= n) return first;
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined;
  }
}

/**
 * Follows the backend's typed messages across chunk boundaries without copying them, and
 * reports each ReadyForQuery's transaction status.
 */
class BackendScanner {
  private header = Buffer.alloc(5);
  private headerFill = 0;
  private bodyLeft = 0;
  private inReadyForQuery = false;

  constructor(private readonly onReadyForQuery: (status: string) => void) {}

  scan(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.bodyLeft > 0) {
        if (this.inReadyForQuery) {
          this.inReadyForQuery = false;
          this.onReadyForQuery(String.fromCharCode(chunk[i] as number));
        }
        const take = Math.min(this.bodyLeft, chunk.length - i);
        this.bodyLeft -= take;
        i += take;
        continue;
      }
      this.header[this.headerFill++] = chunk[i++] as number;
      if (this.headerFill < 5) continue;
      this.headerFill = 0;
      this.bodyLeft = this.header.readInt32BE(1) - 4;
      this.inReadyForQuery = this.header[0] === 0x5a && this.bodyLeft > 0; // 'Z'
    }
  }
}

interface Lock {
  owner: Connection | undefined;
  waiters: Connection[];
}

/** One client and its upstream connection. */
class Connection {
  private readonly frames = new FrontendFrames();
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private waitingUpstreamDrain = false;
  private waitingClientDrain = false;
  private readonly scanner: BackendScanner;
  private holding = false;
  /** Sync/Query/FunctionCall/startup messages sent upstream whose 'Z' has not come back. */
  private awaitingReady = 0;
  /** An extended-protocol message went upstream after the last Sync. */
  private syncPending = false;
  private txStatus = 'I';
  private clientGone = false;
  private finished = false;
  private startupSent = false;

  constructor(
    private readonly client: Socket,
    private readonly upstream: Socket,
    private readonly lock: Lock,
  ) {
    this.scanner = new BackendScanner((status) => this.onReadyForQuery(status));
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.on('data', (chunk: Buffer) => this.onClientData(chunk));
    client.on('end', () => this.onClientGone());
    client.on('close', () => this.onClientGone());
    client.on('error', () => this.onClientGone());
    upstream.on('data', (chunk: Buffer) => this.onUpstreamData(chunk));
    upstream.on('close', () => this.destroy());
    upstream.on('error', () => this.destroy());
  }

  /** The upstream went away, or the server stops: drop everything, free the lock. */
  destroy(): void {
    if (this.finished) return;
    this.finished = true;
    this.clientGone = true;
    this.queue.length = 0;
    this.client.destroy();
    this.upstream.destroy();
    this.leaveLock();
  }

  grant(): void {
    this.holding = true;
    this.client.resume();
    this.pump();
  }

  private onClientData(chunk: Buffer): void {
    if (this.clientGone) return;
    this.frames.push(chunk);
    try {
      for (let m = this.frames.next(); m; m = this.frames.next()) {
        if (!this.onClientMessage(m)) return;
      }
    } catch {
      this.onClientGone(); // unframeable input: nothing sensible can be forwarded
      return;
    }
    this.pump();
  }

  /** Returns false when the client is done sending. */
  private onClientMessage(message: Buffer): boolean {
    if (!this.frames.typed) {
      const code = message.length >= 8 ? message.readInt32BE(4) : 0;
      if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
        this.client.write('N');
        return true;
      }
      if (code === CANCEL_REQUEST_CODE) {
        this.onClientGone();
        return false;
      }
      this.frames.typed = true; // the StartupMessage; typed messages follow
      this.queue.push(message);
      this.queuedBytes += message.length;
      return true;
    }
    if (message[0] === 0x58) {
      // Terminate: what was sent before it still runs; the connection then finishes.
      this.onClientGone();
      return false;
    }
    this.queue.push(message);
    this.queuedBytes += message.length;
    // Waiting for the backend: stop reading a client that keeps sending (TCP backpressure).
    if (!this.holding && this.queuedBytes > MAX_QUEUED_BYTES) this.client.pause();
    return true;
  }

  private onClientGone(): void {
    if (this.clientGone) return;
    this.clientGone = true;
    this.client.destroy();
    this.upstream.resume(); // its output is discarded now; it must keep flowing to reach 'Z'
    this.pump();
  }

  /** Sends what the client queued, taking the lock first. */
  private pump(): void {
    if (this.finished) return;
    if (this.queue.length > 0) {
      if (!this.holding) {
        this.requestLock();
        return;
      }
      for (const message of this.queue) this.forward(message);
      this.queue.length = 0;
      this.queuedBytes = 0;
    }
    if (this.clientGone) this.finish();
  }

  private forward(message: Buffer): void {
    if (!this.startupSent) {
      // The StartupMessage: its exchange (authentication, parameters) ends with a 'Z' too.
      this.startupSent = true;
      this.awaitingReady++;
      this.upstream.write(message);
      return;
    }
    switch (message[0]) {
      case 0x53: // Sync
        this.syncPending = false;
        this.awaitingReady++;
        break;
      case 0x51: // Query
      case 0x46: // FunctionCall
        this.awaitingReady++;
        break;
      case 0x50: // Parse
      case 0x42: // Bind
      case 0x44: // Describe
      case 0x45: // Execute
      case 0x43: // Close
      case 0x48: // Flush
        this.syncPending = true;
        break;
      default:
      // CopyData/CopyDone/CopyFail belong to a Query already counted.
    }
    if (!this.upstream.write(message) && !this.clientGone && !this.waitingUpstreamDrain) {
      this.waitingUpstreamDrain = true;
      this.client.pause();
      this.upstream.once('drain', () => {
        this.waitingUpstreamDrain = false;
        this.client.resume();
      });
    }
  }

  private onUpstreamData(chunk: Buffer): void {
    if (!this.clientGone && !this.client.write(chunk) && !this.waitingClientDrain) {
      this.waitingClientDrain = true;
      this.upstream.pause();
      this.client.once('drain', () => {
        this.waitingClientDrain = false;
        this.upstream.resume();
      });
    }
    this.scanner.scan(chunk);
  }

  private onReadyForQuery(status: string): void {
    if (this.awaitingReady > 0) this.awaitingReady--;
    this.txStatus = status;
    if (this.clientGone) {
      this.finish();
      return;
    }
    if (this.holding && this.unitDone()) this.leaveLock();
  }

  private unitDone(): boolean {
    return (
      this.awaitingReady === 0 &&
      this.txStatus === 'I' &&
      !this.syncPending &&
      this.queue.length === 0
    );
  }

  /** The client is gone and its queue was sent: close its unit, then the upstream. */
  private finish(): void {
    if (this.finished || this.queue.length > 0) return;
    if (this.holding) {
      if (this.syncPending) this.forward(SYNC);
      if (this.awaitingReady > 0) return; // finish() runs again on the next 'Z'
      if (this.txStatus !== 'I') {
        this.forward(ROLLBACK);
        return;
      }
    }
    this.finished = true;
    this.upstream.end();
    this.leaveLock();
  }

  private requestLock(): void {
    if (this.lock.owner === undefined) {
      this.lock.owner = this;
      this.grant();
    } else if (!this.lock.waiters.includes(this)) {
      this.lock.waiters.push(this);
    }
  }

  private leaveLock(): void {
    const waiting = this.lock.waiters.indexOf(this);
    if (waiting >= 0) this.lock.waiters.splice(waiting, 1);
    if (!this.holding) return;
    this.holding = false;
    this.lock.owner = undefined;
    const next = this.lock.waiters.shift();
    if (next) {
      this.lock.owner = next;
      next.grant();
    }
  }
}

/** Starts the front; resolves once it listens. */
export const startPgSerializer = async (options: PgSerializerOptions): Promise<PgSerializer> => {
  const lock: Lock = { owner: undefined, waiters: [] };
  const connections = new Set<Connection>();
  const pendingSockets = new Set<Socket>();

  const server: Server = createServer((client) => {
    if (connections.size + pendingSockets.size >= options.maxConnections) {
      client.on('error', () => client.destroy()); // a reset while refusing it changes nothing
      client.end(fatalMessage('53300', 'sorry, too many clients already'));
      return;
    }
    const upstream = createConnection(options.upstream.port, options.upstream.host);
    pendingSockets.add(client);
    const early: Buffer[] = [];
    const buffer = (chunk: Buffer) => early.push(chunk);
    const abandon = () => {
      pendingSockets.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('data', buffer);
    client.once('close', abandon);
    client.on('error', abandon);
    upstream.once('error', abandon);
    upstream.once('connect', () => {
      pendingSockets.delete(client);
      client.off('data', buffer);
      client.off('close', abandon);
      client.off('error', abandon);
      upstream.off('error', abandon);
      const connection = new Connection(client, upstream, lock);
      connections.add(connection);
      // The client's slot is free once its upstream connection is closed, not before.
      upstream.once('close', () => connections.delete(connection));
      for (const chunk of early) client.emit('data', chunk);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;

  let closing: Promise<void> | undefined;
  return {
    host: options.host,
    port,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const c of [...connections]) c.destroy();
        for (const s of [...pendingSockets]) s.destroy();
      });
      return closing;
    },
  };
};
