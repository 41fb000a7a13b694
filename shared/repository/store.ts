import { randomUUID } from 'node:crypto';
import type { Queryable } from '#shared/db';
import { isAppError } from '#shared/errors';
import { RepositoryError } from './errors.ts';

/** The latest cumulative-counter snapshot of one kind (e.g. 'statements') for one target. */
export interface StoredSnapshot<T> {
  readonly target: string;
  readonly kind: string;
  readonly takenAt: Date;
  /** The server's stats_reset at snapshot time; a change means the counters restarted. */
  readonly statsReset: Date | null;
  readonly serverVersionNum: number;
  readonly payload: T;
}

export type AlertSeverity = 'WARNING' | 'DEGRADED' | 'CRITICAL';

/** An open alert (one per target and kind). */
export interface AlertState {
  readonly target: string;
  readonly kind: string;
  readonly severity: AlertSeverity;
  readonly openedAt: Date;
  readonly lastSentAt: Date;
  readonly summary: string;
}

export type SuggestionKind = 'create_index' | 'drop_index' | 'rewrite';
export type SuggestionStatus = 'proposed' | 'applied' | 'verified' | 'rejected';

export interface NewSuggestion {
  readonly target: string;
  readonly kind: SuggestionKind;
  /** Stable deduplication key (e.g. the normalised DDL, or fingerprint + rule). */
  readonly key: string;
  readonly ddl: string | null;
  /** Statements served, benefit, size, rationale… (jsonb). */
  readonly payload: Record<string, unknown>;
}

