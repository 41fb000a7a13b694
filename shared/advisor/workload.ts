/**
 * Workload inputs: a workload file (`{ templates | queries: [{ id, sql, params, weight_per_hour,
 * kind }] }`) or pg_stat_statements, whose normalised `$n` statements get example values
 * sampled from pg_stats for the column each parameter is compared with — never NULLs.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { type Database, mapDbError } from '#shared/db';
import { initSqlParser, parseStatements } from '#shared/sql';
import { loadCatalog, requestedName, type TableInfo } from './catalog.ts';
import { AdvisorError } from './errors.ts';
import { extractShape, resolveAccess } from './predicates.ts';
import { AdvisorSession } from './session.ts';
import type { WorkloadStatement } from './types.ts';

const TemplateSchema = z.object({
  id: z.union([z.string().min(1), z.number()]).transform(String),
  sql: z.string().min(1),
  params: z.array(z.array(z.unknown())).default([]),
  weight_per_hour: z.number().positive().optional(),
  weightPerHour: z.number().positive().optional(),
  kind: z.enum(['read', 'write']).optional(),
});

const WorkloadFileSchema = z.union([
  z.object({ templates: z.array(TemplateSchema).min(1) }),
  z.object({ queries: z.array(TemplateSchema).min(1) }),
]);

const kindOf = (sql: string): 'read' | 'write' => {
  try {
    const [first] = parseStatements(sql);
    const type = first?.stmt ? Object.keys(first.stmt)[0] : undefined;
    return type === 'SelectStmt' ? 'read' : 'write';
  } catch {
    return 'read';
  }
};

/**
 * Reads a workload file: a path, JSON text, or the parsed object. Entries without `kind` are
 * classified by the parser; `weight_per_hour` defaults to 1.
 *
 * @throws AdvisorError `WORKLOAD_INVALID` naming the bad field.
 */
