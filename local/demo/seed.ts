import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { LocalModeError } from '../errors.ts';

/**
 * Loads the demo shop (schema.sql + generated rows) into any PostgreSQL 15+ database,
 * embedded or real. Rows come from `generate_series` and a deterministic hash
 * (`dbopt_demo.rnd`), so every load of the same scale is identical.
 */

/** Bump when the schema or the generators change: an older load is then reported, not reused silently. */
export const DEMO_VERSION = 1;

/** Rows at scale 1. order_items follows from orders (1–4 distinct products each, ~2.5 on average). */
export const DEMO_BASE_COUNTS = Object.freeze({
  customers: 20_000,
  products: 2_000,
  orders: 100_000,
  events: 100_000,
});

const DEMO_TABLES = ['customers', 'products', 'orders', 'order_items', 'events'] as const;
export type DemoTable = (typeof DEMO_TABLES)[number];
export type DemoCounts = Record<DemoTable, number>;

/** The part of `pg.Client` the loader uses. Pass a connected client, not a pool: the load is one transaction. */
export interface DemoClient {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    params?: unknown[],
  ): Promise<{ rows: R[]; rowCount: number | null }>;
}

export interface DemoProgress {
  step: DemoTable | 'schema' | 'constraints' | 'analyze';
  /** Rows written by this step (0 for schema, constraints and analyze). */
  rows: number;
  durationMs: number;
}

export interface LoadDemoOptions {
  /** Multiplies every row count (0.02 → 400 customers); default 1. */
  scale?: number;
  /** Drop the demo tables (and any tables with the demo's names) and load again. */
  force?: boolean;
  /**
   * Reset pg_stat_statements after loading (when installed), so the loader's big
   * INSERT … SELECTs do not top the statistics the collectors read. Default false: on a
   * shared database the statistics belong to everyone.
   */
  resetStatementStats?: boolean;
  /** Called after each step, e.g. to print progress. */
  onProgress?: (progress: DemoProgress) => void;
}

export interface LoadDemoResult {
  /** `already-loaded`: the marker was found and nothing was written. */
  status: 'loaded' | 'already-loaded';
  version: number;
  scale: number;
  counts: DemoCounts;
  /** Wall time of this call, in ms. */
  durationMs: number;
}

/** Rows per table for a scale factor (at least 10 of each). */
export const demoCountsFor = (scale: number): Omit<DemoCounts, 'order_items'> => {
  const scaled = (n: number) => Math.max(10, Math.round(n * scale));
  return {
    customers: scaled(DEMO_BASE_COUNTS.customers),
    products: scaled(DEMO_BASE_COUNTS.products),
    orders: scaled(DEMO_BASE_COUNTS.orders),
    events: scaled(DEMO_BASE_COUNTS.events),
  };
};

const LOCK_KEY_SQL = `/* dbopt */ SELECT pg_advisory_xact_lock(hashtext('dbopt_demo.load'))`;

const MARKER_SQL = `/* dbopt */ SELECT to_regclass('dbopt_demo.info') IS NOT NULL AS present`;

const INFO_SQL = `/* dbopt */ SELECT version, scale FROM dbopt_demo.info ORDER BY loaded_at DESC LIMIT 1`;

const EXISTING_TABLES_SQL = `/* dbopt */
SELECT t.name
FROM unnest($1::text[]) AS t (name)
WHERE to_regclass(format('public.%I', t.name)) IS NOT NULL`;

const COUNT_SQL = `/* dbopt */
SELECT (SELECT count(*) FROM customers)::int AS customers,
       (SELECT count(*) FROM products)::int AS products,
       (SELECT count(*) FROM orders)::int AS orders,
       (SELECT count(*) FROM order_items)::int AS order_items,
       (SELECT count(*) FROM events)::int AS events`;

const DROP_SQL = `/* dbopt */
DROP TABLE IF EXISTS public.events, public.order_items, public.orders, public.products, public.customers CASCADE;
DROP SCHEMA IF EXISTS dbopt_demo CASCADE;`;

