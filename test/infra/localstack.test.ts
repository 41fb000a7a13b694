import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from './synth.ts';

type Resource = { Type: string; Properties?: Record<string, unknown> };

const DATABASE_URL = 'postgresql://dbopt:secret@host.docker.internal:5432/app';
const REDIS_URL = 'redis://host.docker.internal:6379';

let template: Template;
let functions: Record<string, unknown>[];
let violations: string[];

beforeAll(() => {
  // Prepare
  const { app, stack } = buildTestApp({
    context: {
      profile: 'localstack',
      localstack: JSON.stringify({ databaseUrl: DATABASE_URL, redisUrl: REDIS_URL }),
    },
  });
  // Act
  template = Template.fromStack(stack);
  violations = new AwsSolutionsChecks().validateScope(app).violations.map((v) => v.ruleName);
  functions = Object.values(template.toJSON().Resources as Record<string, Resource>)
    .filter(
      (r) =>
        r.Type === 'AWS::Lambda::Function' &&
        String(r.Properties?.Description).startsWith('dbopt '),
    )
    .map((r) => r.Properties ?? {});
});

describe('LocalStack profile', () => {
  it.each([
    'AWS::EC2::VPC',
    'AWS::RDS::DBCluster',
    'AWS::RDS::DBInstance',
    'AWS::RDS::DBProxy',
    'AWS::ElastiCache::ReplicationGroup',
    'AWS::EC2::VPCEndpoint',
  ])('leaves out %s (not in LocalStack community)', (type) => {
    template.resourceCountIs(type, 0);
  });

  it.each([
    ['AWS::ApiGateway::RestApi', 1],
    ['AWS::SNS::Topic', 1],
    ['AWS::SQS::Queue', 3],
    ['AWS::Scheduler::Schedule', 3],
    ['AWS::Lambda::EventSourceMapping', 1],
  ])('deploys %s ×%i', (type, count) => {
    template.resourceCountIs(type, count);
  });

  it('keeps the alarms', () => {
    expect(Object.keys(template.findResources('AWS::CloudWatch::Alarm')).length).toBeGreaterThan(5);
  });

  it('deploys all five functions outside any VPC, on nodejs22.x/ARM64', () => {
    expect(functions).toHaveLength(5);
    for (const fn of functions) {
      expect(fn.VpcConfig).toBeUndefined();
      expect(fn).toMatchObject({ Runtime: 'nodejs22.x', Architectures: ['arm64'] });
    }
  });

  it('gives every function the plain database URL, without TLS or IAM auth', () => {
    for (const fn of functions) {
      const env = (fn.Environment as { Variables: Record<string, unknown> }).Variables;
      expect(env).toMatchObject({
        DATABASE_URL,
        DB_SSL_MODE: 'disable',
        DB_IAM_AUTH: 'false',
      });
      expect(env.DB_HOST).toBeUndefined();
    }
  });

  it('points the query function and the sweeper at the given Redis', () => {
    const withRedis = functions.filter(
      (fn) => (fn.Environment as { Variables: Record<string, unknown> }).Variables.REDIS_URL,
    );
    expect(withRedis.map((fn) => String(fn.Description).split(':')[0]).sort()).toEqual([
      'dbopt cache sweeper',
      'dbopt query API',
    ]);
    for (const fn of withRedis) {
      expect((fn.Environment as { Variables: Record<string, unknown> }).Variables.REDIS_URL).toBe(
        REDIS_URL,
      );
    }
  });

  it('has no unacknowledged cdk-nag finding', () => {
    expect(violations).toEqual([]);
  });

  it('leaves the sweeper out when no Redis is given (L1 cache only)', () => {
    const { stack } = buildTestApp({ context: { profile: 'localstack' } });
    const descriptions = Object.values(
      Template.fromStack(stack).findResources('AWS::Lambda::Function'),
    ).map((r) => String(r.Properties.Description));
    expect(descriptions.some((d) => d.startsWith('dbopt cache sweeper'))).toBe(false);
    expect(descriptions.some((d) => d.startsWith('dbopt query API'))).toBe(true);
  });
});
