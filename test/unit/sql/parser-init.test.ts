import { describe, expect, it } from 'vitest';
import { createSqlAnalyzer } from '#shared/sql';

// Runs in its own module graph (vitest isolates files), so the parser is not loaded yet.
describe('SqlAnalyzer before initSqlParser', () => {
  it('fails with an instruction instead of a WASM error', () => {
    // Prepare
    const analyzer = createSqlAnalyzer({ cacheEntries: 10 });

    // Act
    const act = () => analyzer.analyze('SELECT 1');

    // Assess
    expect(act).toThrow('await initSqlParser()');
    expect(analyzer.stats().entries).toBe(0);
  });
});
