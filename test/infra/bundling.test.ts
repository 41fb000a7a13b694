import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_BUNDLE_BYTES } from '../../infra/bundling/options.ts';
import { buildTestApp } from './synth.ts';

/** Description prefix of each function → whether it ships the parser's WASM. */
const FUNCTIONS: readonly [string, boolean][] = [
  ['query API', true],
  ['cache sweeper', false],
  ['collect-metrics', false],
  ['collect-slow-queries', true],
  ['optimize', true],
];

// Real esbuild bundling of the functions, then a cold start of each bundle in a plain Node
// process: proves the ESM bundle's require/__dirname shims work and that libpg-query finds
// its WebAssembly file next to index.mjs, as it must in /var/task.
interface BundledFunction {
  readonly assetDir: string;
  readonly environment: Record<string, unknown>;
}
const bundled = new Map<string, BundledFunction>();

/**
 * A template value as the function will see it. Deploy-time values (`Ref`, `Fn::GetAtt`,
 * parts of a `Fn::Join`, secret dynamic references) get a stand-in of the same shape.
 */
const deployedValue = (key: string, value: unknown): string => {
  if (typeof value === 'string') return value;
  const join = (value as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (join) {
    return join[1]
      .map((part) => (typeof part === 'string' ? part : 'x.invalid'))
      .join('')
      .replace(/\{\{resolve:[^}]*\}\}/g, 'token');
  }
  if (key.endsWith('_ARN')) return 'arn:aws:sns:us-east-1:000000000000:stand-in';
  if (key.endsWith('_URL')) return 'https://sqs.us-east-1.amazonaws.com/000000000000/stand-in';
  return 'stand-in.invalid';
};

beforeAll(() => {
  // Prepare
  const { app, stack } = buildTestApp({ bundle: true });

  // Act
  const assembly = app.synth();
  const template = Template.fromStack(stack);

  for (const [name] of FUNCTIONS) {
    const [fn] = Object.values(
      template.findResources('AWS::Lambda::Function', {
        Properties: {
          Runtime: 'nodejs22.x',
          Description: Match.stringLikeRegexp(`^dbopt ${name}:`),
        },
      }),
    );
    const s3Key = fn?.Properties.Code.S3Key as string;
    bundled.set(name, {
      assetDir: join(assembly.directory, `asset.${s3Key.replace(/\.zip$/, '')}`),
      environment: fn?.Properties.Environment.Variables as Record<string, unknown>,
    });
  }
}, 300_000);

const coldStart = (name: string) => {
  const { assetDir, environment } = bundled.get(name) ?? { assetDir: '', environment: {} };
  // Lambda adds AWS_REGION; the runtime CA file exists only in Lambda.
  const { NODE_EXTRA_CA_CERTS: _lambdaOnly, ...templateEnv } = environment;
  const env = {
    PATH: process.env.PATH ?? '',
    ...Object.fromEntries(Object.entries(templateEnv).map(([k, v]) => [k, deployedValue(k, v)])),
    AWS_REGION: 'us-east-1',
    // This machine runs Node 20; Lambda runs 22, where the SDK has nothing to warn about.
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  // Importing runs the handler module's cold-start code (config, clients, parser WASM load);
  // Redis and PostgreSQL clients connect lazily, so nothing is dialled.
  return spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const m = await import(${JSON.stringify(join(assetDir, 'index.mjs'))});
       if (typeof m.handler !== 'function') throw new Error('no handler export');`,
    ],
    { env, encoding: 'utf8', timeout: 60_000 },
  );
};

describe.each(FUNCTIONS)('%s bundle', (name, usesParser) => {
  it(`is at most ${MAX_BUNDLE_BYTES} bytes, with the parser WASM only where it is used`, () => {
    const { assetDir } = bundled.get(name) ?? { assetDir: '' };
    expect(statSync(join(assetDir, 'index.mjs')).size).toBeLessThanOrEqual(MAX_BUNDLE_BYTES);
    expect(existsSync(join(assetDir, 'libpg-query.wasm'))).toBe(usesParser);
  });

  it('bundles zod without its locale tables', () => {
    // Prepare
    const { assetDir } = bundled.get(name) ?? { assetDir: '' };

    // Act
    const code = readFileSync(join(assetDir, 'index.mjs'), 'utf8');

    // Assess: English messages present, a French one (zod's fr locale) absent
    expect(code).toContain('Too big');
    expect(code).not.toContain('Trop grand');
  });

  // The assembly lives in a temporary directory without node_modules, so a successful import
  // also proves that nothing (the AWS SDK included) was left external.
  it('cold-starts with the environment the template gives it', () => {
    const result = coldStart(name);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });
});
