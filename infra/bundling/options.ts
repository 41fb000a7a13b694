import { join } from 'node:path';
import { REPO_ROOT, TSCONFIG_PATH } from '../paths.ts';

/**
 * The one description of how a dbopt Lambda is bundled. `DboptFunction` turns it into
 * NodejsFunction bundling options (esbuild CLI); `bench/cold.ts` into esbuild API options, so
 * the benchmark measures exactly what is deployed.
 *
 * - ESM for Node 22, minified, with a source map (without sources).
 * - The AWS SDK is BUNDLED, not taken from the runtime: the runtime's copy is an older,
 *   unpinned version, and `@aws-sdk/rds-signer` (IAM auth tokens) imports `@smithy/core`
 *   subpaths that older runtimes lack. Tree-shaken, the SDK adds ~130–300 KB per function.
 * - `zod` is aliased to zod-lean (same API without `z.locales`, ~260 KB of translations), which
 *   keeps every bundle under 1 MB.
 * - CommonJS dependencies inside an ESM bundle need `require` (banner) and
 *   `__dirname`/`__filename` (define, Node ≥ 20.11): libpg-query's Emscripten loader finds
 *   `libpg-query.wasm` next to `index.mjs` through them.
 */
export const BUNDLE_TARGET = 'node22';
export const BUNDLE_MAIN_FIELDS = ['module', 'main'] as const;
export const BUNDLE_BANNER =
  "import { createRequire as __dboptCreateRequire } from 'node:module';" +
  'const require = __dboptCreateRequire(import.meta.url);';
export const BUNDLE_DEFINE: Readonly<Record<string, string>> = Object.freeze({
  __dirname: 'import.meta.dirname',
  __filename: 'import.meta.filename',
});
/** Module aliases (esbuild `--alias`). */
export const BUNDLE_ALIAS: Readonly<Record<string, string>> = Object.freeze({
  zod: join(REPO_ROOT, 'infra', 'bundling', 'zod.mjs'),
});
/** Largest bundle (index.mjs) a function may have; checked by the bundling test and bench:cold. */
export const MAX_BUNDLE_BYTES = 1_000_000;

/** esbuild API options for `entry` → `outfile` (bench:cold). */
export const esbuildOptionsFor = (entry: string, outfile: string) => ({
  entryPoints: [entry],
  outfile,
  bundle: true,
  platform: 'node' as const,
  target: BUNDLE_TARGET,
  format: 'esm' as const,
  mainFields: [...BUNDLE_MAIN_FIELDS],
  minify: true,
  sourcemap: true,
  sourcesContent: false,
  tsconfig: TSCONFIG_PATH,
  banner: { js: BUNDLE_BANNER },
  define: { ...BUNDLE_DEFINE },
  alias: { ...BUNDLE_ALIAS },
  logLevel: 'warning' as const,
});
