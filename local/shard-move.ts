/**
 * `dbopt shard move`: moves the rows of every slot whose owner changes between two shard maps,
 * then switches the directory. Phases, each resumable from a state file:
 *
 * 1. copy: per (old shard, table), one keyset scan in primary-key order, in batches. The slot
 *    of a row is computed here, in TypeScript, with the router's own murmur3 over the shard-key
 *    column's text (PostgreSQL has no murmur3, and a second implementation in SQL could drift
 *    from the router). One scan per (shard, table) serves all of that shard's moving slots,
 *    so each row is read once. Rows of moving slots are upserted on their new shard
 *    (`INSERT … ON CONFLICT (pk) DO UPDATE`): re-running a batch is harmless. The state
 *    records the last primary key copied per (old shard, table).
 * 2. verify: per moving slot, row count and an order-independent checksum (sum mod 2^32 of
 *    two 32-bit words of md5(to_jsonb(row)::text)) on the old and the new shard. A mismatch
 *    (rows written to the old shard after their copy) triggers a catch-up: the slot's rows on
 *    the new shard are deleted and copied again; up to three rounds.
 * 3. switch: the new map (version + 1) is written over the `--map` file (atomically): the
 *    directory switch. Deploy it as SHARD_MAP. The run stops here.
 * 4. cleanup (the next run, once the new map is deployed): the moved rows are deleted from
 *    the old shard, only where the new owner holds an
 *    identical row (same primary key and md5): a row changed on the old shard after the
 *    verification is kept and reported, never lost silently.
 *
 * The guarantees (README "Moving slots") are stated in {@link runShardMove}.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { CodedError, isAppError } from '#shared/errors';
import {
  createShardRouter,
  formatShardMap,
  parseShardMap,
  type ShardMap,
  ShardMapError,
  type ShardRouter,
} from '#shared/sharding';
import { loadShardMap, type ShardIo } from './shard-commands.ts';

type MoveErrorCode =
  | 'MOVE_INVALID'
  | 'MOVE_STATE_MISMATCH'
  | 'MOVE_VERIFY_FAILED'
  | 'SHARD_URL_MISSING';

/** A shard move cannot start or cannot finish safely; the message says what to do. */
export class ShardMoveError extends CodedError<MoveErrorCode> {}

/** One table that lives on every shard, split by `shardKey`. */
export interface MoveTable {
  /** Default `public`. */
  readonly schema: string;
  readonly name: string;
  /** Column whose text value is the shard key (as the query API's `shardKey`). */
  readonly shardKey: string;
  /** Primary-key columns: batches are ordered by them; upserts conflict on them. */
  readonly primaryKey: readonly string[];
}

/** What the move remembers between runs (the `--state` file). */
export interface MoveState {
  readonly format: 1;
  /** The map before the move, compact: after the switch the `--map` file holds the new one. */
  readonly fromMap: string;
  readonly toMap: string;
  readonly tables: readonly MoveTable[];
  phase: 'copy' | 'verify' | 'switch' | 'cleanup' | 'done';
  /** Per `<old shard>|<schema>.<table>`: last primary key copied (JSON), and whether done. */
  copy: Record<string, { lastPk: string | null; done: boolean; rows: number }>;
  cleanup: Record<string, { lastPk: string | null; done: boolean; deleted: number; kept: number }>;
  verifiedSlots?: number;
}

export interface ShardMoveOptions {
  /** Current map (JSON file; default SHARD_MAP). Rewritten with the new map at the switch. */
  map?: string;
  /** The map to move to; its version must be the current version + 1. */
  to: string;
  /** JSON: `[{ "schema"?, "name", "shardKey", "primaryKey": [..] }]`. */
  tables: string;
  /** JSON object shard name → postgres:// URL; default SHARD_URLS. */
  urls?: string;
  batchSize?: number;
  /** Default `<to>.state.json`. */
  state?: string;
  dryRun?: boolean;
  /**
   * Stop after this phase. A run always stops after `switch` (deploy the map, then run again
   * for the cleanup), so `switch` is the default.
   */
  stopAfter?: 'copy' | 'verify' | 'switch';
}

