import { Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface NetworkProps {
  /** IPv4 range of the VPC, e.g. 10.40.0.0/16. */
  readonly cidr: string;
  /** Retention of the VPC flow logs. */
  readonly flowLogRetention: logs.RetentionDays;
  /** Add the RDS Data API endpoint (Aurora: the slow-query collector may use the Data API). */
  readonly rdsDataEndpoint?: boolean;
}

/**
 * AWS APIs the functions call from inside the VPC, each through an interface endpoint with
 * private DNS, so the SDK's default host names resolve to private addresses and no NAT is needed.
 */
export const INTERFACE_ENDPOINTS = Object.freeze({
  Sns: ec2.InterfaceVpcEndpointAwsService.SNS, // alerts, suggestions
  Sqs: ec2.InterfaceVpcEndpointAwsService.SQS, // slow-query queue
  // Logs API calls from the VPC (the functions' own log lines leave through Lambda).
  Logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
  SecretsManager: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER, // hosted secret rotation
});

/**
 * The VPC: isolated subnets only (no internet gateway, no NAT) in the stack's availability
 * zones. Lambdas, RDS Proxy and Redis talk inside it; Lambda logs, EMF metrics and traces leave
 * through the Lambda service; SNS, SQS, CloudWatch Logs, Secrets Manager (and the RDS Data
 * API) through interface endpoints. Functions reach the endpoints on 443 inside the VPC
 * ({@link DboptFunction.allowEgressInVpc}); the endpoints admit 443 from the VPC range only.
 */
export class Network extends Construct {
  readonly vpc: ec2.Vpc;
  readonly endpoints: ReadonlyMap<string, ec2.InterfaceVpcEndpoint>;
  readonly endpointSecurityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);

    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(props.cidr),
      // The stack pins its availability zones; take them all (two by default).
      maxAzs: Stack.of(this).availabilityZones.length,
      natGateways: 0,
      subnetConfiguration: [
        { name: 'isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 22 },
      ],
      restrictDefaultSecurityGroup: true,
    });
    Validations.of(this.vpc).acknowledge({
      id: 'CloudFormation-Validate::W3010',
      reason:
        'Availability zones are pinned on purpose (context key availabilityZones): synthesis ' +
        'must not look them up, and subnets must not move between synths.',
    });

    const flowLogs = new logs.LogGroup(this, 'FlowLogs', { retention: props.flowLogRetention });
    // Rejected flows answer "why can't the Lambda reach the proxy?" at a fraction of the cost
    // of logging all traffic.
    this.vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs),
      trafficType: ec2.FlowLogTrafficType.REJECT,
    });

    const services: [string, ec2.InterfaceVpcEndpointAwsService][] = [
      ...Object.entries(INTERFACE_ENDPOINTS),
      ...(props.rdsDataEndpoint
        ? [
            ['RdsData', ec2.InterfaceVpcEndpointAwsService.RDS_DATA] as [
              string,
              ec2.InterfaceVpcEndpointAwsService,
            ],
          ]
        : []),
    ];
    // One group for all endpoints: HTTPS from the VPC's range (a literal, so it can be checked).
    this.endpointSecurityGroup = new ec2.SecurityGroup(this, 'EndpointSecurityGroup', {
      vpc: this.vpc,
      description: 'dbopt VPC interface endpoints: HTTPS from inside the VPC',
      allowAllOutbound: false,
    });
    this.endpointSecurityGroup.addIngressRule(
      ec2.Peer.ipv4(props.cidr),
      ec2.Port.tcp(443),
      'HTTPS from the VPC to AWS APIs',
    );
    const endpoints = new Map<string, ec2.InterfaceVpcEndpoint>();
    for (const [name, service] of services) {
      endpoints.set(
        name,
        this.vpc.addInterfaceEndpoint(`${name}Endpoint`, {
          service,
          privateDnsEnabled: true,
          subnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
          securityGroups: [this.endpointSecurityGroup],
          open: false,
        }),
      );
    }
    this.endpoints = endpoints;
  }
}
