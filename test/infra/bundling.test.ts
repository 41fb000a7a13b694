import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from './synth.ts';

// Real esbuild bundling of the query function, then a cold start of the bundle in a plain
// Node process: proves the ESM bundle's require/__dirname shims work and that libpg-query
// finds its WebAssembly file next to index.mjs, as it must in /var/task.
let assetDir: string;
let environment: Record<string, string>;

beforeAll(() => {
  // Prepare
  const { app, stack } = buildTestApp({ bundle: true });

  // Act
  const assembly = app.synth();
  const template = Template.fromStack(stack);

  const [fn] = Object.values(
    template.findResources('AWS::Lambda::Function', { Properties: { Runtime: 'nodejs22.x' } }),
  );
  const s3Key = fn?.Properties.Code.S3Key as string;
  assetDir = join(assembly.directory, `asset.${s3Key.replace(/\.zip$/, '')}`);
  environment = fn?.Properties.Environment.Variables as Record<string, string>;
}, 120_000);

describe('query function bundle', () => {
  it('holds the ESM bundle, its source map and the parser WASM', () => {
    for (const file of ['index.mjs', 'index.mjs.map', 'libpg-query.wasm']) {
      expect(existsSync(join(assetDir, file)), file).toBe(true);
    }
  });

  it('cold-starts with the environment the template gives it', () => {
    // Prepare: Lambda adds AWS_REGION; the runtime CA file exists only in Lambda.
    const { NODE_EXTRA_CA_CERTS: _lambdaOnly, ...templateEnv } = environment;
    const env = { PATH: process.env.PATH ?? '', ...templateEnv, AWS_REGION: 'us-east-1' };

    // Act: importing runs the handler module's cold-start code (config, parser WASM load)
    const result = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const m = await import(${JSON.stringify(join(assetDir, 'index.mjs'))});
         if (typeof m.handler !== 'function') throw new Error('no handler export');`,
      ],
      { env, encoding: 'utf8', timeout: 60_000 },
    );

    // Assess
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });
});
