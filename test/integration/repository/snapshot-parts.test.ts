import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRepository, migrateRepository, type Repository } from '#shared/repository';
import { recreateDatabase } from '../support/databases.ts';

const SNAPSHOT_PART_MAX_BYTES = 60_000;

/** A payload shaped like a stored 10k-statement snapshot (~1.1 MB of JSON), with non-ASCII keys. */
const bigPayload = (entries: number) => ({
  format: 1,
  keys: Array.from(
    { length: entries },
    (_, i) => `16384:16385:${-9e15 + i * 7919}:t${i % 97 === 0 ? 'é😀' : ''}`,
  ),
  counters: Array.from({ length: entries * 7 }, (_, i) => i * 1234.567891234 + 0.1),
});

const snapshot = <T>(payload: T, takenAt = new Date('2026-11-27T11:00:00Z')) => ({
  target: 'primary',
  kind: 'statements',
  takenAt,
  statsReset: null,
  serverVersionNum: 150_000,
  payload,
});

describe('snapshot payloads stored in parts (migration 4)', () => {
  let pool: pg.Pool;
  let repo: Repository;

  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: await recreateDatabase('dbopt_it_dapi_parts'), max: 2 });
    await migrateRepository(pool);
    repo = createRepository(pool);
  });

  afterAll(async () => {
    await pool.end();
  });

  it('saves a 10k-entry payload in parts of at most 60,000 bytes and loads it back equal', async () => {
    // Prepare
    const payload = bigPayload(10_000);
    const bytes = Buffer.byteLength(JSON.stringify(payload));
    // Act
    await repo.saveSnapshot(snapshot(payload));
    const loaded = await repo.loadSnapshot<typeof payload>('primary', 'statements');
    // Assess
    expect(bytes).toBeGreaterThan(1024 * 1024);
    expect(loaded?.payload).toEqual(payload);
    const { rows } = await pool.query(
      "SELECT count(*)::int AS parts, max(octet_length(body))::int AS max_bytes, octet_length((SELECT payload::text FROM dbopt.snapshots WHERE kind = 'statements'))::int AS header_bytes FROM dbopt.snapshot_parts WHERE kind = 'statements'",
    );
    expect(rows[0].parts).toBe(Math.ceil(bytes / SNAPSHOT_PART_MAX_BYTES));
    expect(rows[0].max_bytes).toBeLessThanOrEqual(SNAPSHOT_PART_MAX_BYTES);
    expect(rows[0].header_bytes).toBeLessThan(200);
  });

  it('replaces a parted payload by a smaller one, and a small one stays inline', async () => {
    // Prepare
    await repo.saveSnapshot(snapshot(bigPayload(10_000)));
    const smaller = bigPayload(3_000);
    // Act
    await repo.saveSnapshot(snapshot(smaller));
    const afterSmaller = await repo.loadSnapshot('primary', 'statements');
    const partsAfterSmaller = (
      await pool.query(
        "SELECT count(*)::int AS n FROM dbopt.snapshot_parts WHERE kind = 'statements'",
      )
    ).rows[0].n;
    await repo.saveSnapshot(snapshot({ format: 1, keys: ['a'], counters: [1, 2, 3, 4, 5, 6, 7] }));
    const tiny = await repo.loadSnapshot('primary', 'statements');
    // Assess
    expect(afterSmaller?.payload).toEqual(smaller);
    expect(partsAfterSmaller).toBe(
      Math.ceil(Buffer.byteLength(JSON.stringify(smaller)) / SNAPSHOT_PART_MAX_BYTES),
    );
    expect(tiny?.payload).toEqual({ format: 1, keys: ['a'], counters: [1, 2, 3, 4, 5, 6, 7] });
  });

  it('reports a save interrupted after some parts as SNAPSHOT_INCOMPLETE instead of mixing two saves', async () => {
    // Prepare: a complete save, then one part overwritten by a later save that never finished.
    await repo.saveSnapshot(snapshot(bigPayload(10_000)));
    await pool.query(
      "UPDATE dbopt.snapshot_parts SET generation = 'interrupted' WHERE kind = 'statements' AND part = 6",
    );
    // Act / Assess
    await expect(repo.loadSnapshot('primary', 'statements')).rejects.toMatchObject({
      name: 'RepositoryError',
      code: 'SNAPSHOT_INCOMPLETE',
    });
  });
});
