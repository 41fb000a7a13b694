import type { DemoProgress } from './demo/seed.ts';

/** Terminal formatting shared by the CLI and `dbopt serve`. */

/** 20000 → "20,000" */
export const formatCount = (n: number): string => n.toLocaleString('en-US');

/** 4213 → "4.2 s", 85 → "85 ms" */
export const formatSeconds = (ms: number): string =>
  ms < 1_000 ? `${Math.round(ms)} ms` : `${(ms / 1_000).toFixed(1)} s`;

/** Hides the password of a connection URL. */
export const redactUrl = (url: string): string => {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable DATABASE_URL)';
  }
};

/** One line per demo loading step: "  customers        20,000 rows   0.5 s". */
export const printDemoStep = (print: (line: string) => void, step: DemoProgress): void => {
  const rows = step.rows > 0 ? `${formatCount(step.rows).padStart(9)} rows` : ''.padStart(14);
  print(`  ${step.step.padEnd(12)} ${rows}  ${formatSeconds(step.durationMs).padStart(7)}`);
};
