// zod for Lambda bundles (esbuild `--alias:zod=…`, see zod.mjs): zod/v4/classic/external.js
// of zod 4.6 without its `locales` namespace of ~40 translations (~260 KB minified), which
// `import { z } from 'zod'` otherwise pulls into every bundle. English, the only locale dbopt
// uses, is still registered by zod itself (classic/schemas.js); `z.locales.en` stays.
// Files are referred to by path because the package's exports map does not expose them; a
// zod upgrade that moves them fails the bundling test and `npm run bench:cold` loudly.
import en from '../../node_modules/zod/v4/locales/en.js';

export * from '../../node_modules/zod/v4/classic/checks.js';
export * as coerce from '../../node_modules/zod/v4/classic/coerce.js';
export * from '../../node_modules/zod/v4/classic/compat.js';
export { deepPartial } from '../../node_modules/zod/v4/classic/deep-partial.js';
export * from '../../node_modules/zod/v4/classic/errors.js';
export { fromJSONSchema } from '../../node_modules/zod/v4/classic/from-json-schema.js';
export { input, output } from '../../node_modules/zod/v4/classic/in-out.js';
export * as iso from '../../node_modules/zod/v4/classic/iso.js';
export {
  ZodISODate,
  ZodISODateTime,
  ZodISODuration,
  ZodISOTime,
} from '../../node_modules/zod/v4/classic/iso.js';
export * from '../../node_modules/zod/v4/classic/parse.js';
export * from '../../node_modules/zod/v4/classic/schemas.js';
export { toJSONSchema } from '../../node_modules/zod/v4/core/json-schema-processors.js';
export * as core from './zod-lean-core.mjs';
export {
  $brand,
  $input,
  $output,
  clone,
  compile,
  config,
  flattenError,
  formatError,
  getDiscriminatedOption,
  globalRegistry,
  INVALID,
  memoizer,
  NEVER,
  prettifyError,
  regexes,
  registry,
  TimePrecision,
  toZod,
  treeifyError,
  util,
  withParser,
  ZodCompileAsyncError,
  ZodCompileUnsupportedError,
} from './zod-lean-core.mjs';
export const locales = Object.freeze({ en });
