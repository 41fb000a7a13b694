import { describe, expect, it } from 'vitest';
import { createMemorySnapshotStore, runSweepLoop, type Sweeper } from '#shared/freshness';
import type { MetricsSink } from '#shared/metrics';

const recordingMetrics = () => {
  const recorded: Array<{ name: string; value: number }> = [];
  const sink: MetricsSink = { addMetric: (name, _unit, value) => recorded.push({ name, value }) };
  return { sink, recorded };
};

const logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

const countingSweeper = (fail: (call: number) => boolean = () => false) => {
  let calls = 0;
  const sweeper: Sweeper = {
    sweepOnce: async () => {
      calls += 1;
      if (fail(calls)) throw new Error(`sweep ${calls} failed`);
      return { changed: [], reset: false, durationMs: 0 };
    },
  };
  return { sweeper, calls: () => calls };
};

describe('runSweepLoop', () => {
  it('sweeps every interval until the deadline', async () => {
    // Prepare
    const { sweeper, calls } = countingSweeper();
    const { sink } = recordingMetrics();
    // Act
    const result = await runSweepLoop({
      sweeper,
      intervalMs: 20,
      deadlineMs: 110,
      metrics: sink,
      logger,
    });
    // Assess: starts at 0, 20, 40, 60, 80 and 100 ms fit in 110 ms
    expect(result.errors).toBe(0);
    expect(result.sweeps).toBe(calls());
    expect(calls()).toBeGreaterThanOrEqual(4);
    expect(calls()).toBeLessThanOrEqual(6);
  });

  it('logs and counts a failed sweep, then keeps sweeping', async () => {
    // Prepare
    const { sweeper, calls } = countingSweeper((call) => call === 1);
    const { sink, recorded } = recordingMetrics();
    const errors: string[] = [];
    // Act
    const result = await runSweepLoop({
      sweeper,
      intervalMs: 5,
      deadlineMs: 40,
      metrics: sink,
      logger: { ...logger, error: (message: string) => errors.push(message) },
    });
    // Assess
    expect(result.errors).toBe(1);
    expect(calls()).toBeGreaterThan(1);
    expect(recorded).toEqual([{ name: 'SweepErrors', value: 1 }]);
    expect(errors).toHaveLength(1);
  });

  it('stops promptly when the signal aborts during the sleep', async () => {
    // Prepare
    const { sweeper, calls } = countingSweeper();
    const controller = new AbortController();
    const { sink } = recordingMetrics();
    const startedMs = performance.now();
    // Act
    const loop = runSweepLoop({
      sweeper,
      intervalMs: 60_000,
      signal: controller.signal,
      metrics: sink,
      logger,
    });
    setTimeout(() => controller.abort(), 20);
    const result = await loop;
    // Assess
    expect(result).toEqual({ sweeps: 1, errors: 0 });
    expect(calls()).toBe(1);
    expect(performance.now() - startedMs).toBeLessThan(1_000);
  });

  it('does not sweep when the signal is already aborted', async () => {
    // Prepare
    const { sweeper, calls } = countingSweeper();
    const { sink } = recordingMetrics();
    // Act
    const result = await runSweepLoop({
      sweeper,
      signal: AbortSignal.abort(),
      metrics: sink,
      logger,
    });
    // Assess
    expect(result).toEqual({ sweeps: 0, errors: 0 });
    expect(calls()).toBe(0);
  });
});

describe('createMemorySnapshotStore', () => {
  it('returns copies, so later mutation does not change the stored snapshot', async () => {
    // Prepare
    const store = createMemorySnapshotStore();
    const snapshot = {
      formatVersion: 1 as const,
      takenAt: 'now',
      epoch: { statsResetAt: null, serverStartedAt: 'then', transactionCount: '1' },
      tables: [],
    };
    // Act
    await store.save('main', snapshot);
    snapshot.epoch.transactionCount = '2';
    const loaded = await store.load('main');
    // Assess
    expect(loaded?.epoch.transactionCount).toBe('1');
    expect(await store.load('other')).toBeUndefined();
  });
});
