import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { ConfigSchema, loadConfig } from '#shared/config';
import { buildTestApp } from './synth.ts';

/**
 * The contract between the stack and `shared/config`: every variable the stack sets is one
 * the schema knows, and every function's environment (deploy-time values stood in) loads.
 */
const standIn = (key: string, value: unknown): string => {
  if (typeof value === 'string') return value;
  const join = (value as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (join) {
    return join[1]
      .map((part) => (typeof part === 'string' ? part : 'x.invalid'))
      .join('')
      .replace(/\{\{resolve:[^}]*\}\}/g, 'token');
  }
  if (key.endsWith('_ARN')) return 'arn:aws:rds:us-east-1:000000000000:cluster:stand-in';
  if (key.endsWith('_URL')) return 'https://sqs.us-east-1.amazonaws.com/000000000000/stand-in';
  return 'stand-in.invalid';
};

/** Set by the Lambda runtime or read by Node/Powertools, not by shared/config. */
const RUNTIME_VARIABLES = new Set([
  'NODE_OPTIONS',
  'NODE_EXTRA_CA_CERTS',
  'POWERTOOLS_SERVICE_NAME',
]);

const functionEnvironments = (context: Record<string, unknown>) =>
  Object.values(
    Template.fromStack(buildTestApp({ context }).stack).findResources('AWS::Lambda::Function'),
  )
    .filter((r) => String(r.Properties.Description).startsWith('dbopt '))
    .map((r) => ({
      name: String(r.Properties.Description).split(':')[0] ?? '',
      env: (r.Properties.Environment?.Variables ?? {}) as Record<string, unknown>,
    }));

describe.each([
  ['the default stack', {}],
  ['two shards read through the Data API', { shards: 's1,s2', statsSource: 'data-api' }],
  ['an existing proxy', { database: { mode: 'existing' } }],
  ['the LocalStack profile', { profile: 'localstack', localstack: { redisUrl: 'redis://r:6379' } }],
])('%s', (_name, context) => {
  const environments = functionEnvironments(context);

  it('sets only variables shared/config knows', () => {
    const known = new Set(Object.keys(ConfigSchema.shape));
    const unknown = environments.flatMap(({ name, env }) =>
      Object.keys(env)
        .filter((k) => !known.has(k) && !RUNTIME_VARIABLES.has(k))
        .map((k) => `${name}: ${k}`),
    );
    expect(unknown).toEqual([]);
  });

  it.each(environments.map((e) => [e.name, e.env] as const))(
    '%s loads its configuration',
    (_fn, env) => {
      const values = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, standIn(k, v)]));
      expect(() => loadConfig({ ...values, AWS_REGION: 'us-east-1' })).not.toThrow();
    },
  );
});
