import pg from 'pg';
import { TEST_DATABASE_URL, testDatabaseUrl } from '../support/env.ts';

/**
 * A fresh database of this helper's own (prefix `dbopt_it_opt_`), dropped and recreated, so
 * tests running at the same time on the shared cluster never see each other's tables.
 */
export const recreateDatabase = async (name: string): Promise<string> => {
  if (!name.startsWith('dbopt_it_opt_')) throw new Error(`refusing to recreate ${name}`);
  const admin = new pg.Client(TEST_DATABASE_URL);
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  return testDatabaseUrl(name);
};

/** Runs SQL on `url` with a short-lived client. */
export const runSql = async (url: string, sql: string, params?: unknown[]) => {
  const client = new pg.Client(url);
  await client.connect();
  try {
    return await client.query(sql, params);
  } finally {
    await client.end();
  }
};
