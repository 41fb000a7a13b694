import { type Database, executeStatement } from '#shared/db';

/** Relation kinds whose changes the freshness sweeper sees (table, partitioned, matview). */
const WATCHED_KINDS_SQL = `SELECT /* dbopt */ c.relname AS name, bool_and(c.relkind IN ('r', 'p', 'm')) AS watched
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relname = ANY($1::text[])
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
GROUP BY c.relname`;

/**
 * Knows which relation names are plain tables (or partitioned tables, materialized views):
 * a cached result may only depend on relations whose writes bump a version. A view's rows
 * change when its base tables change, but the view's own name is never bumped, so a statement
 * reading a view (or a foreign table) is not cached.
 *
 * The answers are memoised per process (a documented cache): a name is looked up once, in
 * one catalog query, the first time a cacheable statement reads it. Names are bare (no
 * schema), like the cache's version keys; a name that is a view in any schema counts as a
 * view. Unknown names are not memoised (the table may be created later).
 */
export interface RelationKinds {
  /** True when every named relation is watched; looks up names it has not seen. */
  allWatched(bareNames: readonly string[]): Promise<boolean>;
}

export const createRelationKinds = (db: Database, timeoutMs = 2_000): RelationKinds => {
  const watched = new Map<string, boolean>();
  return {
    async allWatched(bareNames) {
      const unknown = bareNames.filter((name) => !watched.has(name));
      if (unknown.length > 0) {
        const { rows } = await executeStatement(db, {
          sql: WATCHED_KINDS_SQL,
          params: [unknown],
          readOnly: true,
          timeoutMs,
          maxRows: unknown.length,
        });
        for (const row of rows) watched.set(String(row.name), row.watched === true);
      }
      return bareNames.every((name) => watched.get(name) === true);
    },
  };
};