// $1 = customers
const INSERT_CUSTOMERS_SQL = `/* dbopt */
INSERT INTO customers (id, email, name, country, plan, created_at, metadata)
SELECT i,
       CASE WHEN dbopt_demo.rnd(i, 9) < 0.3 THEN first_name || '.' || last_name
            ELSE lower(first_name || '.' || last_name) END || i || '@' || domain,
       first_name || ' ' || last_name,
       country,
       CASE WHEN dbopt_demo.rnd(i, 5) < 0.05 THEN 'enterprise'
            WHEN dbopt_demo.rnd(i, 5) < 0.30 THEN 'pro'
            ELSE 'free' END,
       timestamptz '2021-01-01 00:00:00+00'
         + (i::double precision / $1) * interval '1612 days'
         + dbopt_demo.rnd(i, 6) * interval '1 day',
       jsonb_build_object(
         'newsletter', dbopt_demo.rnd(i, 7) < 0.4,
         'referrer', dbopt_demo.pick('{organic,ads,partner,friend,social}', dbopt_demo.rnd(i, 8)),
         'marketing_score', floor(dbopt_demo.rnd(i, 10) * 100)::int)
FROM (
  SELECT i,
         dbopt_demo.pick('{Anna,Ben,Chloe,David,Elena,Farid,Grace,Hugo,Ines,Jonas,Kira,Liam,Maya,Noah,Olga,Pablo,Quinn,Rosa,Sven,Tara,Umar,Vera,Wen,Yusuf,Zoe}', dbopt_demo.rnd(i, 1)) AS first_name,
         dbopt_demo.pick('{Berg,Costa,Dubois,Eriksen,Fischer,Garcia,Hansen,Ivanova,Jensen,Kowalski,Lindqvist,Moreau,Novak,Okafor,Petrov,Rossi,Silva,Tanaka,Weber,Yilmaz}', dbopt_demo.rnd(i, 2)) AS last_name,
         dbopt_demo.pick('{example.com,mail.test,shop.example,inbox.test,corp.example}', dbopt_demo.rnd(i, 3)) AS domain,
         dbopt_demo.pick('{US,US,US,US,DE,DE,GB,GB,FR,NL,SE,ES,IT,PL,CA,AU,JP,BR,IN,MX}', dbopt_demo.rnd(i, 4)) AS country
  FROM generate_series(1, $1::int) AS i
) AS g`;

// $1 = products
const INSERT_PRODUCTS_SQL = `/* dbopt */
INSERT INTO products (id, sku, name, category, price_cents, tags)
SELECT i,
       upper(left(category, 3)) || '-' || lpad(((i * 7919) % 1000000)::text, 6, '0'),
       dbopt_demo.pick('{Ergonomic,Compact,Deluxe,Classic,Smart,Rustic,Portable,Premium,Eco,Vintage,Wireless,Sturdy}', dbopt_demo.rnd(i, 12))
         || ' ' || dbopt_demo.pick('{Steel,Wooden,Cotton,Leather,Ceramic,Glass,Bamboo,Carbon,Wool,Linen}', dbopt_demo.rnd(i, 13))
         || ' ' || dbopt_demo.pick('{Lamp,Chair,Backpack,Kettle,Speaker,Notebook,Jacket,Blender,Headphones,Planter,Puzzle,Bottle,Desk,Towel,Watch,Camera,Sneakers,Mug,Drone,Candle}', dbopt_demo.rnd(i, 14)),
       category,
       (199 + floor(power(dbopt_demo.rnd(i, 15), 2) * 49800))::int,
       ARRAY(
         SELECT DISTINCT dbopt_demo.pick('{new,sale,bestseller,eco,gift,limited,bundle,clearance}', dbopt_demo.rnd(i * 4 + k, 16))
         FROM generate_series(1, 1 + floor(dbopt_demo.rnd(i, 17) * 3)::int) AS k)
FROM (
  SELECT i, dbopt_demo.pick('{electronics,home,garden,toys,books,sports,fashion,beauty,grocery,office}', dbopt_demo.rnd(i, 11)) AS category
  FROM generate_series(1, $1::int) AS i
) AS g`;