/** What a move reads and writes besides the databases. */
export interface MoveIo extends ShardIo {
  writeFile(path: string, text: string): void;
  /** A connected client for a shard URL (the CLI opens a pg.Client). */
  connect(url: string): Promise<MoveClient>;
  /** Test hook: called after each batch is written and the state saved. */
  afterBatch?(event: {
    phase: 'copy' | 'catch-up' | 'cleanup';
    shard: string;
    table: string;
    rows: number;
  }): void;
}

/** The part of a pg client the move uses. */
export interface MoveClient {
  query<R extends pg.QueryResultRow = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
  ): Promise<{ rows: R[]; rowCount: number | null }>;
  end(): Promise<void>;
}

/** The process's streams, environment, files and pg clients. */
export const processMoveIo = (base: ShardIo): MoveIo => ({
  ...base,
  writeFile: (path, text) => {
    // Write then rename: a crash never leaves a half-written map or state file.
    const tmp = `${path}.tmp-${process.pid}`;
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  },
  connect: async (url) => {
    const client = new pg.Client({ connectionString: url });
    // A connection that drops while idle (between batches) emits 'error'; without a listener
    // that would crash the process. The next query rejects with the same error instead, and
    // the move stops where its state file says, ready to resume.
    client.on('error', () => undefined);
    await client.connect();
    return client;
  },
});

// ─── inputs ─────────────────────────────────────────────────────────────────────────────────