export interface Suggestion extends NewSuggestion {
  readonly id: number;
  readonly status: SuggestionStatus;
  readonly outcome: Record<string, unknown> | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface SuggestionFilter {
  readonly target?: string;
  readonly status?: SuggestionStatus;
  readonly kind?: SuggestionKind;
}

/** dbopt's own state, in the `dbopt` schema of the repository database. */
export interface Repository {
  loadSnapshot<T>(target: string, kind: string): Promise<StoredSnapshot<T> | undefined>;
  /** Replaces the stored snapshot of (target, kind). */
  saveSnapshot<T>(snapshot: StoredSnapshot<T>): Promise<void>;
  /** Appends one value per metric at `takenAt`; non-finite values are skipped. */
  recordMetrics(target: string, takenAt: Date, values: Record<string, number>): Promise<void>;
  /** Values of one metric since `since`, oldest first. */
  metricSeries(target: string, metric: string, since: Date): Promise<{ at: Date; value: number }[]>;
  /** Deletes history older than `olderThan`; returns the number of rows removed. */
  pruneMetrics(olderThan: Date): Promise<number>;
  listAlertStates(target: string): Promise<AlertState[]>;
  saveAlertState(state: AlertState): Promise<void>;
  deleteAlertState(target: string, kind: string): Promise<void>;
  /**
   * Inserts a suggestion, or refreshes the DDL and payload of the one with the same
   * (target, kind, key), keeping its status. `created` tells which happened (announce only new ones).
   */
  upsertSuggestion(suggestion: NewSuggestion): Promise<{ id: number; created: boolean }>;
  listSuggestions(filter?: SuggestionFilter): Promise<Suggestion[]>;
  getSuggestion(id: number): Promise<Suggestion | undefined>;
  setSuggestionStatus(
    id: number,
    status: SuggestionStatus,
    outcome?: Record<string, unknown>,
  ): Promise<void>;
}

const SQL_LOAD_SNAPSHOT = `
SELECT /* dbopt */ target, kind, taken_at, stats_reset, server_version_num, payload
FROM dbopt.snapshots
WHERE target = $1
  AND kind = $2`;
const SQL_SAVE_SNAPSHOT = `
INSERT /* dbopt */ INTO dbopt.snapshots (target, kind, taken_at, stats_reset, server_version_num, payload)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
ON CONFLICT (target, kind) DO UPDATE
SET taken_at = EXCLUDED.taken_at,
    stats_reset = EXCLUDED.stats_reset,
    server_version_num = EXCLUDED.server_version_num,
    payload = EXCLUDED.payload`;
const SQL_SAVE_SNAPSHOT_PARTS = `
INSERT /* dbopt */ INTO dbopt.snapshot_parts (target, kind, part, generation, body)
SELECT $1, $2, p.part, $3, p.body
FROM unnest($4::int[], $5::text[]) AS p (part, body)
ON CONFLICT (target, kind, part) DO UPDATE
SET generation = EXCLUDED.generation,
    body = EXCLUDED.body`;
const SQL_DELETE_SNAPSHOT_PARTS_FROM = `
DELETE /* dbopt */ FROM dbopt.snapshot_parts
WHERE target = $1
  AND kind = $2
  AND part >= $3`;
const SQL_LOAD_SNAPSHOT_PARTS = `
SELECT /* dbopt */ part, generation, body
FROM dbopt.snapshot_parts
WHERE target = $1
  AND kind = $2
  AND part >= $3
ORDER BY part
LIMIT $4`;
const SQL_RECORD_METRICS = `
INSERT /* dbopt */ INTO dbopt.metric_history (target, metric, at, value)
SELECT $1, m.metric, $2, m.value
FROM unnest($3::text[], $4::double precision[]) AS m (metric, value)
ON CONFLICT (target, metric, at) DO UPDATE
SET value = EXCLUDED.value`;
const SQL_METRIC_SERIES = `
SELECT /* dbopt */ at, value
FROM dbopt.metric_history
WHERE target = $1
  AND metric = $2
  AND at >= $3
ORDER BY at`;
const SQL_PRUNE_METRICS = `
DELETE /* dbopt */ FROM dbopt.metric_history
WHERE at < $1`;
const SQL_LIST_ALERTS = `
SELECT /* dbopt */ target, kind, severity, opened_at, last_sent_at, summary
FROM dbopt.alert_state
WHERE target = $1
ORDER BY kind`;
const SQL_SAVE_ALERT = `
INSERT /* dbopt */ INTO dbopt.alert_state (target, kind, severity, opened_at, last_sent_at, summary)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (target, kind) DO UPDATE
SET severity = EXCLUDED.severity,
    opened_at = EXCLUDED.opened_at,
    last_sent_at = EXCLUDED.last_sent_at,
    summary = EXCLUDED.summary`;
const SQL_DELETE_ALERT = `
DELETE /* dbopt */ FROM dbopt.alert_state
WHERE target = $1
  AND kind = $2`;
// xmax = 0 on the returned row version means it was inserted, not updated.
const SQL_UPSERT_SUGGESTION = `
INSERT /* dbopt */ INTO dbopt.suggestions (target, kind, key, ddl, payload)
VALUES ($1, $2, $3, $4, $5::jsonb)
ON CONFLICT (target, kind, key) DO UPDATE
SET ddl = EXCLUDED.ddl,
    payload = EXCLUDED.payload,
    updated_at = now()
RETURNING id, (xmax = 0) AS created`;
const SQL_SELECT_SUGGESTIONS = `
SELECT /* dbopt */ id, target, kind, key, ddl, payload, status, outcome, created_at, updated_at
FROM dbopt.suggestions`;
const SQL_SET_SUGGESTION_STATUS = `
UPDATE /* dbopt */ dbopt.suggestions
SET status = $2,
    outcome = COALESCE($3::jsonb, outcome),
    updated_at = now()
WHERE id = $1`;

/**
 * Payloads larger than this (UTF-8 bytes of their JSON) are stored in parts of at most this
 * size: the RDS Data API returns at most 64 KB per row and 1 MiB per response
 * (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.limitations.html).
 */
export const SNAPSHOT_PART_MAX_BYTES = 60_000;
/**
 * Parts per statement when saving or loading: 6 × 60,000 bytes is 360 KB, under 1 MiB even
 * when every character comes back escaped in the JSON records (2 bytes for `"` or `\`).
 */
export const SNAPSHOT_PARTS_PER_STATEMENT = 6;

/** The header a parted snapshot keeps in dbopt.snapshots.payload. */
interface PartsHeader {
  'dbopt:parts': { count: number; generation: string; bytes: number };
}

const isPartsHeader = (payload: unknown): payload is PartsHeader => {
  const header = (payload as Partial<PartsHeader> | null)?.['dbopt:parts'];
  return (
    typeof header === 'object' &&
    header !== null &&
    Number.isInteger(header.count) &&
    typeof header.generation === 'string'
  );
};

/**
 * Splits JSON text into pieces of at most `maxBytes` UTF-8 bytes, never inside a character
 * (a surrogate pair stays together).
 */
export const splitUtf8 = (text: string, maxBytes: number): string[] => {
  const parts: string[] = [];
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    const pair = code >= 0xd800 && code <= 0xdbff && i + 1 < text.length;
    const size = code < 0x80 ? 1 : code < 0x800 ? 2 : pair ? 4 : 3;
    if (bytes + size > maxBytes) {
      parts.push(text.slice(start, i));
      start = i;
      bytes = 0;
    }
    bytes += size;
    if (pair) i += 1;
  }
  if (start < text.length) parts.push(text.slice(start));
  return parts;
};

const UNDEFINED_TABLE = '42P01';

