import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigSchema } from '#shared/config';

const root = new URL('../../', import.meta.url);
const readme = readFileSync(new URL('README.md', root), 'utf8');
const packageJson = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as {
  scripts: Record<string, string>;
};

/** The README is the user's manual: it must not drift from the code. */
describe('README', () => {
  it.each(Object.keys(ConfigSchema.shape))('documents the configuration variable %s', (key) => {
    // Assess
    expect(readme).toContain(`\`${key}\``);
  });

  it('names only npm scripts that exist', () => {
    // Prepare
    const named = [...readme.matchAll(/npm run ([a-z:-]+)/g)].map((m) => m[1] as string);

    // Assess
    expect(named.length).toBeGreaterThan(5);
    expect(named.filter((name) => !(name in packageJson.scripts))).toEqual([]);
  });

  it('gives the test command CI runs', () => {
    // Prepare
    const ci = readFileSync(new URL('.ci/run', root), 'utf8');

    // Assess
    expect(readme).toContain('```sh\nnpm test\n```');
    expect(ci).toMatch(/^\s*npm test\b/m);
  });
});
