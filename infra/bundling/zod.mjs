// Entry aliased to `zod` in Lambda bundles; mirrors zod/index.js (see zod-lean.mjs).
import * as z from './zod-lean.mjs';

export * from './zod-lean.mjs';
export { z, z as default };
