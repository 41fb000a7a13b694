import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { functionEntry } from '../paths.ts';
import type { DatabaseConnection } from './database-access.ts';
import { DboptFunction } from './dbopt-function.ts';
import type { RedisEndpoint } from './result-cache.ts';

/** Longest query a caller may ask for; the handler enforces it on the client side. */
export const QUERY_MAX_TIMEOUT_MS = 8_000;
/** Above QUERY_MAX_TIMEOUT_MS, so the handler's own time limit fires before Lambda's. */
export const QUERY_FUNCTION_TIMEOUT = Duration.seconds(10);
/** Coarse gate at the edge; the handler checks the exact byte limit (QUERY_MAX_SQL_BYTES). */
const SQL_MAX_LENGTH = 16_384;

export interface QueryApiProps {
  /** @default - outside any VPC (LocalStack) */
  readonly vpc?: ec2.IVpc;
  /** The primary (and shards) through RDS Proxy, or a plain URL (LocalStack). */
  readonly database: DatabaseConnection;
  /** Database role the query API connects as. */
  readonly dbUser: string;
  readonly logRetention: logs.RetentionDays;
  readonly throttle: { readonly rateLimit: number; readonly burstLimit: number };
  /** Create the account-wide API Gateway → CloudWatch Logs role. */
  readonly cloudWatchRole: boolean;
  readonly reservedConcurrency?: number;
  /** The result cache's Redis tier. @default - none: the in-process L1 cache only */
  readonly cache?: RedisEndpoint;
  /**
   * Require an API key (x-api-key) in addition to the SigV4 signature, so the usage plan's
   * per-key throttle and quota apply. @default false
   */
  readonly apiKeyRequired?: boolean;
  /** Requests per day per API key in the usage plan. @default - no quota */
  readonly quotaPerDay?: number;
  /** QUERY_ALLOW_WRITES (feature flag writesAllowed). @default false */
  readonly writesAllowed?: boolean;
  /** @default functions/query/handler.ts */
  readonly entry?: string;
}

/**
 * The read API: `POST /query` on an API Gateway REST API (v1) with IAM (SigV4) auth, body
 * validation, stage throttling, access logs and X-Ray, proxied to the query Lambda, which
 * reaches PostgreSQL through RDS Proxy with IAM database authentication.
 */