/** "relation dbopt.snapshot_parts does not exist": the schema predates migration 4. */
const mapPartsError = (err: unknown): unknown => {
  const sqlState = isAppError(err) ? err.details.sqlState : (err as { code?: string } | null)?.code;
  return sqlState === UNDEFINED_TABLE
    ? new RepositoryError(
        'REPOSITORY_OUTDATED',
        'dbopt.snapshot_parts is missing (repository schema older than migration 4): run "dbopt migrate" against the repository database',
        { cause: err },
      )
    : err;
};

/** Text with a zone designator at its end: Z, +hh, +hh:mm or +hhmm. */
const HAS_ZONE = /(?:Z|[+-]\d{2}(?::?\d{2})?)$/i;

/**
 * pg returns timestamptz as a Date. The RDS Data API returns it as text in UTC without a zone
 * ("2026-11-27 10:00:00.123"), which `new Date()` would read in the process's local time zone.
 */
const toDate = (value: unknown): Date => {
  if (value instanceof Date) return value;
  const text = String(value).trim();
  return new Date(HAS_ZONE.test(text) ? text : `${text.replace(' ', 'T')}Z`);
};

const toSuggestion = (row: Record<string, unknown>): Suggestion => ({
  id: Number(row.id),
  target: String(row.target),
  kind: row.kind as SuggestionKind,
  key: String(row.key),
  ddl: row.ddl === null ? null : String(row.ddl),
  payload: row.payload as Record<string, unknown>,
  status: row.status as SuggestionStatus,
  outcome: (row.outcome ?? null) as Record<string, unknown> | null,
  createdAt: toDate(row.created_at),
  updatedAt: toDate(row.updated_at),
});

const toJson = (value: unknown, what: string): string => {
  try {
    return JSON.stringify(value);
  } catch (err) {
    throw new RepositoryError('PAYLOAD_INVALID', `${what} is not JSON-serialisable`, {
      cause: err,
    });
  }
};

const tryParse = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};

/** Reads the parts a header names, a few per statement, and parses the JSON they make up. */
const loadParts = async (
  db: Queryable,
  target: string,
  kind: string,
  header: PartsHeader,
): Promise<unknown> => {
  const { count, generation } = header['dbopt:parts'];
  const bodies: string[] = [];
  try {
    for (let more = true; more && bodies.length < count; ) {
      const { rows } = await db.query(SQL_LOAD_SNAPSHOT_PARTS, [
        target,
        kind,
        bodies.length,
        SNAPSHOT_PARTS_PER_STATEMENT,
      ]);
      more = rows.length === SNAPSHOT_PARTS_PER_STATEMENT;
      for (const row of rows) {
        // A gap or a part of another save: stop, reported below.
        if (Number(row.part) !== bodies.length || row.generation !== generation) {
          more = false;
          break;
        }
        bodies.push(String(row.body));
      }
    }
  } catch (err) {
    throw mapPartsError(err);
  }
  if (bodies.length < count) {
    throw new RepositoryError(
      'SNAPSHOT_INCOMPLETE',
      `snapshot ${kind} of ${target} lacks parts ${bodies.length}..${count - 1} of save ${generation} (a save was interrupted); the next save replaces it`,
    );
  }
  try {
    return JSON.parse(bodies.slice(0, count).join(''));
  } catch (err) {
    throw new RepositoryError(
      'SNAPSHOT_INCOMPLETE',
      `snapshot ${kind} of ${target}: its parts do not make up JSON; the next save replaces it`,
      { cause: err },
    );
  }
};

/**
 * The repository over any {@link Queryable} (a pg.Pool of the repository database). Run
 * {@link migrateRepository} first. Every statement carries the `/* dbopt *\/` marker, so the
 * collectors never report dbopt's own bookkeeping as workload.
 */
