import { Duration, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { type BundlingOptions, NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import {
  BUNDLE_ALIAS,
  BUNDLE_BANNER,
  BUNDLE_DEFINE,
  BUNDLE_MAIN_FIELDS,
} from '../bundling/options.ts';
import { LIBPG_QUERY_WASM_PATH, LOCK_FILE_PATH, REPO_ROOT, TSCONFIG_PATH } from '../paths.ts';

/** Every dbopt Lambda runs on this runtime (ARCHITECTURE.md: nodejs22.x, ARM64). */
export const FUNCTION_RUNTIME = lambda.Runtime.NODEJS_22_X;

export interface DboptFunctionProps {
  /** Absolute path of the handler module (see `functionEntry`). */
  readonly entry: string;
  readonly description: string;
  /** Powertools service name, also exported as SERVICE_NAME for `shared/config`. */
  readonly serviceName: string;
  /** @default - outside any VPC (the LocalStack profile) */
  readonly vpc?: ec2.IVpc;
  /** Function-specific variables; merged over the common ones. */
  readonly environment?: Readonly<Record<string, string>>;
  /** @default 512 */
  readonly memorySizeMb?: number;
  /** @default 10 seconds */
  readonly timeout?: Duration;
  readonly logRetention: logs.RetentionDays;
  /** @default - no reserved concurrency (account pool) */
  readonly reservedConcurrency?: number;
  /**
   * The function imports `libpg-query` (the PostgreSQL parser, WASM): ship its `.wasm` next
   * to the bundle.
   * @default false
   */
  readonly usesSqlParser?: boolean;
}

/**
 * One dbopt Lambda: a NodejsFunction bundled locally by esbuild as ESM for nodejs22.x/ARM64,
 * with its own execution role (no managed policies), log group, X-Ray tracing, and a
 * security group that allows no egress until the owner adds the ports it needs.
 * Placed in the VPC's isolated subnets: logs, EMF metrics and traces leave through the
 * Lambda service, so no NAT is needed.
 */
export class DboptFunction extends Construct {
  readonly fn: NodejsFunction;
  readonly role: iam.Role;
  /** Undefined outside a VPC. */
  readonly securityGroup?: ec2.SecurityGroup;
  readonly logGroup: logs.LogGroup;
  /** Powertools service name: the `service` dimension of the function's EMF metrics. */
  readonly serviceName: string;
  private readonly vpc?: ec2.IVpc;

  constructor(scope: Construct, id: string, props: DboptFunctionProps) {
    super(scope, id);
    this.vpc = props.vpc;
    this.serviceName = props.serviceName;

    this.logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention });

    if (props.vpc) {
      this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
        vpc: props.vpc,
        description: `${props.serviceName} Lambda: egress limited to the ports added explicitly`,
        allowAllOutbound: false,
      });
    }

    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Execution role of the ${props.serviceName} Lambda`,
      inlinePolicies: {
        ...(props.vpc ? { VpcNetworkInterfaces: vpcNetworkInterfacesPolicy() } : {}),
        Logs: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
              resources: [this.logGroup.logGroupArn],
            }),
          ],
        }),
      },
    });
    // On the CfnRole itself (not the Role construct) so it does not also cover DefaultPolicy.
    if (props.vpc)
      Validations.of(this.role.node.defaultChild ?? this.role).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'VPC network-interface management: ec2:DescribeNetworkInterfaces and ec2:DescribeSubnets ' +
          'only work on "*", and Lambda creates the ENIs on the function\'s behalf before their ids ' +
          'exist. Same actions as AWSLambdaVPCAccessExecutionRole, without its logs:* on "*".',
      });

    this.fn = new NodejsFunction(this, 'Function', {
      entry: props.entry,
      handler: 'handler',
      description: props.description,
      runtime: FUNCTION_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySizeMb ?? 512,
      timeout: props.timeout ?? Duration.seconds(10),
      role: this.role,
      logGroup: this.logGroup,
      tracing: lambda.Tracing.ACTIVE,
      ...(props.vpc && this.securityGroup
        ? {
            vpc: props.vpc,
            vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
            securityGroups: [this.securityGroup],
          }
        : {}),
      ...(props.reservedConcurrency === undefined
        ? {}
        : { reservedConcurrentExecutions: props.reservedConcurrency }),
      projectRoot: REPO_ROOT,
      depsLockFilePath: LOCK_FILE_PATH,
      bundling: bundlingOptions(props.usesSqlParser ?? false),
      environment: {
        NODE_OPTIONS: '--enable-source-maps',
        SERVICE_NAME: props.serviceName,
        POWERTOOLS_SERVICE_NAME: props.serviceName,
        METRICS_NAMESPACE: 'dbopt',
        ...props.environment,
      },
    });

    // Tracing adds xray:PutTraceSegments/PutTelemetryRecords to the role's default policy.
    const defaultPolicy = this.role.node.tryFindChild('DefaultPolicy');
    if (defaultPolicy) {
      Validations.of(defaultPolicy).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'Active X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords have no ' +
          'resource-level permissions, so "*" is the only valid resource.',
      });
    }
    Validations.of(this.fn).acknowledge({
      id: 'AwsSolutions-L1',
      reason:
        `${FUNCTION_RUNTIME.name} is the runtime decided in ARCHITECTURE.md for every dbopt ` +
        'Lambda; a newer one is adopted for all functions at once, in its own change.',
    });
  }

  /** Lets the function open TCP connections to `port` anywhere inside its VPC. */
  allowEgressInVpc(port: ec2.Port, description: string): void {
    if (!this.vpc || !this.securityGroup) return;
    this.securityGroup.addEgressRule(ec2.Peer.ipv4(this.vpc.vpcCidrBlock), port, description);
  }
}

/**
 * What AWSLambdaVPCAccessExecutionRole grants, minus logs on every log group.
 * https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html
 */
const vpcNetworkInterfacesPolicy = (): iam.PolicyDocument =>
  new iam.PolicyDocument({
    statements: [
      new iam.PolicyStatement({
        actions: [
          'ec2:CreateNetworkInterface',
          'ec2:DescribeNetworkInterfaces',
          'ec2:DescribeSubnets',
          'ec2:DeleteNetworkInterface',
          'ec2:AssignPrivateIpAddresses',
          'ec2:UnassignPrivateIpAddresses',
        ],
        resources: ['*'],
      }),
    ],
  });

/**
 * ESM bundle for Node 22, built by the local esbuild (never Docker), as described in
 * `infra/bundling/options.ts` (shared with bench:cold). libpg-query's Emscripten loader looks
 * for `libpg-query.wasm` in `__dirname`, i.e. next to `index.mjs`, where the after-bundling
 * hook copies it.
 */
const bundlingOptions = (usesSqlParser: boolean): BundlingOptions => ({
  format: OutputFormat.ESM,
  mainFields: [...BUNDLE_MAIN_FIELDS],
  minify: true,
  sourceMap: true,
  sourcesContent: false,
  bundleAwsSDK: true,
  tsconfig: TSCONFIG_PATH,
  forceDockerBundling: false,
  banner: BUNDLE_BANNER,
  define: { ...BUNDLE_DEFINE },
  esbuildArgs: Object.fromEntries(
    Object.entries(BUNDLE_ALIAS).map(([from, to]) => [`--alias:${from}`, to]),
  ),
  commandHooks: {
    beforeBundling: () => [],
    beforeInstall: () => [],
    afterBundling: (_inputDir: string, outputDir: string) =>
      usesSqlParser ? [`cp "${LIBPG_QUERY_WASM_PATH}" "${outputDir}/libpg-query.wasm"`] : [],
  },
});
