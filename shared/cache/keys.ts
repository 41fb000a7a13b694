import { createHash } from 'node:crypto';

/**
 * Bumped whenever the key derivation or the entry framing changes, so a deploy never reads
 * entries written by an older version.
 */
const KEY_FORMAT_VERSION = 1;

/** What a cached result depends on besides the tables it reads. */
export interface CacheKeyInput {
  readonly sql: string;
  /** Bound values as JSON values; `1` and `'1'` are different keys. */
  readonly params: readonly unknown[];
  /** Database the statement runs on (shard name, database id). Part of the key's prefix. */
  readonly target: string;
  /** Database role the statement runs as: row-level security and grants change results. */
  readonly role: string;
  /** Anything else the payload depends on (e.g. the row cap): `maxRows=5` must not see 10 rows. */
  readonly variant?: string;
}

/**
 * The Redis key of one result: `${prefix}:rc:${target}:` + base64url(sha256(canonical JSON)).
 * JSON.stringify keeps parameter types (`1` vs `"1"`), order and object key order: objects
 * with the same members in another order get another key, which is safe (a `json` parameter
 * keeps its key order, so their results may even differ).
 */
export const deriveEntryKey = (prefix: string, input: CacheKeyInput): string => {
  const canonical = JSON.stringify({
    v: KEY_FORMAT_VERSION,
    sql: input.sql,
    params: input.params,
    role: input.role,
    variant: input.variant ?? '',
  });
  const digest = createHash('sha256').update(canonical).digest('base64url');
  return `${prefix}:rc:${input.target}:${digest}`;
};

/** Redis key of the stampede lock of one entry. */
export const lockKeyOf = (entryKey: string): string => `${entryKey}:lock`;

/**
 * Redis key of one table's version. Every table of a target shares the hash tag
 * `{tv:<target>}`, so one MGET (or one Lua script) covers them on cluster-mode Redis too.
 */
export const versionKeyOf = (prefix: string, target: string, bareTable: string): string =>
  `${prefix}:{tv:${target}}:${bareTable}`;

/**
 * The relation name without its schema (and catalog), unquoted. Input is shared/sql's form:
 * parts joined by `.`, a part double-quoted (with `"` doubled) only when it contains `.` or
 * `"`. So `public.users` → `users`, `s."a.b"` → `a.b`, `"x""y"` → `x"y`.
 *
 * Why bare names: the parser cannot see search_path, so an unqualified read of `users` and a
 * write to `public.users` must share one version. Two schemas with a same-named table share a
 * version too, which only invalidates more than needed (safe).
 */
export const bareTableName = (name: string): string => {
  if (!name.endsWith('"')) {
    const dot = name.lastIndexOf('.');
    return dot < 0 ? name : name.slice(dot + 1);
  }
  // A quoted last part: walk back to its opening quote; `""` inside is an escaped quote.
  let i = name.length - 2;
  while (i >= 0) {
    if (name[i] === '"') {
      if (i > 0 && name[i - 1] === '"') {
        i -= 2;
        continue;
      }
      break;
    }
    i -= 1;
  }
  if (i < 0) return name; // unbalanced quoting: keep the text as is (still consistent)
  return name.slice(i + 1, -1).replaceAll('""', '"');
};

/** Bare names, de-duplicated and sorted, so the same tables always give the same list. */
export const bareTableNames = (names: readonly string[]): string[] =>
  [...new Set(names.map(bareTableName))].sort();
