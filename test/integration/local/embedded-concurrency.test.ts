import { connect as netConnect, type Socket } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../../../local/embedded-postgres.ts';

// One embedded PostgreSQL (PGlite in a worker thread, behind the serializing front) for the
// whole file: starting it takes several seconds. Every test closes the connections it opens.
// Room for the file's client and the 4 pools × 2 of the first test.
const MAX_CONNECTIONS = 10;
let embedded: EmbeddedPostgres;
let client: pg.Client;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The front frees a closed client's slot only once pglite-socket has let go of its upstream
 * connection, a few ms later (more on a loaded machine). So a test that opens connections
 * right after the previous one closed its own can meet a transient 53300: retry that for a
 * while. `retryMs: 0` sees the refusal itself.
 */
const withSlotRetry = async <T>(open: () => Promise<T>, retryMs = 5_000): Promise<T> => {
  const deadline = Date.now() + retryMs;
  for (;;) {
    try {
      return await open();
    } catch (err) {
      const refused =
        (err as { code?: string }).code === '53300' ||
        /connection closed before 'Z'/.test((err as Error).message);
      if (!refused || Date.now() >= deadline) throw err;
      await sleep(25);
    }
  }
};

const connect = (options: pg.ClientConfig = {}, retryMs = 5_000): Promise<pg.Client> =>
  withSlotRetry(async () => {
    const c = new pg.Client({ connectionString: embedded.url, ...options });
    try {
      await c.connect();
    } catch (err) {
      await c.end().catch(() => undefined);
      throw err;
    }
    return c;
  }, retryMs);

/** Resolves to whether `promise` settled within `ms`, without consuming its outcome. */
const settlesWithin = (promise: Promise<unknown>, ms: number): Promise<boolean> =>
  Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    sleep(ms).then(() => false),
  ]);

// ── a minimal wire-protocol client, to send what `pg` never sends on its own ──

const typed = (type: string, body: Buffer): Buffer => {
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
};
const cstr = (s: string) => Buffer.from(`${s}\0`, 'utf8');
const int16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const wire = {
  startup: () => {
    const body = Buffer.concat([
      int32(196_608),
      cstr('user'),
      cstr('postgres'),
      cstr('database'),
      cstr('postgres'),
      Buffer.from([0]),
    ]);
    return Buffer.concat([int32(body.length + 4), body]);
  },
  sslRequest: () => Buffer.concat([int32(8), int32(80_877_103)]),
  cancelRequest: () => Buffer.concat([int32(16), int32(80_877_102), int32(1), int32(2)]),
  parse: (sql: string) => typed('P', Buffer.concat([cstr(''), cstr(sql), int16(0)])),
  bind: (params: string[]) =>
    typed(
      'B',
      Buffer.concat([
        cstr(''),
        cstr(''),
        int16(0),
        int16(params.length),
        ...params.flatMap((p) => [int32(Buffer.byteLength(p)), Buffer.from(p)]),
        int16(0),
      ]),
    ),
  execute: () => typed('E', Buffer.concat([cstr(''), int32(0)])),
  flush: () => typed('H', Buffer.alloc(0)),
  sync: () => typed('S', Buffer.alloc(0)),
};

interface BackendMessage {
  type: string;
  body: Buffer;
}

class RawClient {
  private buffer = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.wake?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on('error', () => {});
  }

  static async open(port: number): Promise<RawClient> {
    const socket = netConnect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  /** Connects and finishes the startup exchange. */
  static login(port: number): Promise<RawClient> {
    return withSlotRetry(async () => {
      const raw = await RawClient.open(port);
      raw.send(wire.startup());
      await raw.readUntil('Z');
      return raw;
    });
  }

  send(...messages: Buffer[]): void {
    this.socket.write(Buffer.concat(messages));
  }

  /** Raw bytes received so far (before any framing), e.g. the one-byte SSL answer. */
  async readBytes(n: number): Promise<Buffer> {
    while (this.buffer.length < n && !this.closed) await new Promise<void>((r) => (this.wake = r));
    const bytes = this.buffer.subarray(0, n);
    this.buffer = this.buffer.subarray(n);
    return bytes;
  }

  /** Messages up to and including the first of type `until`. */
  async readUntil(until: string): Promise<BackendMessage[]> {
    const out: BackendMessage[] = [];
    for (;;) {
      while (this.buffer.length >= 5 && this.buffer.length >= 1 + this.buffer.readInt32BE(1)) {
        const length = 1 + this.buffer.readInt32BE(1);
        const message = {
          type: String.fromCharCode(this.buffer[0] as number),
          body: this.buffer.subarray(5, length),
        };
        this.buffer = this.buffer.subarray(length);
        out.push(message);
        if (message.type === until) return out;
      }
      if (this.closed) throw new Error(`connection closed before '${until}'`);
      await new Promise<void>((r) => (this.wake = r));
    }
  }
}

