import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from './synth.ts';

// Real esbuild bundling of the functions, then a cold start of each bundle in a plain Node
// process: proves the ESM bundle's require/__dirname shims work and that libpg-query finds
// its WebAssembly file next to index.mjs, as it must in /var/task.
interface BundledFunction {
  readonly assetDir: string;
  readonly environment: Record<string, unknown>;
}
const bundled = new Map<string, BundledFunction>();

/**
 * A template value as the function will see it. Deploy-time values (the cache endpoint, a
 * `Fn::GetAtt` inside a `Fn::Join`) get a stand-in of the same shape.
 */
const deployedValue = (value: unknown): string => {
  if (typeof value === 'string') return value;
  const join = (value as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (join) return join[1].map((part) => (typeof part === 'string' ? part : 'x.invalid')).join('');
  throw new Error(`cannot stand in for ${JSON.stringify(value)}`);
};

beforeAll(() => {
  // Prepare
  const { app, stack } = buildTestApp({ bundle: true });

  // Act
  const assembly = app.synth();
  const template = Template.fromStack(stack);

  for (const name of ['query API', 'cache sweeper']) {
    const [fn] = Object.values(
      template.findResources('AWS::Lambda::Function', {
        Properties: { Runtime: 'nodejs22.x', Description: Match.stringLikeRegexp(name) },
      }),
    );
    const s3Key = fn?.Properties.Code.S3Key as string;
    bundled.set(name, {
      assetDir: join(assembly.directory, `asset.${s3Key.replace(/\.zip$/, '')}`),
      environment: fn?.Properties.Environment.Variables as Record<string, unknown>,
    });
  }
}, 120_000);

const coldStart = (name: string) => {
  const { assetDir, environment } = bundled.get(name) ?? { assetDir: '', environment: {} };
  // Lambda adds AWS_REGION; the runtime CA file exists only in Lambda.
  const { NODE_EXTRA_CA_CERTS: _lambdaOnly, ...templateEnv } = environment;
  const env = {
    PATH: process.env.PATH ?? '',
    ...Object.fromEntries(Object.entries(templateEnv).map(([k, v]) => [k, deployedValue(v)])),
    AWS_REGION: 'us-east-1',
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

describe('query function bundle', () => {
  it('holds the ESM bundle, its source map and the parser WASM', () => {
    const { assetDir } = bundled.get('query API') ?? { assetDir: '' };
    for (const file of ['index.mjs', 'index.mjs.map', 'libpg-query.wasm']) {
      expect(existsSync(join(assetDir, file)), file).toBe(true);
    }
  });

  it('cold-starts with the environment the template gives it', () => {
    // Act
    const result = coldStart('query API');

    // Assess
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });
});

describe('cache sweeper bundle', () => {
  it('holds the ESM bundle and its source map, without the parser', () => {
    const { assetDir } = bundled.get('cache sweeper') ?? { assetDir: '' };
    expect(existsSync(join(assetDir, 'index.mjs'))).toBe(true);
    expect(existsSync(join(assetDir, 'index.mjs.map'))).toBe(true);
    expect(existsSync(join(assetDir, 'libpg-query.wasm'))).toBe(false);
  });

  it('cold-starts with the environment the template gives it', () => {
    // Act
    const result = coldStart('cache sweeper');

    // Assess
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });
});
