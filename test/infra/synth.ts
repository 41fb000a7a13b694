import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BuiltApp, buildApp } from '../../infra/build-app.ts';
import { REPO_ROOT } from '../../infra/paths.ts';

/** cdk.json context (feature flags), so in-process synths match `cdk synth`. */
const cdkJsonContext = (): Record<string, unknown> => {
  const cdkJson = JSON.parse(readFileSync(join(REPO_ROOT, 'cdk.json'), 'utf8')) as {
    context?: Record<string, unknown>;
  };
  return cdkJson.context ?? {};
};

export interface TestAppOptions {
  /** Extra context, as `-c key=value` would give it. */
  readonly context?: Record<string, unknown>;
  /** Run esbuild for real. Off by default: template tests do not need the bundle. */
  readonly bundle?: boolean;
  /** Change the app before it is synthesized (e.g. add an offending resource). */
  readonly mutate?: (built: BuiltApp) => void;
}

/** Builds the real app (stack + cdk-nag plugin) the way `infra/app.ts` does. */
export const buildTestApp = (options: TestAppOptions = {}): BuiltApp => {
  const built = buildApp({
    context: {
      ...cdkJsonContext(),
      ...(options.bundle ? {} : { 'aws:cdk:bundling-stacks': [] }),
      ...options.context,
    },
  });
  options.mutate?.(built);
  return built;
};
