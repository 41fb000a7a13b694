import { afterEach, describe, expect, it } from 'vitest';
import type { Queryable } from '#shared/db';
import { createRepository } from '#shared/repository';

/** A Queryable answering like the RDS Data API (JSON records): timestamps as UTC text. */
const dataApiLike = (rows: Record<string, unknown>[]): Queryable => ({
  query: async <R>() => ({ rows: rows as R[] }),
});

describe('repository over the RDS Data API', () => {
  const zone = process.env.TZ;
  afterEach(() => {
    if (zone === undefined) delete process.env.TZ;
    else process.env.TZ = zone;
  });

  it.each(['UTC', 'Europe/Berlin', 'America/New_York'])(
    'reads zone-less timestamp text as UTC in a process running in %s',
    async (tz) => {
      // Prepare
      process.env.TZ = tz;
      const repo = createRepository(
        dataApiLike([
          {
            target: 'primary',
            kind: 'connections',
            severity: 'WARNING',
            opened_at: '2026-11-27 10:00:00',
            last_sent_at: '2026-11-27 10:30:00.123',
            summary: 's',
          },
        ]),
      );
      // Act
      const [state] = await repo.listAlertStates('primary');
      // Assess
      expect(state?.openedAt.toISOString()).toBe('2026-11-27T10:00:00.000Z');
      expect(state?.lastSentAt.toISOString()).toBe('2026-11-27T10:30:00.123Z');
    },
  );

  it('keeps an explicit offset (pg text output) as given', async () => {
    // Prepare
    const repo = createRepository(dataApiLike([{ at: '2026-11-27 12:00:00+02', value: 1 }]));
    // Act
    const [point] = await repo.metricSeries('primary', 'm', new Date(0));
    // Assess
    expect(point?.at.toISOString()).toBe('2026-11-27T10:00:00.000Z');
  });
});
