import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AdvisorOptions, adviseIndexes, DEFAULT_ADVISOR_OPTIONS } from '#shared/advisor';
import { createDatabase, type Database } from '#shared/db';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../../../local/embedded-postgres.ts';
import { testDatabaseOptions } from '../support/env.ts';

/**
 * Embedded PGlite is one backend shared by every connection: what a session leaves behind
 * (prepared statements) is seen by the next one. The advisor runs there in local mode, again
 * and again, so each run must clean up after itself.
 */
let embedded: EmbeddedPostgres;
let client: pg.Client;
let db: Database;

const workload = [
  {
    id: 'by_sensor',
    sql: 'SELECT count(*) FROM readings WHERE sensor_id = $1',
    params: [[7], [42]],
    weightPerHour: 1_000,
    kind: 'read' as const,
  },
];
const options: AdvisorOptions = { ...DEFAULT_ADVISOR_OPTIONS, statementTimeoutMs: 20_000 };

beforeAll(async () => {
  embedded = await startEmbeddedPostgres({ port: 0 });
  client = new pg.Client({ connectionString: embedded.url });
  await client.connect();
  await client.query(`
    CREATE TABLE readings (id int PRIMARY KEY, sensor_id int NOT NULL, value float8 NOT NULL);
    INSERT INTO readings SELECT g, g % 2000, g * 0.5 FROM generate_series(1, 40000) g;
    ANALYZE readings;`);
  db = createDatabase(testDatabaseOptions(embedded.url, { queryTimeoutMs: 60_000 }));
}, 120_000);

afterAll(async () => {
  await db?.end();
  await client?.end();
  await embedded?.stop();
});

describe('the index advisor on embedded PGlite', () => {
  it('proposes the same index on a second run and leaves no prepared statement behind', async () => {
    // Act
    const first = await adviseIndexes({ db }, workload, options);
    const second = await adviseIndexes({ db }, workload, options);
    let leftover = -1;
    for (let i = 0; i < 50 && leftover !== 0; i += 1) {
      const { rows } = await client.query(
        "SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'dbopt_advisor%'",
      );
      leftover = rows[0].n;
      if (leftover !== 0) await new Promise((r) => setTimeout(r, 100));
    }

    // Assess
    const keysOf = (r: typeof first) => r.proposals.map((p) => `${p.table}(${p.keys.join(',')})`);
    expect(keysOf(first)).toEqual(['public.readings(sensor_id)']);
    expect(keysOf(second)).toEqual(keysOf(first));
    expect(second.warnings.filter((w) => w.includes('already exists'))).toEqual([]);
    expect(first.method).toBe('rollback-build');
    expect(leftover).toBe(0);
  }, 120_000);
});