// Order lines: 1–4 draws per order from a skewed product popularity; repeated draws of one
// product merge into one line (the primary key is order_id + product_id). 10 % of lines
// carry a 10 % discount. Inserted before orders (foreign keys come last), so that the
// order totals below are a plain aggregate. $1 = orders, $2 = products.
const INSERT_ORDER_ITEMS_SQL = `/* dbopt */
INSERT INTO order_items (order_id, product_id, quantity, price_cents)
SELECT l.order_id, l.product_id, l.quantity,
       CASE WHEN dbopt_demo.rnd(l.order_id * 16 + l.product_id, 34) < 0.1
            THEN (p.price_cents * 0.9)::int ELSE p.price_cents END
FROM (
  SELECT o AS order_id,
         1 + floor(power(dbopt_demo.rnd(o * 8 + k, 32), 1.8) * $2::int)::bigint AS product_id,
         sum(1 + floor(power(dbopt_demo.rnd(o * 8 + k, 33), 3) * 4)::int)::int AS quantity
  FROM generate_series(1, $1::int) AS o
  CROSS JOIN LATERAL generate_series(1, 1 + floor(dbopt_demo.rnd(o, 31) * 4)::int) AS k
  GROUP BY 1, 2
) AS l
JOIN products AS p ON p.id = l.product_id`;

// $1 = orders, $2 = customers. Recent orders are still pending/paid/shipped; a few old ones
// are stuck in pending (about 1 % pending overall: a partial index candidate).
const INSERT_ORDERS_SQL = `/* dbopt */
INSERT INTO orders (id, customer_id, status, created_at, total_cents)
SELECT o,
       1 + floor(power(dbopt_demo.rnd(o, 21), 1.6) * $2::int)::bigint,
       CASE WHEN dbopt_demo.rnd(o, 23) < 0.02 THEN 'cancelled'
            WHEN dbopt_demo.rnd(o, 23) < 0.03 THEN 'refunded'
            WHEN dbopt_demo.rnd(o, 24) < 0.002 THEN 'pending'
            WHEN o > 0.985 * $1::int THEN CASE WHEN dbopt_demo.rnd(o, 25) < 0.6 THEN 'pending' ELSE 'paid' END
            WHEN o > 0.95 * $1::int THEN CASE WHEN dbopt_demo.rnd(o, 25) < 0.5 THEN 'paid' ELSE 'shipped' END
            ELSE 'delivered' END,
       timestamptz '2023-01-01 00:00:00+00'
         + (o::double precision / $1::int) * interval '910 days'
         + dbopt_demo.rnd(o, 22) * interval '12 hours',
       coalesce(t.total_cents, 0)
FROM generate_series(1, $1::int) AS o
LEFT JOIN (
  SELECT order_id, sum(quantity * price_cents)::int AS total_cents
  FROM order_items
  GROUP BY order_id
) AS t ON t.order_id = o`;