/** First column of each DataRow, as text. */
const firstColumns = (messages: BackendMessage[]): string[] =>
  messages
    .filter((m) => m.type === 'D')
    .map((m) => m.body.subarray(6, 6 + m.body.readInt32BE(2)).toString());

/** The 'M' field of ErrorResponses. */
const errorMessages = (messages: BackendMessage[]): string[] =>
  messages
    .filter((m) => m.type === 'E')
    .map((m) => /M([^\0]*)\0/.exec(m.body.toString())?.[1] ?? '');

beforeAll(async () => {
  embedded = await startEmbeddedPostgres({ port: 0, maxConnections: MAX_CONNECTIONS });
  client = await connect();
  await client.query('CREATE TABLE conc_items (id int PRIMARY KEY, label text NOT NULL)');
  await client.query(`INSERT INTO conc_items SELECT g, 'item ' || g FROM generate_series(1, 50) g`);
  await client.query('CREATE TABLE conc_tx (id int PRIMARY KEY)');
}, 120_000);

afterAll(async () => {
  await client?.end();
  await embedded?.stop();
});

describe('embedded PostgreSQL with concurrent clients', () => {
  it('gives every parameterised query its own result when 4 pools run 300 queries at once', async () => {
    // Prepare: shapes with different parameter counts and result columns. The padding
    // parameter makes each Bind span several TCP reads, which is when pglite-socket alone let
    // another connection's Parse in between (wrong parameter counts, other clients' rows).
    const pools = Array.from(
      { length: 4 },
      () => new pg.Pool({ connectionString: embedded.url, max: 2 }),
    );
    const pad = (i: number) => 'x'.repeat(150_000 + i);
    const shapes = [
      (i: number) => ({
        sql: 'SELECT $1::int + 1 AS v, length($2::text) AS pad',
        params: [i, pad(i)],
        expected: [{ v: i + 1, pad: 150_000 + i }],
      }),
      (i: number) => ({
        sql: 'SELECT $1::text AS s, $2::int AS n, length($3::text) AS pad',
        params: [`s${i}`, i, pad(i)],
        expected: [{ s: `s${i}`, n: i, pad: 150_000 + i }],
      }),
      (i: number) => ({
        sql: 'SELECT $1::int + $2::int + $3::int + $4::int + $5::int + $6::int AS total, length($7::text) AS pad',
        params: [i, 1, 2, 3, 4, 5, pad(i)],
        expected: [{ total: i + 15, pad: 150_000 + i }],
      }),
      (i: number) => ({
        sql: 'SELECT id, label FROM conc_items WHERE id BETWEEN $1 AND $2 AND length($3::text) > 0 ORDER BY id',
        params: [(i % 45) + 1, (i % 45) + 3, pad(i)],
        expected: [1, 2, 3].map((d) => ({ id: (i % 45) + d, label: `item ${(i % 45) + d}` })),
      }),
      (i: number) => ({ sql: 'SELECT $1::int AS v', params: [i], expected: [{ v: i }] }),
    ];
    const jobs = Array.from({ length: 300 }, (_, i) => ({
      pool: pools[i % 4] as pg.Pool,
      ...(
        shapes[i % shapes.length] as (i: number) => {
          sql: string;
          params: unknown[];
          expected: unknown[];
        }
      )(i),
    }));

    // Act
    const outcomes = await Promise.all(
      jobs.map((job) =>
        job.pool.query(job.sql, job.params).then(
          (r) => r.rows,
          (err: Error) => `error: ${err.message}`,
        ),
      ),
    );
    await Promise.all(pools.map((p) => p.end()));

    // Assess
    const mismatches = jobs.flatMap((job, i) =>
      JSON.stringify(outcomes[i]) === JSON.stringify(job.expected)
        ? []
        : [{ i, sql: job.sql, got: JSON.stringify(outcomes[i]).slice(0, 200) }],
    );
    expect(mismatches).toEqual([]);
  });

  it('gives every client its own result when 8 clients send each message of their exchanges in a separate write', async () => {
    // Prepare: drivers may write Parse, Bind, Execute and Sync separately (or TCP splits
    // them); each write is then its own turn for pglite-socket.
    const shapes = [
      (i: number) => ({ sql: 'SELECT $1::int + 1', params: [`${i}`], expected: `${i + 1}` }),
      (i: number) => ({
        sql: `SELECT $2::text || ':' || $1::text`,
        params: [`a${i}`, `b${i}`],
        expected: `b${i}:a${i}`,
      }),
      (i: number) => ({
        sql: 'SELECT $1::int + $2::int + $3::int + $4::int + $5::int + $6::int',
        params: [`${i}`, '1', '2', '3', '4', '5'],
        expected: `${i + 15}`,
      }),
    ];
    const clients = await Promise.all(
      Array.from({ length: 8 }, () => RawClient.login(embedded.port)),
    );
    const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
    const run = async (raw: RawClient, c: number) => {
      const outcomes: { expected: string; got: string[]; errors: string[] }[] = [];
      for (let n = 0; n < 25; n++) {
        const i = c * 100 + n;
        const { sql, params, expected } = (shapes[i % shapes.length] as (typeof shapes)[0])(i);
        for (const message of [wire.parse(sql), wire.bind(params), wire.execute(), wire.sync()]) {
          raw.send(message);
          await tick();
        }
        const answer = await raw.readUntil('Z');
        outcomes.push({ expected, got: firstColumns(answer), errors: errorMessages(answer) });
      }
      return outcomes;
    };

    // Act
    const outcomes = (await Promise.all(clients.map(run))).flat();
    for (const raw of clients) raw.socket.destroy();

    // Assess
    expect(outcomes).toHaveLength(200);
    expect(outcomes.filter((o) => o.errors.length > 0 || o.got.join() !== o.expected)).toEqual([]);
  });

  it('keeps the unnamed statement of an extended exchange that spans several writes until its Sync', async () => {
    // Prepare: A parses, and binds only after another client has sent a whole query.
    const a = await RawClient.login(embedded.port);
    const b = await connect();
    a.send(wire.parse('SELECT $1::int + 1 AS v'), wire.flush());
    await a.readUntil('1'); // ParseComplete

    // Act
    const other = b.query<{ s: string; n: number }>('SELECT $1::text AS s, $2::int AS n', ['b', 2]);
    const otherRanEarly = await settlesWithin(other, 150);
    a.send(wire.bind(['41']), wire.execute(), wire.sync());
    const answer = await a.readUntil('Z');

    // Assess
    expect(errorMessages(answer)).toEqual([]);
    expect(firstColumns(answer)).toEqual(['42']);
    expect(otherRanEarly).toBe(false);
    expect((await other).rows).toEqual([{ s: 'b', n: 2 }]);
    a.socket.destroy();
    await b.end();
  });

  it('carries multi-megabyte parameters and results intact beside small queries', async () => {
    // Prepare
    const big = await Promise.all([connect(), connect()]);
    const small = await connect();
    const payload = 'y'.repeat(4_000_000);

    // Act
    const [echoed, rows, tiny] = await Promise.all([
      big[0]?.query<{ len: number; tail: string }>(
        'SELECT length($1::text) AS len, right($1::text, 3) || $2::text AS tail',
        [payload, 'z'],
      ),
      big[1]?.query<{ s: string }>(
        `SELECT repeat(chr(97 + g % 26), 1000000) AS s FROM generate_series(0, 7) g`,
      ),
      small.query<{ v: number }>('SELECT $1::int AS v', [5]),
    ]);

    // Assess
    expect(echoed?.rows).toEqual([{ len: 4_000_000, tail: 'yyyz' }]);
    expect(rows?.rows.map((r) => `${r.s.length}${r.s[0]}`)).toEqual(
      [0, 1, 2, 3, 4, 5, 6, 7].map((g) => `1000000${String.fromCharCode(97 + g)}`),
    );
    expect(tiny.rows).toEqual([{ v: 5 }]);
    await Promise.all([...big.map((c) => c.end()), small.end()]);
  });

  it('makes other clients wait while one is inside a transaction, then runs them after COMMIT', async () => {
    // Prepare
    const a = await connect();
    const b = await connect();
    await a.query('BEGIN');
    await a.query('INSERT INTO conc_tx VALUES ($1)', [1]);

    // Act
    const other = b.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM conc_tx WHERE id = $1',
      [1],
    );
    const otherRanEarly = await settlesWithin(other, 200);
    const inside = await a.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM conc_tx WHERE id = $1',
      [1],
    );
    await a.query('COMMIT');

    // Assess: B ran after the COMMIT, so it sees the row.
    expect(otherRanEarly).toBe(false);
    expect(inside.rows).toEqual([{ n: 1 }]);
    expect((await other).rows).toEqual([{ n: 1 }]);
    await a.end();
    await b.end();
  });

  it('lets a waiting client bound its wait with query_timeout while another idles in a transaction', async () => {
    // Prepare
    const a = await connect();
    const b = await connect({ query_timeout: 200 });
    await a.query('BEGIN');

    // Act
    const waited = b.query('SELECT 1 AS ok');
    await expect(waited).rejects.toThrow('Query read timeout');
    await a.query('COMMIT');
    const next = await b.query<{ v: number }>('SELECT $1::int AS v', [3]);

    // Assess: the abandoned query ran after COMMIT and b's connection stayed in step.
    expect(next.rows).toEqual([{ v: 3 }]);
    await a.end();
    await b.end();
  });

  it.each([
    ['ends the connection (Terminate)', (c: pg.Client) => void c.end()],
    [
      'drops the socket',
      (c: pg.Client) =>
        (c as unknown as { connection: { stream: Socket } }).connection.stream.destroy(),
    ],
  ])(
    'rolls back and lets the others run when a client inside a transaction %s',
    async (_how, disconnect) => {
      // Prepare
      const a = await connect();
      a.on('error', () => {});
      const b = await connect();
      const id = 100 + Math.floor(Math.random() * 1_000_000);
      await a.query('BEGIN');
      await a.query('INSERT INTO conc_tx VALUES ($1)', [id]);
      const other = b.query<{ n: number }>('SELECT count(*)::int AS n FROM conc_tx WHERE id = $1', [
        id,
      ]);
      const otherRanEarly = await settlesWithin(other, 150);

      // Act
      disconnect(a);
      const after = await other;

      // Assess: the insert was rolled back, and B's own transaction starts cleanly.
      expect(otherRanEarly).toBe(false);
      expect(after.rows).toEqual([{ n: 0 }]);
      await b.query('BEGIN');
      expect((await b.query<{ state: string }>('SELECT 1 AS state')).rows).toEqual([{ state: 1 }]);
      await b.query('COMMIT');
      await b.end();
    },
  );

  it('closes an extended exchange that failed and was abandoned before its Sync', async () => {
    // Prepare: the backend skips messages after an error until a Sync arrives.
    const a = await RawClient.login(embedded.port);
    a.send(wire.parse('SELEC 1'), wire.flush());
    const failure = await a.readUntil('E');

    // Act
    a.socket.destroy();
    const b = await connect({ query_timeout: 5_000 });
    const after = await b.query<{ v: number }>('SELECT $1::int AS v', [7]);

    // Assess
    expect(errorMessages(failure)[0]).toMatch(/syntax error/);
    expect(after.rows).toEqual([{ v: 7 }]);
    await b.end();
  });
});