export const createRepository = (db: Queryable): Repository => ({
  async loadSnapshot<T>(target: string, kind: string) {
    const { rows } = await db.query(SQL_LOAD_SNAPSHOT, [target, kind]);
    const row = rows[0];
    if (!row) return undefined;
    // jsonb arrives parsed through pg, as JSON text through the Data API's JSON records; the
    // payload is returned parsed either way. Parts a shrunken snapshot no longer names stay
    // until the next large save overwrites them (bounded: one snapshot per target and kind).
    const header = typeof row.payload === 'string' ? tryParse(row.payload) : row.payload;
    return {
      target,
      kind,
      takenAt: toDate(row.taken_at),
      statsReset: row.stats_reset === null ? null : toDate(row.stats_reset),
      serverVersionNum: Number(row.server_version_num),
      payload: (isPartsHeader(header)
        ? await loadParts(db, target, kind, header)
        : (header ?? row.payload)) as T,
    };
  },

  async saveSnapshot(snapshot) {
    const json = toJson(snapshot.payload, `snapshot ${snapshot.kind} of ${snapshot.target}`);
    let payload = json;
    if (Buffer.byteLength(json) > SNAPSHOT_PART_MAX_BYTES) {
      // Parts first, the header last: an interrupted save leaves a header whose generation
      // the parts do not all carry, which loadSnapshot reports instead of mixing two saves.
      const parts = splitUtf8(json, SNAPSHOT_PART_MAX_BYTES);
      const generation = randomUUID();
      try {
        for (let from = 0; from < parts.length; from += SNAPSHOT_PARTS_PER_STATEMENT) {
          const bodies = parts.slice(from, from + SNAPSHOT_PARTS_PER_STATEMENT);
          await db.query(SQL_SAVE_SNAPSHOT_PARTS, [
            snapshot.target,
            snapshot.kind,
            generation,
            bodies.map((_, i) => from + i),
            bodies,
          ]);
        }
        await db.query(SQL_DELETE_SNAPSHOT_PARTS_FROM, [
          snapshot.target,
          snapshot.kind,
          parts.length,
        ]);
      } catch (err) {
        throw mapPartsError(err);
      }
      const header: PartsHeader = {
        'dbopt:parts': { count: parts.length, generation, bytes: Buffer.byteLength(json) },
      };
      payload = JSON.stringify(header);
    }
    await db.query(SQL_SAVE_SNAPSHOT, [
      snapshot.target,
      snapshot.kind,
      snapshot.takenAt,
      snapshot.statsReset,
      snapshot.serverVersionNum,
      payload,
    ]);
  },

  async recordMetrics(target, takenAt, values) {
    const entries = Object.entries(values).filter(([, value]) => Number.isFinite(value));
    if (entries.length === 0) return;
    await db.query(SQL_RECORD_METRICS, [
      target,
      takenAt,
      entries.map(([name]) => name),
      entries.map(([, value]) => value),
    ]);
  },

  async metricSeries(target, metric, since) {
    const { rows } = await db.query(SQL_METRIC_SERIES, [target, metric, since]);
    return rows.map((row) => ({ at: toDate(row.at), value: Number(row.value) }));
  },

  async pruneMetrics(olderThan) {
    const result = (await db.query(SQL_PRUNE_METRICS, [olderThan])) as { rowCount?: number | null };
    return result.rowCount ?? 0;
  },

  async listAlertStates(target) {
    const { rows } = await db.query(SQL_LIST_ALERTS, [target]);
    return rows.map((row) => ({
      target: String(row.target),
      kind: String(row.kind),
      severity: row.severity as AlertSeverity,
      openedAt: toDate(row.opened_at),
      lastSentAt: toDate(row.last_sent_at),
      summary: String(row.summary),
    }));
  },

  async saveAlertState(state) {
    await db.query(SQL_SAVE_ALERT, [
      state.target,
      state.kind,
      state.severity,
      state.openedAt,
      state.lastSentAt,
      state.summary,
    ]);
  },

  async deleteAlertState(target, kind) {
    await db.query(SQL_DELETE_ALERT, [target, kind]);
  },

  async upsertSuggestion(suggestion) {
    const { rows } = await db.query(SQL_UPSERT_SUGGESTION, [
      suggestion.target,
      suggestion.kind,
      suggestion.key,
      suggestion.ddl,
      toJson(suggestion.payload, `suggestion ${suggestion.key}`),
    ]);
    const row = rows[0];
    if (!row) throw new Error('INSERT … RETURNING returned no row');
    return { id: Number(row.id), created: row.created === true };
  },

  async listSuggestions(filter = {}) {
    const clauses: string[] = [];
    const params: unknown[] = [];
    for (const [column, value] of [
      ['target', filter.target],
      ['status', filter.status],
      ['kind', filter.kind],
    ] as const) {
      if (value === undefined) continue;
      params.push(value);
      clauses.push(`${column} = $${params.length}`);
    }
    const where = clauses.length > 0 ? `\nWHERE ${clauses.join('\n  AND ')}` : '';
    const { rows } = await db.query(`${SQL_SELECT_SUGGESTIONS}${where}\nORDER BY id`, params);
    return rows.map(toSuggestion);
  },

  async getSuggestion(id) {
    const { rows } = await db.query(`${SQL_SELECT_SUGGESTIONS}\nWHERE id = $1`, [id]);
    return rows[0] ? toSuggestion(rows[0]) : undefined;
  },

  async setSuggestionStatus(id, status, outcome) {
    await db.query(SQL_SET_SUGGESTION_STATUS, [
      id,
      status,
      outcome === undefined ? null : toJson(outcome, `outcome of suggestion ${id}`),
    ]);
  },
});
