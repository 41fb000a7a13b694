import type { AlertState, AlertStateStore } from './types.ts';

/**
 * An in-process {@link AlertStateStore} for tests and one-shot CLI runs. State lives in the
 * returned object only (no module-level cache); `states()` exposes a copy for assertions.
 */
export const createMemoryAlertStateStore = (
  initial: readonly AlertState[] = [],
): AlertStateStore & { states(): AlertState[] } => {
  const key = (target: string, kind: string) => JSON.stringify([target, kind]);
  const byKey = new Map(initial.map((s) => [key(s.target, s.kind), { ...s }]));
  return {
    async listAlertStates(target) {
      return [...byKey.values()].filter((s) => s.target === target).map((s) => ({ ...s }));
    },
    async saveAlertState(state) {
      byKey.set(key(state.target, state.kind), { ...state });
    },
    async deleteAlertState(target, kind) {
      byKey.delete(key(target, kind));
    },
    states: () => [...byKey.values()].map((s) => ({ ...s })),
  };
};
