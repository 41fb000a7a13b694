import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { QUERY_FUNCTION_TIMEOUT, QUERY_MAX_TIMEOUT_MS } from '../../infra/constructs/query-api.ts';
import { buildTestApp } from './synth.ts';

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;
interface Statement {
  Action: string | string[];
  Resource: unknown;
  Effect: string;
}

type GetAtt = { 'Fn::GetAtt': [string, string] };
interface QueryFunctionProps {
  Environment: { Variables: Record<string, string> };
  Timeout: number;
  VpcConfig: { SubnetIds: { Ref: string }[]; SecurityGroupIds: GetAtt[] };
  LoggingConfig: { LogGroup: { Ref: string } };
  Role: GetAtt;
}

const asArray = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);

let template: Template;
let resources: Resources;

/** IAM statements of the template (or of one role), inline role policies included. */
const allStatements = (roleId?: string): Statement[] => {
  const documents: { Statement: Statement[] }[] = [];
  for (const [id, resource] of Object.entries(resources)) {
    const props = resource.Properties ?? {};
    if (resource.Type === 'AWS::IAM::Policy') {
      const roles = (props.Roles ?? []) as { Ref: string }[];
      if (roleId === undefined || roles.some((r) => r.Ref === roleId)) {
        documents.push(props.PolicyDocument as { Statement: Statement[] });
      }
    }
    if (resource.Type === 'AWS::IAM::Role' && (roleId === undefined || id === roleId)) {
      const inline = (props.Policies ?? []) as { PolicyDocument: { Statement: Statement[] } }[];
      documents.push(...inline.map((p) => p.PolicyDocument));
    }
  }
  return documents.flatMap((d) => d.Statement);
};

const queryFunction = (): QueryFunctionProps => {
  const found = Object.values(
    template.findResources('AWS::Lambda::Function', {
      Properties: { Description: Match.stringLikeRegexp('query API') },
    }),
  );
  expect(found).toHaveLength(1);
  return found[0]?.Properties as QueryFunctionProps;
};

beforeAll(() => {
  // Prepare
  const { stack } = buildTestApp({
    context: {
      dbProxyEndpoint: 'dbopt.proxy-abc.us-east-1.rds.amazonaws.com',
      dbProxyResourceId: 'prx-0123456789abcdef0',
      database: { mode: 'existing' },
      dbUser: 'api_reader',
      sweeperDbUser: 'cache_sweeper',
    },
  });
  // Act (synthesizes the whole app, running the cdk-nag plugin)
  template = Template.fromStack(stack);
  resources = template.toJSON().Resources as Resources;
}, 120_000); // the first synth in a worker loads the CloudFormation validation rules