const readJson = (io: ShardIo, path: string, what: string): unknown => {
  let text: string;
  try {
    text = io.readFile(path);
  } catch (err) {
    throw new ShardMoveError(
      'MOVE_INVALID',
      `cannot read ${what} ${path}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ShardMoveError('MOVE_INVALID', `${what} ${path} is not valid JSON`, { cause: err });
  }
};

const IDENT = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

/** Parses tables.json; identifiers must be plain (they are quoted anyway). */
export const parseMoveTables = (value: unknown): MoveTable[] => {
  const list = Array.isArray(value) ? value : (value as { tables?: unknown })?.tables;
  if (!Array.isArray(list) || list.length === 0) {
    throw new ShardMoveError(
      'MOVE_INVALID',
      'tables must be a JSON array like [{"name":"accounts","shardKey":"user_id","primaryKey":["id"]}]',
    );
  }
  return list.map((entry, i) => {
    const t = entry as Partial<Record<keyof MoveTable, unknown>>;
    const schema = t.schema ?? 'public';
    const pk = t.primaryKey;
    const ok =
      typeof schema === 'string' &&
      IDENT.test(schema) &&
      typeof t.name === 'string' &&
      IDENT.test(t.name) &&
      typeof t.shardKey === 'string' &&
      IDENT.test(t.shardKey) &&
      Array.isArray(pk) &&
      pk.length > 0 &&
      pk.every((c) => typeof c === 'string' && IDENT.test(c));
    if (!ok) {
      throw new ShardMoveError(
        'MOVE_INVALID',
        `tables[${i}]: needs "name", "shardKey" and a non-empty "primaryKey" array of plain identifiers (optional "schema")`,
      );
    }
    return Object.freeze({
      schema: schema as string,
      name: t.name as string,
      shardKey: t.shardKey as string,
      primaryKey: Object.freeze([...(pk as string[])]),
    });
  });
};

const parseUrls = (io: ShardIo, options: ShardMoveOptions): Record<string, string> => {
  const value =
    options.urls !== undefined
      ? readJson(io, options.urls, 'shard URL file')
      : io.env.SHARD_URLS
        ? (JSON.parse(io.env.SHARD_URLS) as unknown)
        : undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ShardMoveError(
      'SHARD_URL_MISSING',
      'no shard URLs: pass --urls FILE (JSON object shard name → postgres:// URL) or set SHARD_URLS',
    );
  }
  return value as Record<string, string>;
};

// ─── SQL ───────────────────────────────────────────────────────────────────────────────────

const q = (name: string): string => `"${name.replaceAll('"', '""')}"`;

/** SQL fragments for one table, built once per move. */
interface TableSql {
  readonly label: string;
  /** First page / next page (keyset) of (pk JSON, key text, payload) in primary-key order. */
  page(payload: 'row' | 'hash', after: boolean): string;
  readonly upsert: (columns: readonly string[]) => string;
  readonly deleteByPk: string;
  readonly deleteVerified: string;
  readonly hashesByPk: string;
}

const buildTableSql = (table: MoveTable): TableSql => {
  const rel = `${q(table.schema)}.${q(table.name)}`;
  const pkCols = table.primaryKey.map((c) => `t.${q(c)}`).join(', ');
  const pkDCols = table.primaryKey.map((c) => `d.${q(c)}`).join(', ');
  const pkJson = `jsonb_build_object(${table.primaryKey.map((c) => `'${c}', t.${q(c)}`).join(', ')})::text`;
  const pkJoin = table.primaryKey.map((c) => `t.${q(c)} = d.${q(c)}`).join(' AND ');
  return {
    label: `${table.schema}.${table.name}`,
    page: (payload, after) =>
      [
        `SELECT /* dbopt */ ${pkJson} AS pk,`,
        `  t.${q(table.shardKey)}::text AS k,`,
        payload === 'row' ? '  to_jsonb(t)::text AS r' : '  md5(to_jsonb(t)::text) AS h',
        `FROM ${rel} AS t`,
        // The last key comes back as JSON and is typed by the table's own row type.
        after
          ? `WHERE (${pkCols}) > (SELECT ${pkDCols} FROM jsonb_populate_record(NULL::${rel}, $2::jsonb) AS d)`
          : 'WHERE $2::jsonb IS NULL',
        `ORDER BY ${pkCols}`,
        'LIMIT $1',
      ].join('\n'),
    upsert: (columns) => {
      const cols = columns.map(q).join(', ');
      const rest = columns.filter((c) => !table.primaryKey.includes(c));
      return [
        `INSERT /* dbopt */ INTO ${rel} AS t (${cols}) OVERRIDING SYSTEM VALUE`,
        `SELECT ${cols} FROM jsonb_populate_recordset(NULL::${rel}, $1::jsonb)`,
        `ON CONFLICT (${table.primaryKey.map(q).join(', ')})`,
        // Only a copy of the same row (same shard key) is overwritten: a per-shard sequence
        // can give another entity the same primary key on the new shard. Such a row is left
        // alone; the caller sees the short row count and stops.
        rest.length === 0
          ? 'DO NOTHING'
          : `DO UPDATE SET ${rest.map((c) => `${q(c)} = EXCLUDED.${q(c)}`).join(', ')}\nWHERE t.${q(table.shardKey)} IS NOT DISTINCT FROM EXCLUDED.${q(table.shardKey)}`,
      ].join('\n');
    },
    deleteByPk: [
      `DELETE /* dbopt */ FROM ${rel} AS t`,
      `USING jsonb_populate_recordset(NULL::${rel}, $1::jsonb) AS d`,
      `WHERE ${pkJoin}`,
    ].join('\n'),
    // Deletes only rows still identical to the copy the new owner holds.
    deleteVerified: [
      `DELETE /* dbopt */ FROM ${rel} AS t`,
      `USING jsonb_populate_recordset(NULL::${rel}, $1::jsonb) AS d`,
      `WHERE ${pkJoin}`,
      '  AND md5(to_jsonb(t)::text) = ANY($2::text[])',
    ].join('\n'),
    hashesByPk: [
      `SELECT /* dbopt */ ${pkJson} AS pk, md5(to_jsonb(t)::text) AS h`,
      `FROM ${rel} AS t`,
      `JOIN jsonb_populate_recordset(NULL::${rel}, $1::jsonb) AS d ON ${pkJoin}`,
    ].join('\n'),
  };
};

/**
 * Session settings of every move connection. Rows travel as `to_jsonb(row)::text` and are
 * compared by its md5, and that text depends on them: `extra_float_digits` below 1 rounds
 * float4/float8 (the copy would lose precision on both sides alike, so the checksums would
 * still match), and TimeZone, DateStyle, IntervalStyle and bytea_output change how
 * timestamptz, interval and bytea values are spelled, so two shards configured differently
 * would never verify. Fixed here, whatever the server, database or role defaults are.
 * https://www.postgresql.org/docs/15/runtime-config-client.html
 */
const SESSION_SQL = `SELECT /* dbopt */ set_config('extra_float_digits', '3', false),
  set_config('TimeZone', 'UTC', false),
  set_config('DateStyle', 'ISO, MDY', false),
  set_config('IntervalStyle', 'postgres', false),
  set_config('bytea_output', 'hex', false)`;

/** Insertable columns (not generated, not dropped), in table order. */
const COLUMNS_SQL = `SELECT /* dbopt */ a.attname AS name
FROM pg_catalog.pg_attribute AS a
WHERE a.attrelid = $1::regclass
  AND a.attnum > 0
  AND NOT a.attisdropped
  AND a.attgenerated = ''
ORDER BY a.attnum`;

// ─── the move ──────────────────────────────────────────────────────────────────────────────

interface Page<P extends 'r' | 'h'> {
  rows: ({ pk: string; k: string } & Record<P, string>)[];
}

/** Per-slot row count and checksum (two 32-bit sums of md5 words). */
interface SlotDigest {
  count: number;
  a: number;
  b: number;
}

const addHash = (digest: SlotDigest, md5: string): void => {
  digest.count += 1;
  digest.a = (digest.a + Number.parseInt(md5.slice(0, 8), 16)) >>> 0;
  digest.b = (digest.b + Number.parseInt(md5.slice(8, 16), 16)) >>> 0;
};

const sameDigest = (x: SlotDigest | undefined, y: SlotDigest | undefined): boolean =>
  (x?.count ?? 0) === (y?.count ?? 0) && (x?.a ?? 0) === (y?.a ?? 0) && (x?.b ?? 0) === (y?.b ?? 0);

/** Summary printed (and returned) by a move or a dry run. */
export interface MoveReport {
  dryRun: boolean;
  fromVersion: number;
  toVersion: number;
  movedSlots: number;
  /** Rows copied (or, in a dry run, to copy) per `old→new` pair and table. */
  copied: Record<string, number>;
  verifiedSlots: number;
  catchUpSlots: number;
  deleted: number;
  /** Rows left on the old shard because they changed after verification (reconcile them). */
  kept: number;
  phase: MoveState['phase'];
  rowsPerSecond?: number;
}

/**
 * Runs (or resumes) a move and returns its report. Guarantees:
 * - Until the switch, the old shard stays the owner: API reads and writes keep working; the
 *   move only reads it and writes rows of moving slots on the new shard, which routing does
 *   not send there yet.
 * - Writes to a moving slot made after its rows were copied are caught by the verification
 *   (count + checksum per slot) and re-copied, up to three rounds; the move then stops with
 *   MOVE_VERIFY_FAILED rather than switch with a difference.
 * - Not guaranteed: writes to moving slots between the final verification and the moment
 *   every API instance runs the new map (a deploy) reach the old shard. The cleanup keeps
 *   such rows (it deletes only rows identical on the new owner) and reports them as `kept`,
 *   but the new owner does not have them. Pause writes to the moving slots (or all API writes)
 *   from the verification until the new SHARD_MAP is deployed.
 * - The run that switches stops there: the cleanup runs only in a later run (after the
 *   deploy), so the old owner keeps every moved row for as long as any instance routes to it.
 * - Scatter-gather reads see copied rows twice while both shards hold them and both are in
 *   the map (moves between existing shards; adding a shard: between switch and cleanup).
 */
export const runShardMove = async (options: ShardMoveOptions, io: MoveIo): Promise<MoveReport> => {
  if (
    options.stopAfter !== undefined &&
    !['copy', 'verify', 'switch'].includes(options.stopAfter)
  ) {
    throw new ShardMoveError('MOVE_INVALID', '--stop-after must be copy, verify or switch');
  }
  const statePath = options.state ?? `${options.to}.state.json`;
  const batchSize = options.batchSize ?? 1_000;
  const tables = parseMoveTables(readJson(io, options.tables, 'tables file'));
  let toMap: ShardMap;
  try {
    toMap = parseShardMap(io.readFile(options.to));
  } catch (err) {
    if (err instanceof ShardMapError) {
      throw new ShardMoveError('MOVE_INVALID', `invalid --to map ${options.to}: ${err.message}`, {
        cause: err,
      });
    }
    throw new ShardMoveError('MOVE_INVALID', `cannot read --to map ${options.to}`, { cause: err });
  }
  const toText = formatShardMap(toMap, 'rle');

  let state: MoveState | undefined;
  let stateText: string | undefined;
  try {
    stateText = io.readFile(statePath);
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ENOENT') throw err;
  }
  if (stateText !== undefined && !options.dryRun) {
    try {
      state = JSON.parse(stateText) as MoveState;
    } catch (err) {
      throw new ShardMoveError(
        'MOVE_STATE_MISMATCH',
        `state file ${statePath} is not valid JSON; restore it or pass another --state`,
        { cause: err },
      );
    }
  }
  let fromMap: ShardMap;
  if (state !== undefined) {
    if (state.toMap !== toText || JSON.stringify(state.tables) !== JSON.stringify(tables)) {
      throw new ShardMoveError(
        'MOVE_STATE_MISMATCH',
        `state file ${statePath} belongs to another move (other --to map or tables); pass another --state or delete it`,
      );
    }
    fromMap = parseShardMap(state.fromMap);
  } else {
    fromMap = loadShardMap({ map: options.map }, io).map;
  }
  if (toMap.version !== fromMap.version + 1 || toMap.slotCount !== fromMap.slotCount) {
    throw new ShardMoveError(
      'MOVE_INVALID',
      `the new map must have version ${fromMap.version + 1} (the current version + 1) and the same slotCount (${fromMap.slotCount}); got version ${toMap.version}, slotCount ${toMap.slotCount}`,
    );
  }
  const before = createShardRouter(fromMap);
  const after = createShardRouter(toMap);
  const newOwner = new Map<number, string>();
  for (let slot = 0; slot < before.slotCount; slot++) {
    const to = after.shardOfSlot(slot);
    if (before.shardOfSlot(slot) !== to) newOwner.set(slot, to);
  }
  const sources = [...new Set([...newOwner.keys()].map((s) => before.shardOfSlot(s)))];
  const targets = [...new Set(newOwner.values())];
  const urls = parseUrls(io, options);
  const missing = [...new Set([...sources, ...targets])].filter((name) => !urls[name]);
  if (missing.length > 0) {
    throw new ShardMoveError('SHARD_URL_MISSING', `no URL for shard(s) ${missing.join(', ')}`);
  }

  const report: MoveReport = {
    dryRun: options.dryRun === true,
    fromVersion: fromMap.version,
    toVersion: toMap.version,
    movedSlots: newOwner.size,
    copied: {},
    // A resumed run reports the verification an earlier run did.
    verifiedSlots: state?.verifiedSlots ?? 0,
    catchUpSlots: 0,
    deleted: 0,
    kept: 0,
    phase: state?.phase ?? 'copy',
  };
  io.out(
    `Shard move v${fromMap.version} → v${toMap.version}: ${newOwner.size} slots move (${sources.join(', ')} → ${targets.join(', ')}), ${tables.length} table(s)${report.dryRun ? ' — dry run, nothing is written' : ''}`,
  );

  const clients = new Map<string, MoveClient>();
  const clientOf = async (shard: string): Promise<MoveClient> => {
    let client = clients.get(shard);
    if (!client) {
      client = await io.connect(urls[shard] as string);
      clients.set(shard, client);
      await client.query(SESSION_SQL);
    }
    return client;
  };
  const sqlOf = new Map(tables.map((t) => [t, buildTableSql(t)]));

  const current: MoveState = state ?? {
    format: 1,
    fromMap: formatShardMap(fromMap, 'rle'),
    toMap: toText,
    tables,
    phase: 'copy',
    copy: {},
    cleanup: {},
  };
  const save = () => {
    if (!report.dryRun) io.writeFile(statePath, `${JSON.stringify(current, null, 1)}\n`);
  };

  /**
   * Scans `shard`'s table in primary-key order from `fromPk`, calling `onPage` with each page
   * (rows and their slots); returns when the table ends.
   */
  const scan = async <P extends 'r' | 'h'>(
    shard: string,
    table: MoveTable,
    payload: P,
    fromPk: string | null,
    onPage: (rows: Page<P>['rows'], slots: number[], lastPk: string) => Promise<void>,
    router: ShardRouter,
  ): Promise<void> => {
    const client = await clientOf(shard);
    const sql = sqlOf.get(table) as TableSql;
    let lastPk = fromPk;
    for (;;) {
      const { rows } = await client.query<Page<P>['rows'][number]>(
        sql.page(payload === 'r' ? 'row' : 'hash', lastPk !== null),
        [batchSize, lastPk],
      );
      if (rows.length === 0) return;
      const slots = rows.map((row) => router.slotOf(row.k));
      lastPk = (rows[rows.length - 1] as { pk: string }).pk;
      await onPage(rows, slots, lastPk);
      if (rows.length < batchSize) return;
    }
  };

  const columnsCache = new Map<string, string[]>();
  const upsertRows = async (shard: string, table: MoveTable, rowsJson: string[]) => {
    const client = await clientOf(shard);
    const key = `${shard}|${table.schema}.${table.name}`;
    let columns = columnsCache.get(key);
    if (!columns) {
      const { rows } = await client.query<{ name: string }>(COLUMNS_SQL, [
        `${q(table.schema)}.${q(table.name)}`,
      ]);
      columns = rows.map((r) => r.name);
      columnsCache.set(key, columns);
    }
    const sql = sqlOf.get(table) as TableSql;
    const { rowCount } = await client.query(sql.upsert(columns), [`[${rowsJson.join(',')}]`]);
    // With DO UPDATE every row is inserted or updated unless its key collided (see upsert);
    // with DO NOTHING (every column in the key) a conflicting row is this very row.
    const updates = columns.some((c) => !table.primaryKey.includes(c));
    const collided = rowsJson.length - (rowCount ?? 0);
    if (updates && collided > 0) {
      throw new ShardMoveError(
        'MOVE_INVALID',
        `${sql.label}: ${collided} row(s) have a primary key that shard ${shard} already uses for a row with another ${table.shardKey}; nothing was overwritten. The primary key must be unique across shards (add ${table.shardKey} to it, or use global ids) before slots can move`,
      );
    }
  };

  /** Copies rows of `onlySlots` (default: every slot moving away) from `source`. */
  const copyFrom = async (
    source: string,
    table: MoveTable,
    progress: { lastPk: string | null; done: boolean; rows: number },
    phase: 'copy' | 'catch-up',
    onlySlots?: ReadonlySet<number>,
  ) => {
    const label = (sqlOf.get(table) as TableSql).label;
    await scan(
      source,
      table,
      'r',
      progress.lastPk,
      async (rows, slots, lastPk) => {
        const byTarget = new Map<string, string[]>();
        rows.forEach((row, i) => {
          const slot = slots[i] as number;
          const to = newOwner.get(slot);
          if (to === undefined || (onlySlots && !onlySlots.has(slot))) return;
          const list = byTarget.get(to) ?? [];
          list.push(row.r);
          byTarget.set(to, list);
        });
        for (const [to, list] of byTarget) {
          if (!report.dryRun) await upsertRows(to, table, list);
          const pair = `${source}→${to} ${label}`;
          report.copied[pair] = (report.copied[pair] ?? 0) + list.length;
          progress.rows += list.length;
        }
        progress.lastPk = lastPk;
        save();
        await io.afterBatch?.({ phase, shard: source, table: label, rows: rows.length });
      },
      before,
    );
    progress.done = true;
    save();
  };

  /** Per moving slot digests of `shard`'s rows, for slots in `slots`. */
  const digestSlots = async (shard: string, table: MoveTable, slots: ReadonlySet<number>) => {
    const digests = new Map<number, SlotDigest>();
    await scan(
      shard,
      table,
      'h',
      null,
      async (rows, rowSlots) => {
        rows.forEach((row, i) => {
          const slot = rowSlots[i] as number;
          if (!slots.has(slot)) return;
          let digest = digests.get(slot);
          if (!digest) {
            digest = { count: 0, a: 0, b: 0 };
            digests.set(slot, digest);
          }
          addHash(digest, row.h);
        });
      },
      before,
    );
    return digests;
  };

  /** Slots (per table) whose rows differ between old and new shard. */
  const verify = async (): Promise<Map<MoveTable, Set<number>>> => {
    const mismatched = new Map<MoveTable, Set<number>>();
    for (const table of tables) {
      const old = new Map<number, SlotDigest>();
      const moved = new Map<number, SlotDigest>();
      for (const source of sources) {
        const mine = new Set([...newOwner.keys()].filter((s) => before.shardOfSlot(s) === source));
        for (const [slot, d] of await digestSlots(source, table, mine)) old.set(slot, d);
      }
      for (const target of targets) {
        const mine = new Set([...newOwner].filter(([, to]) => to === target).map(([s]) => s));
        for (const [slot, d] of await digestSlots(target, table, mine)) moved.set(slot, d);
      }
      const bad = new Set(
        [...newOwner.keys()].filter((s) => !sameDigest(old.get(s), moved.get(s))),
      );
      if (bad.size > 0) mismatched.set(table, bad);
    }
    return mismatched;
  };

  /** Deletes the new shard's rows of `slots` and copies them again from the old shard. */
  const catchUp = async (table: MoveTable, slots: Set<number>) => {
    for (const target of targets) {
      const mine = new Set([...slots].filter((s) => newOwner.get(s) === target));
      if (mine.size === 0) continue;
      const client = await clientOf(target);
      await scan(
        target,
        table,
        'h',
        null,
        async (rows, rowSlots) => {
          const pks = rows.filter((_, i) => mine.has(rowSlots[i] as number)).map((r) => r.pk);
          if (pks.length > 0) {
            await client.query((sqlOf.get(table) as TableSql).deleteByPk, [`[${pks.join(',')}]`]);
          }
        },
        before,
      );
    }
    for (const source of sources) {
      await copyFrom(source, table, { lastPk: null, done: false, rows: 0 }, 'catch-up', slots);
    }
  };

  const startedAt = performance.now();
  try {
    // A dry run scans the old shards and counts the rows it would copy; it writes nothing.
    if (report.dryRun) {
      for (const source of sources) {
        for (const table of tables) {
          await copyFrom(source, table, { lastPk: null, done: false, rows: 0 }, 'copy');
        }
      }
      io.out(`Would copy ${Object.values(report.copied).reduce((a, b) => a + b, 0)} row(s):`);
      for (const [pair, rows] of Object.entries(report.copied)) io.out(`  ${pair}: ${rows}`);
      return report;
    }

    // 1. copy
    if (current.phase === 'copy') {
      for (const source of sources) {
        for (const table of tables) {
          const key = `${source}|${(sqlOf.get(table) as TableSql).label}`;
          const progress = current.copy[key] ?? { lastPk: null, done: false, rows: 0 };
          current.copy[key] = progress;
          if (!progress.done) await copyFrom(source, table, progress, 'copy');
        }
      }
      current.phase = 'verify';
      save();
      const copiedRows = Object.values(current.copy).reduce((n, p) => n + p.rows, 0);
      const seconds = (performance.now() - startedAt) / 1000;
      report.rowsPerSecond = seconds > 0 ? Math.round(copiedRows / seconds) : undefined;
      io.out(
        `copy: ${copiedRows} row(s) copied${report.rowsPerSecond ? ` (${report.rowsPerSecond} rows/s)` : ''}`,
      );
      if (options.stopAfter === 'copy') return { ...report, phase: current.phase };
    }

    // 2. verify (+ catch-up rounds)
    if (current.phase === 'verify') {
      let mismatched = await verify();
      for (let round = 1; mismatched.size > 0 && round <= 3; round++) {
        for (const [table, slots] of mismatched) {
          report.catchUpSlots += slots.size;
          io.out(
            `verify: ${slots.size} slot(s) of ${table.name} differ; copying them again (round ${round})`,
          );
          await catchUp(table, slots);
        }
        mismatched = await verify();
      }
      if (mismatched.size > 0) {
        const list = [...mismatched].map(
          ([t, s]) => `${t.name}: slots ${[...s].slice(0, 10).join(', ')}`,
        );
        throw new ShardMoveError(
          'MOVE_VERIFY_FAILED',
          `rows keep changing on the old shard after 3 catch-up rounds (${list.join('; ')}); pause writes to the moving slots and run the move again`,
        );
      }
      report.verifiedSlots = newOwner.size;
      current.verifiedSlots = newOwner.size;
      current.phase = 'switch';
      save();
      io.out(
        `verify: ${newOwner.size} slot(s) × ${tables.length} table(s): counts and checksums match`,
      );
      if (options.stopAfter === 'verify') return { ...report, phase: current.phase };
    }

    // 3. switch: the new directory version replaces the map file.
    if (current.phase === 'switch') {
      const target = options.map;
      const text = formatShardMap(toMap);
      if (target !== undefined) io.writeFile(target, `${text}\n`);
      current.phase = 'cleanup';
      save();
      io.out(
        `switch: directory version ${toMap.version}${target ? ` written to ${target}` : ''}; deploy it as SHARD_MAP:`,
      );
      io.out(text);
      // Never clean up in the run that switched: until every API instance runs the new map,
      // the old shard is still the owner, and deleting its moved rows would hide them from
      // reads and make updates of them hit nothing. The next run (after the deploy) cleans up.
      io.out(
        'switch: deploy the new SHARD_MAP to every API instance, then run the same command again to delete the moved rows from the old shard(s)',
      );
      return { ...report, phase: current.phase };
    }

    // 4. cleanup: delete moved rows from the old shard where the new owner has them identical.
    if (current.phase === 'cleanup') {
      for (const source of sources) {
        const client = await clientOf(source);
        for (const table of tables) {
          const sql = sqlOf.get(table) as TableSql;
          const key = `${source}|${sql.label}`;
          const progress = current.cleanup[key] ?? {
            lastPk: null,
            done: false,
            deleted: 0,
            kept: 0,
          };
          current.cleanup[key] = progress;
          if (progress.done) continue;
          await scan(
            source,
            table,
            'h',
            progress.lastPk,
            async (rows, slots, lastPk) => {
              const byTarget = new Map<string, typeof rows>();
              rows.forEach((row, i) => {
                const to = newOwner.get(slots[i] as number);
                if (to === undefined) return;
                byTarget.set(to, [...(byTarget.get(to) ?? []), row]);
              });
              for (const [to, list] of byTarget) {
                const owner = await clientOf(to);
                const pks = `[${list.map((r) => r.pk).join(',')}]`;
                const { rows: copies } = await owner.query<{ pk: string; h: string }>(
                  sql.hashesByPk,
                  [pks],
                );
                const held = new Set(copies.map((c) => `${c.pk}\u0000${c.h}`));
                const same = list.filter((r) => held.has(`${r.pk}\u0000${r.h}`));
                const result = same.length
                  ? await client.query(sql.deleteVerified, [
                      `[${same.map((r) => r.pk).join(',')}]`,
                      same.map((r) => r.h),
                    ])
                  : { rowCount: 0 };
                const deleted = result.rowCount ?? 0;
                progress.deleted += deleted;
                progress.kept += list.length - deleted;
              }
              progress.lastPk = lastPk;
              save();
              await io.afterBatch?.({
                phase: 'cleanup',
                shard: source,
                table: sql.label,
                rows: rows.length,
              });
            },
            before,
          );
          progress.done = true;
          save();
        }
      }
      report.deleted = Object.values(current.cleanup).reduce((n, p) => n + p.deleted, 0);
      report.kept = Object.values(current.cleanup).reduce((n, p) => n + p.kept, 0);
      current.phase = 'done';
      save();
      io.out(`cleanup: ${report.deleted} moved row(s) deleted from the old shard(s)`);
      if (report.kept > 0) {
        io.err(
          `dbopt: ${report.kept} row(s) changed on the old shard after verification were kept there; they are missing on the new owner — reconcile them (writes reached the old owner after the switch)`,
        );
      }
    }
    report.phase = current.phase;
    return report;
  } finally {
    await Promise.all([...clients.values()].map((c) => c.end()));
  }
};

/** CLI entry: runs the move, prints one `dbopt: …` line for expected failures; exit code. */
export const runShardMoveCommand = async (
  options: ShardMoveOptions & { json?: boolean },
  io: MoveIo,
): Promise<number> => {
  try {
    const report = await runShardMove(options, io);
    if (options.json) io.out(JSON.stringify(report));
    return report.kept > 0 ? 2 : 0;
  } catch (err) {
    if (!isAppError(err)) throw err;
    io.err(`dbopt: ${err.message.replace(/\s*\n\s*/g, ' ')}`);
    return 1;
  }
};

/** Reads a file as text (for the CLI's ShardIo). */
export const readTextFile = (path: string): string => readFileSync(path, 'utf8');