describe('embedded PostgreSQL connection handshake', () => {
  it('answers SSLRequest with N and then serves the same connection in plain text', async () => {
    // Prepare
    const raw = await RawClient.open(embedded.port);

    // Act
    raw.send(wire.sslRequest());
    const answer = await raw.readBytes(1);
    raw.send(wire.startup());
    await raw.readUntil('Z');
    raw.send(typed('Q', cstr('SELECT 6 * 7')));
    const result = await raw.readUntil('Z');

    // Assess
    expect(answer.toString()).toBe('N');
    expect(firstColumns(result)).toEqual(['42']);
    raw.socket.destroy();
  });

  it('closes a CancelRequest connection without touching the running clients', async () => {
    // Prepare
    const raw = await RawClient.open(embedded.port);

    // Act
    raw.send(wire.cancelRequest());
    await raw.readBytes(1);

    // Assess
    expect(raw.closed).toBe(true);
    expect((await client.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
  });

  it('refuses the connection beyond maxConnections with 53300, like a real server', async () => {
    // Prepare: the file's client holds one of the slots.
    const others = await Promise.all(Array.from({ length: MAX_CONNECTIONS - 1 }, () => connect()));

    // Act
    const extra = connect({}, 0);

    // Assess
    await expect(extra).rejects.toMatchObject({ code: '53300' });
    expect((await others[0]?.query('SELECT 1 AS ok'))?.rows).toEqual([{ ok: 1 }]);
    await Promise.all(others.map((c) => c.end()));
  });
});