describe('query Lambda', () => {
  it('runs nodejs22.x on ARM64, bundled as ESM, with tracing', () => {
    // Assess
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('query API'),
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      MemorySize: 512,
      Timeout: 10,
      TracingConfig: { Mode: 'Active' },
    });
  });

  it('connects with TLS verify-full and IAM auth through the proxy', () => {
    const props = queryFunction();
    expect(props.Environment.Variables).toMatchObject({
      DB_HOST: 'dbopt.proxy-abc.us-east-1.rds.amazonaws.com',
      DB_PORT: '5432',
      DB_USER: 'api_reader',
      DB_SSL_MODE: 'verify-full',
      DB_IAM_AUTH: 'true',
      NODE_EXTRA_CA_CERTS: '/var/runtime/ca-cert.pem',
      NODE_OPTIONS: '--enable-source-maps',
      METRICS_NAMESPACE: 'dbopt',
      QUERY_MAX_TIMEOUT_MS: String(QUERY_MAX_TIMEOUT_MS),
    });
  });

  it('uses the result cache over TLS with the AUTH token resolved at deploy time', () => {
    const props = queryFunction();
    expect(props.Environment.Variables.REDIS_URL).toEqual({
      'Fn::Join': [
        '',
        [
          'rediss://:{{resolve:secretsmanager:',
          { Ref: expect.stringMatching(/^ResultCacheAuthToken/) },
          ':SecretString:token::}}@',
          { 'Fn::GetAtt': [expect.stringMatching(/^ResultCache/), 'PrimaryEndPoint.Address'] },
          ':6379',
        ],
      ],
    });
  });

  it('lets the handler time out before Lambda does', () => {
    const props = queryFunction();
    expect(props.Timeout * 1000).toBe(QUERY_FUNCTION_TIMEOUT.toMilliseconds());
    expect(Number(props.Environment.Variables.QUERY_MAX_TIMEOUT_MS)).toBeLessThan(
      props.Timeout * 1000,
    );
  });

  it('runs in the isolated subnets with its own security group', () => {
    const props = queryFunction();
    const subnetIds = props.VpcConfig.SubnetIds as { Ref: string }[];
    expect(subnetIds).toHaveLength(2);
    for (const { Ref } of subnetIds) {
      expect(resources[Ref]?.Properties?.MapPublicIpOnLaunch).toBe(false);
    }
    expect(props.VpcConfig.SecurityGroupIds).toHaveLength(1);
  });

  it('may open connections only to PostgreSQL inside the VPC and to the cache', () => {
    const props = queryFunction();
    const groupId = props.VpcConfig.SecurityGroupIds[0]?.['Fn::GetAtt'][0] ?? '';
    const egress = resources[groupId]?.Properties?.SecurityGroupEgress as unknown[];
    expect(egress).toEqual([
      {
        CidrIp: { 'Fn::GetAtt': [expect.stringMatching(/Vpc/), 'CidrBlock'] },
        Description: 'PostgreSQL inside the VPC',
        FromPort: 5432,
        ToPort: 5432,
        IpProtocol: 'tcp',
      },
    ]);
    const separateEgress = Object.values(resources)
      .filter((r) => r.Type === 'AWS::EC2::SecurityGroupEgress')
      .map((r) => r.Properties ?? {})
      .filter((p) => JSON.stringify(p.GroupId).includes(groupId));
    expect(separateEgress).toEqual([
      expect.objectContaining({
        DestinationSecurityGroupId: {
          'Fn::GetAtt': [expect.stringMatching(/^ResultCacheSecurityGroup/), 'GroupId'],
        },
        FromPort: 6379,
        ToPort: 6379,
        IpProtocol: 'tcp',
      }),
    ]);
  });

  it('writes to its own log group, kept one month', () => {
    const props = queryFunction();
    const logGroupId = props.LoggingConfig.LogGroup.Ref;
    expect(resources[logGroupId]?.Properties?.RetentionInDays).toBe(30);
  });
});

describe('query API', () => {
  it('exposes POST /query with IAM auth and a body validator', () => {
    const queryResource = Object.entries(resources).find(
      ([, r]) => r.Type === 'AWS::ApiGateway::Resource' && r.Properties?.PathPart === 'query',
    );
    expect(queryResource).toBeDefined();
    template.hasResourceProperties('AWS::ApiGateway::Method', {
      HttpMethod: 'POST',
      ResourceId: { Ref: queryResource?.[0] },
      AuthorizationType: 'AWS_IAM',
      RequestValidatorId: { Ref: Match.anyValue() },
      RequestModels: { 'application/json': { Ref: Match.anyValue() } },
      Integration: { Type: 'AWS_PROXY' },
    });
    template.hasResourceProperties('AWS::ApiGateway::RequestValidator', {
      ValidateRequestBody: true,
      ValidateRequestParameters: true,
    });
  });

  it('requires a non-empty sql string in the body', () => {
    template.hasResourceProperties('AWS::ApiGateway::Model', {
      ContentType: 'application/json',
      Schema: Match.objectLike({
        required: ['sql'],
        properties: { sql: Match.objectLike({ type: 'string', minLength: 1 }) },
      }),
    });
  });

  it('has no method without authorization', () => {
    const methods = template.findResources('AWS::ApiGateway::Method');
    expect(Object.keys(methods).length).toBeGreaterThan(0);
    for (const method of Object.values(methods)) {
      expect(method.Properties.AuthorizationType).toBe('AWS_IAM');
    }
  });

  it('throttles, traces and access-logs the stage, without logging bodies', () => {
    template.hasResourceProperties('AWS::ApiGateway::Stage', {
      TracingEnabled: true,
      AccessLogSetting: {
        DestinationArn: Match.anyValue(),
        Format: Match.stringLikeRegexp('requestId'),
      },
      MethodSettings: [
        Match.objectLike({
          HttpMethod: '*',
          ResourcePath: '/*',
          ThrottlingRateLimit: 100,
          ThrottlingBurstLimit: 200,
          LoggingLevel: 'ERROR',
          DataTraceEnabled: false,
        }),
      ],
    });
  });

  it('answers a bad body with the validator message', () => {
    template.hasResourceProperties('AWS::ApiGateway::GatewayResponse', {
      ResponseType: 'BAD_REQUEST_BODY',
      StatusCode: '400',
      ResponseTemplates: {
        'application/json': Match.stringLikeRegexp('validationErrorString'),
      },
    });
  });

  it('lets only the API stage invoke the function, on POST /query and GET /health', () => {
    const permissions = Object.values(template.findResources('AWS::Lambda::Permission'));
    const sourceArns = permissions.map((p) => JSON.stringify(p.Properties.SourceArn)).sort();
    expect(sourceArns).toHaveLength(2);
    expect(sourceArns[0]).toContain('/GET/health');
    expect(sourceArns[1]).toContain('/POST/query');
  });

  it('puts GET /health behind IAM auth too', () => {
    template.hasResourceProperties('AWS::ApiGateway::Method', {
      HttpMethod: 'GET',
      AuthorizationType: 'AWS_IAM',
    });
  });

  it('has a usage plan on stage v1 with the stage throttle, no key required by default', () => {
    template.hasResourceProperties('AWS::ApiGateway::UsagePlan', {
      Throttle: { RateLimit: 100, BurstLimit: 200 },
      ApiStages: [{ ApiId: { Ref: Match.anyValue() }, Stage: { Ref: Match.anyValue() } }],
    });
    for (const method of Object.values(template.findResources('AWS::ApiGateway::Method'))) {
      expect(method.Properties.ApiKeyRequired).toBe(false);
    }
  });

  it('requires an API key and sets the daily quota when configured', () => {
    // Prepare
    const { stack } = buildTestApp({
      context: { database: { mode: 'existing' }, apiKeyRequired: 'true', apiQuotaPerDay: '5000' },
    });

    // Act
    const variant = Template.fromStack(stack);

    // Assess
    variant.hasResourceProperties('AWS::ApiGateway::UsagePlan', {
      Quota: { Limit: 5000, Period: 'DAY' },
    });
    for (const method of Object.values(variant.findResources('AWS::ApiGateway::Method'))) {
      expect(method.Properties.ApiKeyRequired).toBe(true);
    }
  });

  it('offers a managed policy that may invoke exactly POST /query and GET /health', () => {
    // Prepare
    const [policy] = Object.values(template.findResources('AWS::IAM::ManagedPolicy'));

    // Act
    const statements = policy?.Properties.PolicyDocument.Statement as Statement[];

    // Assess
    expect(statements).toHaveLength(1);
    expect(statements[0]?.Action).toBe('execute-api:Invoke');
    const resources = JSON.stringify(statements[0]?.Resource);
    expect(resources).toContain('"/POST/query"');
    expect(resources).toContain('"/GET/health"');
    expect(resources).not.toContain('*');
    template.hasOutput('InvokePolicyArn', { Value: { Ref: Match.anyValue() } });
  });

  it('outputs the query URL', () => {
    template.hasOutput('QueryUrl', {
      Value: { 'Fn::Join': ['', Match.arrayWith([Match.stringLikeRegexp('/query$')])] },
    });
  });
});