export const workloadFromFile = async (source: string | object): Promise<WorkloadStatement[]> => {
  let data: unknown = source;
  if (typeof source === 'string') {
    let text = source;
    if (!source.trimStart().startsWith('{')) {
      try {
        text = readFileSync(source, 'utf8');
      } catch (err) {
        throw new AdvisorError(
          'WORKLOAD_INVALID',
          `Cannot read the workload file ${source}: ${(err as Error).message}`,
          { cause: err },
        );
      }
    }
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new AdvisorError(
        'WORKLOAD_INVALID',
        `The workload is not valid JSON: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
  const parsed = WorkloadFileSchema.safeParse(data);
  if (!parsed.success) {
    throw new AdvisorError(
      'WORKLOAD_INVALID',
      `The workload must be { "templates": [{ "id", "sql", "params", "weight_per_hour", "kind" }] }: ${z.prettifyError(parsed.error)}`,
    );
  }
  await initSqlParser();
  const entries = 'templates' in parsed.data ? parsed.data.templates : parsed.data.queries;
  return entries.map((t) => ({
    id: t.id,
    sql: t.sql,
    params: t.params,
    weightPerHour: t.weight_per_hour ?? t.weightPerHour ?? 1,
    kind: t.kind ?? kindOf(t.sql),
  }));
};

// pg_stat_statements ≥ 1.8 (PostgreSQL 13+): total_exec_time / mean_exec_time.
const STAT_STATEMENTS_SQL = `
SELECT /* dbopt */ s.queryid::text AS id, s.query, s.calls::float8 AS calls,
       s.mean_exec_time::float8 AS mean_ms
FROM pg_stat_statements s
WHERE s.dbid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
  AND s.calls >= $1
  AND s.query NOT LIKE '%/* dbopt */%'
ORDER BY s.total_exec_time DESC
LIMIT $2`;

const STATS_RESET_SQL = `
SELECT /* dbopt */ extract(epoch FROM now() - i.stats_reset)::float8 AS seconds
FROM pg_stat_statements_info i`;

const SAMPLE_SETS = 3;

/** Values for `column` to use as example parameters: spread histogram bounds, else MCVs. */
const sampleValues = (table: TableInfo, column: string): string[] => {
  const s = table.stats.get(column);
  if (!s) return [];
  const h = s.histogramBounds;
  if (h.length >= 2) {
    return Array.from(
      { length: SAMPLE_SETS },
      (_, i) => h[Math.floor(((i + 1) * (h.length - 1)) / (SAMPLE_SETS + 1))] as string,
    );
  }
  return s.mostCommonValues.slice(0, SAMPLE_SETS);
};

/** `$n` numbers used as LIMIT / OFFSET (normalised constants): typical page values. */
const limitParams = (node: unknown, out: Map<number, string>): void => {
  if (Array.isArray(node)) {
    for (const n of node) limitParams(n, out);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const obj = node as Record<string, unknown>;
  for (const [field, value] of [
    ['limitCount', '10'],
    ['limitOffset', '0'],
  ] as const) {
    const ref = (obj[field] as { ParamRef?: { number?: number } } | undefined)?.ParamRef;
    if (ref?.number !== undefined) out.set(ref.number, value);
  }
  for (const v of Object.values(obj)) limitParams(v, out);
};

/** The highest `$n` in a parse tree (the statement's parameter count). */
const highestParam = (node: unknown): number => {
  if (Array.isArray(node)) return Math.max(0, ...node.map(highestParam));
  if (node === null || typeof node !== 'object') return 0;
  const ref = (node as { ParamRef?: { number?: number } }).ParamRef;
  if (ref?.number !== undefined) return ref.number;
  return Math.max(0, ...Object.values(node).map(highestParam));
};

/**
 * Reads the heaviest statements of the current database from pg_stat_statements (weights:
 * calls per hour since the stats were reset) and gives each `$n` real example values from
 * pg_stats of the column it is compared with (ranges get adjacent histogram bounds, LIKE a
 * prefix pattern). Statements whose parameters cannot all be sampled are returned with no
 * parameter sets (the advisor reports them as skipped).
 *
 * @throws AdvisorError `STAT_STATEMENTS_UNAVAILABLE` when the extension is not installed.
 */
export const workloadFromStatStatements = async (
  db: Database,
  options: { limit: number; minCalls: number; timeoutMs?: number },
): Promise<WorkloadStatement[]> => {
  await initSqlParser();
  // The advisor's own session: every statement, BEGIN and SET included, carries /* dbopt */.
  const session = await AdvisorSession.open(
    db,
    { statementTimeoutMs: options.timeoutMs ?? 10_000, useHypopg: 'never' },
    [],
  );
  try {
    return await readStatStatements(session, options);
  } finally {
    session.close();
  }
};

const SYSTEM_SCHEMAS: ReadonlySet<string> = new Set([
  'pg_catalog',
  'information_schema',
  'pg_toast',
]);

const readStatStatements = (
  session: AdvisorSession,
  options: { limit: number; minCalls: number },
): Promise<WorkloadStatement[]> =>
  session.readOnly(async (q) => {
    let rows: { id: string; query: string; calls: number; mean_ms: number }[];
    try {
      rows = (
        await q.query<{ id: string; query: string; calls: number; mean_ms: number }>(
          STAT_STATEMENTS_SQL,
          [options.minCalls, options.limit],
        )
      ).rows;
    } catch (err) {
      const mapped = mapDbError(err);
      const sqlState = (mapped as { details?: { sqlState?: string } }).details?.sqlState;
      if (sqlState === '42P01' || sqlState === '55000') {
        throw new AdvisorError(
          'STAT_STATEMENTS_UNAVAILABLE',
          'pg_stat_statements is not available in this database: add it to shared_preload_libraries and run CREATE EXTENSION pg_stat_statements, or pass a workload file',
          { cause: err },
        );
      }
      throw mapped;
    }
    let hours = 1;
    try {
      const reset = await q.query<{ seconds: number | null }>(STATS_RESET_SQL);
      hours = Math.max((reset.rows[0]?.seconds ?? 3600) / 3600, 1 / 60);
    } catch {
      // pg_stat_statements_info is 1.9+ (PostgreSQL 14): weights stay raw call counts.
    }
    const parsed = rows.flatMap((r) => {
      try {
        const stmts = parseStatements(r.query);
        const type =
          stmts.length === 1 && stmts[0]?.stmt ? Object.keys(stmts[0].stmt)[0] : undefined;
        if (!type || !['SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt'].includes(type))
          return [];
        return [
          {
            r,
            stmt: stmts[0]?.stmt,
            kind: type === 'SelectStmt' ? ('read' as const) : ('write' as const),
          },
        ];
      } catch {
        return [];
      }
    });
    const shapes = parsed.map((p) => ({ ...p, shape: extractShape(p.stmt) }));
    const names = new Set<string>();
    for (const { shape } of shapes) {
      for (const b of shape.blocks)
        for (const t of b.tables) names.add(requestedName(t.schema, t.name));
    }
    const catalog = await loadCatalog(q, [...names]);
    const lookup = (t: { schema: string | null; name: string }) => {
      const key = catalog.byRequestedName.get(requestedName(t.schema, t.name));
      const info = key ? catalog.tables.get(key) : undefined;
      return info ? { key: info.key, columns: new Set(info.columns.keys()) } : undefined;
    };
    const result = shapes.map(({ r, stmt, kind, shape }): WorkloadStatement | undefined => {
      const accesses = resolveAccess(shape, lookup);
      // Statements on system catalogs only (HypoPG's own lookups, monitoring) are not workload.
      const tables = accesses.map((a) => catalog.tables.get(a.table)?.schema ?? '');
      if (tables.length > 0 && tables.every((schema) => SYSTEM_SCHEMAS.has(schema)))
        return undefined;
      const values = new Map<number, string[]>();
      const limits = new Map<number, string>();
      limitParams(stmt, limits);
      for (const [n, v] of limits) values.set(n, [v]);
      for (const access of accesses) {
        const table = catalog.tables.get(access.table) as TableInfo;
        for (const p of access.predicates) {
          const column = p.key.kind === 'column' ? p.key.column : p.key.columns[0];
          if (!column) continue;
          const samples = sampleValues(table, column);
          if (samples.length === 0) continue;
          p.params.forEach((n, i) => {
            if (values.has(n)) return;
            if (p.op === 'like')
              values.set(
                n,
                samples.map((v) => `${v.slice(0, Math.max(1, Math.ceil(v.length / 2)))}%`),
              );
            else if (p.op === 'range' && p.bound === 'upper') {
              // The upper bound one histogram step above the lower one: a narrow, typical range.
              const h = table.stats.get(column)?.histogramBounds ?? samples;
              values.set(
                n,
                samples.map((v) => h[Math.min(h.indexOf(v) + 1, h.length - 1)] ?? v),
              );
            } else
              values.set(
                n,
                samples.map((v, k) =>
                  p.params.length > 1 ? (samples[(k + i) % samples.length] as string) : v,
                ),
              );
          });
        }
      }
      const count = highestParam(stmt);
      const complete = Array.from({ length: count }, (_, i) => values.get(i + 1)).every(
        (v) => v !== undefined,
      );
      const params =
        complete && count > 0
          ? Array.from({ length: SAMPLE_SETS }, (_, s) =>
              Array.from({ length: count }, (_, i) => {
                const v = values.get(i + 1) as string[];
                return v[s % v.length];
              }),
            )
          : count === 0
            ? [[]]
            : [];
      return {
        id: r.id,
        sql: r.query,
        params: params as unknown[][],
        weightPerHour: r.calls / hours,
        kind,
        meanExecMs: r.mean_ms,
      };
    });
    return result.filter((w): w is WorkloadStatement => w !== undefined);
  });