// $1 = events, $2 = customers, $3 = products, $4 = orders. The last 90 days before
// 2025-06-30; payload shape depends on kind.
const INSERT_EVENTS_SQL = `/* dbopt */
INSERT INTO events (id, customer_id, kind, payload, created_at)
SELECT e, customer_id, kind,
       CASE kind
         WHEN 'page_view' THEN jsonb_build_object(
           'path', '/products/' || (1 + floor(dbopt_demo.rnd(e, 44) * $3::int))::int, 'device', device)
         WHEN 'add_to_cart' THEN jsonb_build_object(
           'product_id', (1 + floor(dbopt_demo.rnd(e, 44) * $3::int))::int,
           'quantity', 1 + floor(dbopt_demo.rnd(e, 45) * 3)::int, 'device', device)
         WHEN 'search' THEN jsonb_build_object(
           'query', dbopt_demo.pick('{lamp,chair,backpack,kettle,speaker,jacket,headphones,mug,desk,watch}', dbopt_demo.rnd(e, 44)),
           'results', floor(dbopt_demo.rnd(e, 45) * 120)::int, 'device', device)
         WHEN 'checkout' THEN jsonb_build_object(
           'order_id', (1 + floor(dbopt_demo.rnd(e, 44) * $4::int))::int,
           'total_cents', 500 + floor(dbopt_demo.rnd(e, 45) * 90000)::int, 'device', device)
         WHEN 'login' THEN jsonb_build_object(
           'method', dbopt_demo.pick('{password,password,sso,magic_link}', dbopt_demo.rnd(e, 44)), 'device', device)
         ELSE jsonb_build_object(
           'priority', dbopt_demo.pick('{low,normal,normal,high,urgent}', dbopt_demo.rnd(e, 44)),
           'topic', dbopt_demo.pick('{shipping,refund,billing,account,product}', dbopt_demo.rnd(e, 45)))
       END,
       timestamptz '2025-04-01 00:00:00+00'
         + (e::double precision / $1::int) * interval '90 days'
         + dbopt_demo.rnd(e, 46) * interval '1 hour'
FROM (
  SELECT e,
         1 + floor(power(dbopt_demo.rnd(e, 41), 1.4) * $2::int)::bigint AS customer_id,
         CASE WHEN dbopt_demo.rnd(e, 42) < 0.50 THEN 'page_view'
              WHEN dbopt_demo.rnd(e, 42) < 0.70 THEN 'add_to_cart'
              WHEN dbopt_demo.rnd(e, 42) < 0.85 THEN 'search'
              WHEN dbopt_demo.rnd(e, 42) < 0.93 THEN 'checkout'
              WHEN dbopt_demo.rnd(e, 42) < 0.98 THEN 'login'
              ELSE 'support_ticket' END AS kind,
         dbopt_demo.pick('{desktop,desktop,mobile,mobile,mobile,tablet}', dbopt_demo.rnd(e, 43)) AS device
  FROM generate_series(1, $1::int) AS e
) AS g`;

// Explicit ids were inserted, so move each identity past them before the app inserts.
const SYNC_IDENTITIES_SQL = `/* dbopt */
SELECT setval(pg_get_serial_sequence('customers', 'id'), (SELECT max(id) FROM customers)),
       setval(pg_get_serial_sequence('products', 'id'), (SELECT max(id) FROM products)),
       setval(pg_get_serial_sequence('orders', 'id'), (SELECT max(id) FROM orders)),
       setval(pg_get_serial_sequence('events', 'id'), (SELECT max(id) FROM events))`;

const INSERT_INFO_SQL = `/* dbopt */ INSERT INTO dbopt_demo.info (version, scale, load_ms) VALUES ($1, $2, $3)`;

const ANALYZE_SQL = '/* dbopt */ ANALYZE customers, products, orders, order_items, events';

const RESET_STATEMENT_STATS_SQL = `/* dbopt */
SELECT pg_stat_statements_reset()
FROM pg_extension
WHERE extname = 'pg_stat_statements'`;

const readSqlFile = (name: 'schema.sql' | 'constraints.sql'): Promise<string> =>
  readFile(new URL(`./${name}`, import.meta.url), 'utf8');

/** Runs `fn` with a connected client: the one passed in, or a new one for a URL (closed after). */
export const withDemoClient = async <T>(
  target: string | DemoClient,
  fn: (client: DemoClient) => Promise<T>,
): Promise<T> => {
  if (typeof target !== 'string') return fn(target);
  const client = new pg.Client({ connectionString: target });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
};

/** Row counts of the demo tables. */
export const countDemoRows = async (client: DemoClient): Promise<DemoCounts> => {
  const { rows } = await client.query<DemoCounts>(COUNT_SQL);
  const [counts] = rows;
  if (!counts)
    throw new LocalModeError('DEMO_LOAD_FAILED', 'Counting the demo rows returned nothing');
  return counts;
};

/**
 * Creates the demo schema and rows in one transaction, then ANALYZEs. Does nothing when the
 * `dbopt_demo.info` marker is already there (unless `force`). Refuses to touch a database
 * that has tables with the demo's names but no marker.
 *
 * @example
 * const result = await loadDemo(process.env.DATABASE_URL, { onProgress: console.log });
 * // { status: 'loaded', counts: { customers: 20000, … }, durationMs: 9000, … }
 */
