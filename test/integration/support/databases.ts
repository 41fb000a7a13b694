import pg from 'pg';
import { TEST_DATABASE_URL, testDatabaseUrl } from './env.ts';

/**
 * Drops (if present) and creates database `name` on the test cluster; returns its URL.
 * Each test file uses its own names, so files on the shared cluster never collide.
 */
export const recreateDatabase = async (name: string): Promise<string> => {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`unsafe database name ${name}`);
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return testDatabaseUrl(name);
};
