import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Database } from '#shared/db';
import { DatabaseUnavailableError, QueryTimeoutError } from '#shared/errors';
import { noMetrics } from '#shared/metrics';
import {
  createReplicaSet,
  type LagReading,
  type ReplicaEndpoint,
  type ReplicaPolicy,
} from '#shared/query';
import { createTargetGuard } from '#shared/resilience';

const quiet = { metrics: noMetrics, logger: { warn: () => undefined } };
const guardOptions = {
  consecutiveFailures: 2,
  halfOpenAfterMs: 60_000,
  retries: 0,
  retryBaseDelayMs: 1,
};
const policy: ReplicaPolicy = {
  maxLagMs: 1_000,
  lagCheckIntervalMs: 5_000,
  lagProbeTimeoutMs: 100,
  selection: 'round-robin',
  nonStandby: 'skip',
};

/** Replicas backed by a scripted probe: each replica's next reading (or error) by name. */
const setup = (names: string[], overrides: Partial<ReplicaPolicy> = {}) => {
  const readings = new Map<string, LagReading | Error>();
  const probes: string[] = [];
  const dbs = new Map<Database, string>();
  const endpoints: ReplicaEndpoint[] = names.map((name) => {
    const db = { name } as unknown as Database;
    dbs.set(db, name);
    return { name, db, guard: createTargetGuard(name, guardOptions, quiet) };
  });
  const set = createReplicaSet(
    'primary',
    endpoints,
    { ...policy, ...overrides },
    {
      metrics: noMetrics,
      probe: async (db) => {
        const name = dbs.get(db) as string;
        probes.push(name);
        const next = readings.get(name) ?? { inRecovery: true, lagMs: 0 };
        if (next instanceof Error) throw next;
        return next;
      },
    },
  );
  return { set, readings, probes, endpoints };
};

const chosenNames = async (set: ReturnType<typeof setup>['set'], times: number) => {
  const names: (string | undefined)[] = [];
  for (let i = 0; i < times; i++) names.push((await set.choose()).replica?.name);
  return names;
};