export const loadDemo = async (
  target: string | DemoClient,
  options: LoadDemoOptions = {},
): Promise<LoadDemoResult> => {
  const scale = options.scale ?? 1;
  if (!(scale > 0 && scale <= 100)) {
    throw new LocalModeError('DEMO_LOAD_FAILED', `Demo scale must be in (0, 100], got ${scale}`);
  }
  const startedAt = performance.now();
  return withDemoClient(target, async (client) => {
    const existing = await findExistingDemo(client);
    if (existing && !options.force) {
      return {
        status: 'already-loaded',
        ...existing,
        counts: await countDemoRows(client),
        durationMs: performance.now() - startedAt,
      };
    }

    const counts = demoCountsFor(scale);
    const step = async (name: DemoProgress['step'], sql: string, params?: unknown[]) => {
      const stepStartedAt = performance.now();
      const result = await client.query(sql, params);
      const rows = result.rowCount ?? 0;
      options.onProgress?.({ step: name, rows, durationMs: performance.now() - stepStartedAt });
      return rows;
    };

    await client.query('BEGIN');
    try {
      // Two loaders at once (two `dbopt serve`): the second waits here, then sees the marker.
      await client.query(LOCK_KEY_SQL);
      const raced = await findExistingDemo(client);
      if (raced && !options.force) {
        await client.query('COMMIT');
        return {
          status: 'already-loaded',
          ...raced,
          counts: await countDemoRows(client),
          durationMs: performance.now() - startedAt,
        };
      }
      if (options.force) {
        await client.query(DROP_SQL);
      } else {
        await assertNoForeignTables(client);
      }
      await step('schema', await readSqlFile('schema.sql'));
      await step('customers', INSERT_CUSTOMERS_SQL, [counts.customers]);
      await step('products', INSERT_PRODUCTS_SQL, [counts.products]);
      const orderItems = await step('order_items', INSERT_ORDER_ITEMS_SQL, [
        counts.orders,
        counts.products,
      ]);
      await step('orders', INSERT_ORDERS_SQL, [counts.orders, counts.customers]);
      await step('events', INSERT_EVENTS_SQL, [
        counts.events,
        counts.customers,
        counts.products,
        counts.orders,
      ]);
      await step('constraints', await readSqlFile('constraints.sql'));
      await client.query(SYNC_IDENTITIES_SQL);
      await client.query(INSERT_INFO_SQL, [
        DEMO_VERSION,
        scale,
        Math.round(performance.now() - startedAt),
      ]);
      await client.query('COMMIT');
      await step('analyze', ANALYZE_SQL);
      if (options.resetStatementStats) await client.query(RESET_STATEMENT_STATS_SQL);
      return {
        status: 'loaded',
        version: DEMO_VERSION,
        scale,
        counts: {
          customers: counts.customers,
          products: counts.products,
          orders: counts.orders,
          order_items: orderItems,
          events: counts.events,
        },
        durationMs: performance.now() - startedAt,
      };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined); // the original error matters more
      if (err instanceof LocalModeError) throw err;
      throw new LocalModeError(
        'DEMO_LOAD_FAILED',
        `Loading the demo failed and was rolled back: ${(err as Error).message}`,
        { cause: err },
      );
    }
  });
};

/** The loaded demo's version and scale, or undefined when the demo is not in this database. */
export const findExistingDemo = async (
  client: DemoClient,
): Promise<{ version: number; scale: number } | undefined> => {
  const { rows } = await client.query<{ present: boolean }>(MARKER_SQL);
  if (!rows[0]?.present) return undefined;
  const info = await client.query<{ version: number; scale: number }>(INFO_SQL);
  return info.rows[0] ?? { version: 0, scale: 0 };
};

const assertNoForeignTables = async (client: DemoClient): Promise<void> => {
  const { rows } = await client.query<{ name: string }>(EXISTING_TABLES_SQL, [DEMO_TABLES]);
  if (rows.length > 0) {
    const names = rows.map((r) => `public.${r.name}`).join(', ');
    throw new LocalModeError(
      'DEMO_CONFLICT',
      `${names} already exist${rows.length === 1 ? 's' : ''} but ${rows.length === 1 ? 'is' : 'are'} not from the dbopt demo; load the demo into an empty database, or use --force to drop and recreate these tables`,
      { details: { tables: rows.map((r) => r.name) } },
    );
  }
};
