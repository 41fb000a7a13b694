/**
 * Per-process generation counters, one per (target, bare table), bumped by every write this
 * process sees. An L1 entry remembers the generations of its tables when it was stored and is
 * ignored once any of them changed: invalidation is O(tables) per hit, with no scan of L1.
 * Grows with the number of distinct tables written (bounded by the schema).
 */
export interface LocalGenerations {
  /** Identity of one table's counter. */
  keyOf(target: string, bareTable: string): string;
  current(keys: readonly string[]): number[];
  /** True when every counter still has the value in `snapshot`. */
  unchanged(keys: readonly string[], snapshot: readonly number[]): boolean;
  bump(keys: readonly string[]): void;
}

export const createLocalGenerations = (): LocalGenerations => {
  const generations = new Map<string, number>();
  return Object.freeze({
    keyOf: (target: string, bareTable: string) => `${target}\u0000${bareTable}`,
    current: (keys: readonly string[]) => keys.map((k) => generations.get(k) ?? 0),
    unchanged: (keys: readonly string[], snapshot: readonly number[]) => {
      for (let i = 0; i < keys.length; i++) {
        if ((generations.get(keys[i] as string) ?? 0) !== snapshot[i]) return false;
      }
      return true;
    },
    bump: (keys: readonly string[]) => {
      for (const k of keys) generations.set(k, (generations.get(k) ?? 0) + 1);
    },
  });
};