export class QueryApi extends Construct {
  readonly handler: DboptFunction;
  readonly api: apigateway.RestApi;
  /** Invoke URL of `POST /query`. */
  readonly queryUrl: string;
  /** Per-key throttle and quota on the stage (enforced for keys when apiKeyRequired). */
  readonly usagePlan: apigateway.UsagePlan;
  /** execute-api:Invoke on POST /query and GET /health: attach it to callers' roles. */
  readonly invokePolicy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: QueryApiProps) {
    super(scope, id);

    this.handler = new DboptFunction(this, 'Handler', {
      entry: props.entry ?? functionEntry('query'),
      description: 'dbopt query API: POST /query, one parameterized statement per request',
      serviceName: 'dbopt-query',
      ...(props.vpc ? { vpc: props.vpc } : {}),
      memorySizeMb: 512,
      timeout: QUERY_FUNCTION_TIMEOUT,
      logRetention: props.logRetention,
      usesSqlParser: true,
      ...(props.reservedConcurrency === undefined
        ? {}
        : { reservedConcurrency: props.reservedConcurrency }),
      environment: {
        ...props.database.environmentFor(props.dbUser),
        QUERY_MAX_TIMEOUT_MS: String(QUERY_MAX_TIMEOUT_MS),
        QUERY_ALLOW_WRITES: String(props.writesAllowed ?? false),
        // Connect + the longest statement stays inside the function timeout; the handler also
        // trims each statement's limit to the invocation's remaining time.
        DB_CONNECT_TIMEOUT_MS: '1500',
        ...(props.cache ? { REDIS_URL: props.cache.redisUrl } : {}),
      },
    });
    props.cache?.allowFrom(this.handler);
    props.database.connect(this.handler, props.dbUser);

    const accessLogs = new logs.LogGroup(this, 'AccessLogs', { retention: props.logRetention });

    this.api = new apigateway.RestApi(this, 'Api', {
      // Also the ApiName dimension of its CloudWatch metrics: unique per stack.
      restApiName: `${Stack.of(this).stackName}-query`,
      description: 'dbopt query API (IAM auth)',
      endpointConfiguration: { types: [apigateway.EndpointType.REGIONAL] },
      cloudWatchRole: props.cloudWatchRole,
      // The role is account-wide (AWS::ApiGateway::Account): other APIs' logging depends on it.
      ...(props.cloudWatchRole ? { cloudWatchRoleRemovalPolicy: RemovalPolicy.RETAIN } : {}),
      deployOptions: {
        stageName: 'v1',
        tracingEnabled: true,
        metricsEnabled: true,
        throttlingRateLimit: props.throttle.rateLimit,
        throttlingBurstLimit: props.throttle.burstLimit,
        loggingLevel: apigateway.MethodLoggingLevel.ERROR,
        // Request bodies are SQL with bound values: never copy them into execution logs.
        dataTraceEnabled: false,
        accessLogDestination: new apigateway.LogGroupLogDestination(accessLogs),
        accessLogFormat: apigateway.AccessLogFormat.jsonWithStandardFields({
          caller: true,
          httpMethod: true,
          ip: true,
          protocol: true,
          requestTime: true,
          resourcePath: true,
          responseLength: true,
          status: true,
          user: true,
        }),
      },
    });

    const requestModel = this.api.addModel('QueryRequest', {
      contentType: 'application/json',
      description: 'POST /query body; the handler validates every field in detail',
      schema: {
        schema: apigateway.JsonSchemaVersion.DRAFT4,
        title: 'QueryRequest',
        type: apigateway.JsonSchemaType.OBJECT,
        required: ['sql'],
        properties: {
          sql: { type: apigateway.JsonSchemaType.STRING, minLength: 1, maxLength: SQL_MAX_LENGTH },
        },
      },
    });
    const validator = this.api.addRequestValidator('RequestValidator', {
      validateRequestBody: true,
      validateRequestParameters: true,
    });
    // Name what is wrong (ARCHITECTURE.md non-negotiable) instead of "Invalid request body".
    this.api.addGatewayResponse('BadRequestBody', {
      type: apigateway.ResponseType.BAD_REQUEST_BODY,
      statusCode: '400',
      templates: {
        'application/json':
          '{"error":{"code":"BAD_REQUEST_BODY","message":"$context.error.validationErrorString"}}',
      },
    });

    this.api.root
      .addResource('query')
      .addMethod(
        'POST',
        new apigateway.LambdaIntegration(this.handler.fn, { allowTestInvoke: false }),
        {
          authorizationType: apigateway.AuthorizationType.IAM,
          requestValidator: validator,
          requestModels: { 'application/json': requestModel },
          apiKeyRequired: props.apiKeyRequired ?? false,
        },
      );
    this.queryUrl = this.api.urlForPath('/query');
    // Per-target breaker state and probes; same function, IAM auth like /query.
    this.api.root
      .addResource('health')
      .addMethod(
        'GET',
        new apigateway.LambdaIntegration(this.handler.fn, { allowTestInvoke: false }),
        {
          authorizationType: apigateway.AuthorizationType.IAM,
          requestValidator: validator,
          apiKeyRequired: props.apiKeyRequired ?? false,
        },
      );

    this.usagePlan = this.api.addUsagePlan('UsagePlan', {
      description: 'dbopt query API: per-key throttle (and quota) on stage v1',
      throttle: { rateLimit: props.throttle.rateLimit, burstLimit: props.throttle.burstLimit },
      ...(props.quotaPerDay === undefined
        ? {}
        : { quota: { limit: props.quotaPerDay, period: apigateway.Period.DAY } }),
      apiStages: [{ api: this.api, stage: this.api.deploymentStage }],
    });

    this.invokePolicy = new iam.ManagedPolicy(this, 'InvokePolicy', {
      description: 'Call the dbopt query API (SigV4): POST /query and GET /health',
      statements: [
        new iam.PolicyStatement({
          actions: ['execute-api:Invoke'],
          resources: [
            this.api.arnForExecuteApi('POST', '/query', this.api.deploymentStage.stageName),
            this.api.arnForExecuteApi('GET', '/health', this.api.deploymentStage.stageName),
          ],
        }),
      ],
    });

    Validations.of(this.api).acknowledge(
      {
        id: 'AwsSolutions-APIG3',
        reason:
          'No WAF: every request must carry a SigV4 signature of an IAM principal, the stage ' +
          'is throttled, and the body is SQL by design, so the managed SQL-injection rule ' +
          'groups would block legitimate requests.',
      },
      {
        id: 'AwsSolutions-COG4',
        reason: 'Authorization is IAM (SigV4), decided in ARCHITECTURE.md; there is no Cognito.',
      },
    );
    const cloudWatchRole = this.api.node.tryFindChild('CloudWatchRole');
    if (cloudWatchRole) {
      Validations.of(cloudWatchRole).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
        reason:
          'The account-level API Gateway logging role writes logs for every API in the ' +
          'account and region, so it cannot be scoped to this stack; AWS documents this ' +
          'managed policy for it.',
      });
    }
  }
}
