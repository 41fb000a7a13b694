import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BuiltApp, buildApp } from '../../infra/build-app.ts';
import { FUNCTION_NAMES, type FunctionName } from '../../infra/dbopt-stack.ts';
import { functionEntry, REPO_ROOT } from '../../infra/paths.ts';

/** Stand-in for a handler that has not landed yet (temporary; see FUNCTION_NAMES). */
export const FIXTURE_ENTRY = join(REPO_ROOT, 'test', 'infra', 'fixtures', 'handler.ts');

/** Handlers whose entry file does not exist yet get the fixture (template tests only). */
const missingEntries = (): Partial<Record<FunctionName, string>> =>
  Object.fromEntries(
    FUNCTION_NAMES.filter((name) => !existsSync(functionEntry(name))).map((name) => [
      name,
      FIXTURE_ENTRY,
    ]),
  );

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
  const built = buildApp(
    {
      context: {
        ...cdkJsonContext(),
        ...(options.bundle ? {} : { 'aws:cdk:bundling-stacks': [] }),
        ...options.context,
      },
    },
    missingEntries(),
  );
  options.mutate?.(built);
  return built;
};
