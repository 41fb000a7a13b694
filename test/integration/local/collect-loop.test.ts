import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalCollectors } from '../../../local/collect-loop.ts';
import { recreateDatabase } from '../support/databases.ts';

/**
 * Local mode's stand-in for SQS + the optimize Lambda: a slow statement seen by the slow-query
 * collector reaches the optimizer in-process and its index suggestion is printed and stored.
 */
describe('local collectors with the in-process optimizer', () => {
  let url: string;
  let client: pg.Client;

  beforeAll(async () => {
    url = await recreateDatabase('dbopt_it_local_collect');
    client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`
      CREATE EXTENSION pg_stat_statements;
      CREATE TABLE readings (id bigint PRIMARY KEY, sensor_id int NOT NULL, value float8 NOT NULL);
      INSERT INTO readings SELECT g, g % 5000, random() FROM generate_series(1, 200000) g;
      ANALYZE readings;`);
  });

  afterAll(async () => {
    await client.end();
  });

  it('prints the new index suggestion for a slow statement and stores it in the repository', async () => {
    // Prepare
    const lines: string[] = [];
    const abort = new AbortController();
    const sawSuggestion = new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (lines.some((l) => l.includes('NEW create_index'))) {
          clearInterval(timer);
          resolve();
        }
      }, 50);
    });
    const collectors = await startLocalCollectors({
      signal: abort.signal,
      print: (line) => lines.push(line),
      env: {
        DATABASE_URL: url,
        DB_SSL_MODE: 'disable',
        COLLECT_METRICS_INTERVAL_MS: '60000',
        COLLECT_SLOW_QUERIES_INTERVAL_MS: '1500',
        SLOW_QUERY_MIN_MEAN_MS: '1',
      },
    });

    // Act: the first slow-query run stores the baseline; the workload lands in the next interval.
    while (!lines.some((l) => l.includes('baseline stored'))) {
      await new Promise((r) => setTimeout(r, 50));
    }
    for (let i = 0; i < 20; i += 1) {
      await client.query('SELECT count(*) FROM readings WHERE sensor_id = $1', [i]);
    }
    await Promise.race([sawSuggestion, new Promise((r) => setTimeout(r, 60_000))]);
    abort.abort();
    await collectors.done;
    await collectors.shutdown();

    // Assess
    expect(lines.join('\n')).toMatch(/optimizer: analysing SELECT count\(\*\) FROM readings/);
    expect(lines.join('\n')).toMatch(
      /NEW create_index #\d+: public\.readings USING btree \(sensor_id\)/,
    );
    const { rows } = await client.query(
      "SELECT kind, status, ddl FROM dbopt.suggestions WHERE kind = 'create_index'",
    );
    expect(rows).toEqual([
      expect.objectContaining({ status: 'proposed', ddl: expect.stringContaining('(sensor_id)') }),
    ]);
  }, 90_000);
});
