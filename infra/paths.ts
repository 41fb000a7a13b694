import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Repository root: the `projectRoot` of every bundled function and the home of
 * `package-lock.json`. Derived from this file's location, not from the working directory, so
 * `cdk synth` and the infra tests resolve the same paths wherever they are started.
 */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export const LOCK_FILE_PATH = join(REPO_ROOT, 'package-lock.json');
export const TSCONFIG_PATH = join(REPO_ROOT, 'tsconfig.json');

/** Entry file of a Lambda: `functions/<name>/handler.ts`. */
export const functionEntry = (name: string): string =>
  join(REPO_ROOT, 'functions', name, 'handler.ts');

/**
 * The PostgreSQL parser compiled to WebAssembly. libpg-query's Emscripten loader reads it
 * from the directory of the running script, so it must sit next to the bundle.
 */
export const LIBPG_QUERY_WASM_PATH = join(
  dirname(createRequire(import.meta.url).resolve('libpg-query/package.json')),
  'wasm',
  'libpg-query.wasm',
);