describe('least privilege', () => {
  it('grants the query function rds-db:connect on exactly one proxy user', () => {
    const roleId = queryFunction().Role['Fn::GetAtt'][0];
    const connect = allStatements(roleId).filter((s) =>
      asArray(s.Action).includes('rds-db:connect'),
    );
    expect(connect).toEqual([
      {
        Action: 'rds-db:connect',
        Effect: 'Allow',
        Resource: 'arn:aws:rds-db:us-east-1:000000000000:dbuser:prx-0123456789abcdef0/api_reader',
      },
    ]);
  });

  it('has no wildcard actions and no wildcard rds-db resources', () => {
    for (const statement of allStatements()) {
      for (const action of asArray(statement.Action)) {
        expect(action).not.toBe('*');
        expect(action).not.toMatch(/:\*$/);
      }
      if (asArray(statement.Action).some((a) => a.startsWith('rds-db:'))) {
        expect(JSON.stringify(statement.Resource)).not.toContain('*');
      }
    }
  });

  it('uses "*" only where AWS offers no resource-level permission', () => {
    const allowedOnStar = new Set([
      'ec2:CreateNetworkInterface',
      'ec2:DescribeNetworkInterfaces',
      'ec2:DescribeSubnets',
      'ec2:DeleteNetworkInterface',
      'ec2:AssignPrivateIpAddresses',
      'ec2:UnassignPrivateIpAddresses',
      'xray:PutTraceSegments',
      'xray:PutTelemetryRecords',
    ]);
    const onStar = allStatements()
      .filter((s) => asArray(s.Resource as unknown).includes('*'))
      .flatMap((s) => asArray(s.Action));
    expect(onStar.filter((a) => !allowedOnStar.has(a))).toEqual([]);
  });

  it('gives the query function a role without managed policies', () => {
    const props = queryFunction();
    const roleId = props.Role['Fn::GetAtt'][0];
    expect(resources[roleId]?.Properties?.ManagedPolicyArns).toBeUndefined();
  });
});