describe('replica selection', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('round-robin alternates between healthy replicas', async () => {
    // Prepare
    const { set } = setup(['primary/r1', 'primary/r2']);
    // Act
    const names = await chosenNames(set, 4);
    // Assess
    expect(names).toEqual(['primary/r1', 'primary/r2', 'primary/r1', 'primary/r2']);
  });

  it('skips a replica lagging beyond the bound and says why', async () => {
    // Prepare
    const { set, readings } = setup(['primary/r1', 'primary/r2']);
    readings.set('primary/r1', { inRecovery: true, lagMs: 4_000 });
    // Act
    const first = await set.choose();
    const second = await set.choose();
    // Assess
    expect(first.replica?.name).toBe('primary/r2');
    expect(first.skipped).toEqual([{ name: 'primary/r1', reason: 'lagging', lagMs: 4_000 }]);
    expect(second.replica?.name).toBe('primary/r2');
  });

  it('falls back (no replica) when every replica is skipped', async () => {
    // Prepare
    const { set, readings } = setup(['primary/r1', 'primary/r2']);
    readings.set('primary/r1', { inRecovery: true, lagMs: 1_001 });
    readings.set('primary/r2', { inRecovery: true, lagMs: undefined });
    // Act
    const choice = await set.choose();
    // Assess
    expect(choice.replica).toBeUndefined();
    expect(choice.skipped.map((s) => s.reason).sort()).toEqual(['lag-unknown', 'lagging']);
  });

  it('measures a lag once per interval, lazily, and again after it', async () => {
    // Prepare
    const { set, probes } = setup(['primary/r1']);
    // Act
    await chosenNames(set, 3);
    const withinInterval = probes.length;
    vi.advanceTimersByTime(5_000);
    await set.choose();
    // Assess
    expect(withinInterval).toBe(1);
    expect(probes).toHaveLength(2);
  });

  it('counts the age of a measurement as lag: a near-limit replica is re-measured early', async () => {
    // Prepare: 900 ms measured; after 150 ms the bound (1,050 ms) passes the 1,000 ms limit.
    const { set, probes, readings } = setup(['primary/r1']);
    readings.set('primary/r1', { inRecovery: true, lagMs: 900 });
    const first = await set.choose();
    vi.advanceTimersByTime(150);
    readings.set('primary/r1', { inRecovery: true, lagMs: 50 });
    // Act
    const second = await set.choose();
    // Assess
    expect(first.lagBoundMs).toBeGreaterThanOrEqual(900);
    expect(probes).toHaveLength(2);
    expect(second.replica?.name).toBe('primary/r1');
    expect(second.lagBoundMs).toBeLessThan(100);
  });

  it('keeps a lagging replica skipped until the interval passes (no probe per request)', async () => {
    // Prepare
    const { set, probes, readings } = setup(['primary/r1']);
    readings.set('primary/r1', { inRecovery: true, lagMs: 9_000 });
    // Act
    await chosenNames(set, 5);
    // Assess
    expect(probes).toHaveLength(1);
  });

  it.each([
    ['skip', undefined],
    ['zero-lag', 'primary/r1'],
  ] as const)(
    'an endpoint not in recovery with policy %s → chosen %s',
    async (nonStandby, chosen) => {
      // Prepare
      const { set, readings } = setup(['primary/r1'], { nonStandby });
      readings.set('primary/r1', { inRecovery: false, lagMs: undefined });
      // Act
      const choice = await set.choose();
      // Assess
      expect(choice.replica?.name).toBe(chosen);
      if (chosen === undefined) expect(choice.skipped[0]?.reason).toBe('not-a-standby');
    },
  );

  it('a replica that cannot be reached is skipped, opens its breaker, then is not probed', async () => {
    // Prepare
    const { set, probes, readings, endpoints } = setup(['primary/r1', 'primary/r2']);
    readings.set('primary/r1', new DatabaseUnavailableError('connection refused'));
    // Act: one read per lag-check interval (a failed probe is trusted for the interval).
    const reasons: string[] = [];
    for (let i = 0; i < 6; i++) {
      const choice = await set.choose();
      expect(choice.replica?.name).toBe('primary/r2');
      const skip = choice.skipped.find((s) => s.name === 'primary/r1');
      if (skip) reasons.push(skip.reason);
      vi.advanceTimersByTime(5_000);
    }
    // Assess: two failed probes open the breaker (consecutiveFailures 2); later reads skip it.
    expect(reasons).toEqual(['probe-failed', 'probe-failed', 'breaker-open']);
    expect(probes.filter((name) => name === 'primary/r1')).toHaveLength(2);
    expect(endpoints[0]?.guard.state()).toBe('open');
  });

  it('a probe that timed out is not repeated by every read until the interval passes', async () => {
    // Prepare: a hung replica times out; timeouts do not open its breaker.
    const { set, probes, readings, endpoints } = setup(['primary/r1', 'primary/r2']);
    readings.set('primary/r1', new QueryTimeoutError('lag probe timed out'));
    // Act
    const choices = [];
    for (let i = 0; i < 6; i++) choices.push(await set.choose());
    const withinInterval = probes.filter((name) => name === 'primary/r1').length;
    vi.advanceTimersByTime(5_000);
    await chosenNames(set, 2);
    // Assess
    expect(choices.map((c) => c.replica?.name)).toEqual(Array(6).fill('primary/r2'));
    expect(endpoints[0]?.guard.state()).toBe('closed');
    expect(withinInterval).toBe(1);
    expect(probes.filter((name) => name === 'primary/r1')).toHaveLength(2);
  });

  it('least-outstanding prefers the replica with fewer reads in flight', async () => {
    // Prepare
    const { set, endpoints } = setup(['primary/r1', 'primary/r2'], {
      selection: 'least-outstanding',
    });
    let finish: () => void = () => undefined;
    const busy = set.track(
      endpoints[0] as ReplicaEndpoint,
      () => new Promise<void>((resolve) => (finish = resolve)),
    );
    // Act
    const whileBusy = await chosenNames(set, 3);
    finish();
    await busy;
    // Assess
    expect(whileBusy).toEqual(['primary/r2', 'primary/r2', 'primary/r2']);
  });

  it('health reports each replica with state, breaker and last lag', async () => {
    // Prepare
    const { set, readings } = setup(['primary/r1', 'primary/r2']);
    readings.set('primary/r1', { inRecovery: true, lagMs: 40 });
    readings.set('primary/r2', { inRecovery: true, lagMs: 7_000 });
    // Act
    const health = await set.health();
    // Assess
    expect(health).toEqual([
      expect.objectContaining({ name: 'primary/r1', target: 'primary', state: 'ok', lagMs: 40 }),
      expect.objectContaining({ name: 'primary/r2', state: 'lagging', lagMs: 7_000 }),
    ]);
    expect(health[0]?.breaker).toBe('closed');
  });
});
